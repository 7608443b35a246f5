//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Huge pages. Over a million keys most of a request's time is spent waiting
// for memory: the key's index slot and record, its version's, the keyring's
// counts, the replay filter — each a random read of a different part of a
// heap of 1.5 GiB, and each also a TLB miss with 4 KiB pages (a page walk
// costs the most in a virtual machine, whose walks are two-dimensional).
// With 2 MiB pages the same node served a million keys at 0.90–0.95× its
// ten-key rate where it served 0.72–1.05× (docs/PERFORMANCE.md "Many keys").
//
// Go's runtime leaves huge pages to the kernel, and most distributions set
// transparent huge pages to "madvise": anonymous memory gets them only when
// asked. So kmsd asks, in the background: every hugePagePass it goes through
// its private anonymous mappings (the Go heap among them) and collapses
// (MADV_COLLAPSE, Linux 6.1+) each 2 MiB-aligned region whose pages are all
// resident into one huge page. Regions with a page the runtime gave back to
// the kernel are left alone, so collapsing never makes the process bigger;
// a huge page the runtime later releases part of is split again by the
// kernel, and collapsed again once it is whole. A region already huge costs
// the kernel a page-table check. Each pass stops after hugePageBudget of
// work and the next resumes where it stopped, so the work is spread out:
// under 1 % of a core.

const (
	hugePage       = 2 << 20
	hugePagePass   = 2 * time.Second
	hugePageBudget = 20 * time.Millisecond
)

// collapseHugePages collapses memory into huge pages until ctx ends, or
// stops at once if the kernel cannot (before Linux 6.1, or without THP).
func collapseHugePages(ctx context.Context, log *slog.Logger) {
	if err := collapseSupported(); err != nil {
		log.Info("memory stays in 4 KiB pages: the kernel does not collapse huge pages", "err", err)
		return
	}
	var c collapser
	t := time.NewTicker(hugePagePass)
	defer t.Stop()
	for {
		if err := c.pass(hugePageBudget); err != nil {
			log.Warn("collapsing memory into huge pages", "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// collapser walks the process's anonymous memory a region at a time.
type collapser struct {
	next uintptr // the region to look at first in the next pass
	vec  [hugePage / 4096]byte
}

// collapseSupported collapses a region of its own to see whether the
// kernel can.
func collapseSupported() error {
	m, err := unix.Mmap(-1, 0, 2*hugePage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return err
	}
	defer unix.Munmap(m)
	base := uintptr(unsafe.Pointer(&m[0]))
	a := alignUp(base)
	for i := a - base; i < a-base+hugePage; i += 4096 {
		m[i] = 1
	}
	if _, _, e := unix.Syscall(unix.SYS_MADVISE, a, hugePage, unix.MADV_COLLAPSE); e != 0 {
		return fmt.Errorf("madvise(MADV_COLLAPSE): %w", e)
	}
	return nil
}

// pass collapses the whole-resident regions of the anonymous mappings, from
// c.next on, for at most budget.
func (c *collapser) pass(budget time.Duration) error {
	maps, err := anonymousMappings()
	if err != nil {
		return err
	}
	start := time.Now()
	for _, m := range maps {
		for a := max(alignUp(m[0]), c.next); a+hugePage <= m[1]; a += hugePage {
			if time.Since(start) > budget {
				c.next = a
				return nil
			}
			if !c.resident(a) {
				continue
			}
			// Errors are left for the next pass, or for good: EAGAIN (no huge
			// page free now), ENOMEM (unmapped meanwhile), EINVAL (a mapping
			// that cannot have huge pages).
			unix.Syscall(unix.SYS_MADVISE, a, hugePage, unix.MADV_COLLAPSE)
		}
	}
	c.next = 0
	return nil
}

// resident reports whether every page of the region at a is in memory.
func (c *collapser) resident(a uintptr) bool {
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, a, hugePage, uintptr(unsafe.Pointer(&c.vec[0]))); e != 0 {
		return false
	}
	for _, b := range c.vec {
		if b&1 == 0 {
			return false
		}
	}
	return true
}

func alignUp(a uintptr) uintptr { return (a + hugePage - 1) &^ (hugePage - 1) }

// anonymousMappings returns the [start, end) of the process's private
// anonymous read-write mappings at least a huge page long, ascending.
func anonymousMappings() ([][2]uintptr, error) {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil, err
	}
	var out [][2]uintptr
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		// start-end perms offset dev inode [path]
		f := bytes.Fields(s.Bytes())
		if len(f) != 5 || string(f[1]) != "rw-p" || string(f[4]) != "0" {
			continue
		}
		lo, hi, ok := bytes.Cut(f[0], []byte{'-'})
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 == nil && err2 == nil && end-start >= hugePage {
			out = append(out, [2]uintptr{uintptr(start), uintptr(end)})
		}
	}
	return out, s.Err()
}
