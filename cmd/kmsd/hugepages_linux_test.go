//go:build linux

package main

import (
	"bytes"
	"os"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// anonHugeBytes returns the process's memory in transparent huge pages.
func anonHugeBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		t.Skip("no /proc/self/smaps_rollup:", err)
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("AnonHugePages:")); ok {
			kb, err := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Skip("smaps_rollup shows no AnonHugePages")
	return 0
}

// mapAnonymous maps n bytes of private anonymous memory aligned to a huge
// page, as the Go heap's arenas are, and unmaps it when the test ends.
func mapAnonymous(t *testing.T, n int) []byte {
	t.Helper()
	m, err := unix.Mmap(-1, 0, n+hugePage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(m) })
	off := int(alignUp(uintptr(unsafe.Pointer(&m[0]))) - uintptr(unsafe.Pointer(&m[0])))
	return m[off : off+n]
}

func pass(t *testing.T, c *collapser) {
	t.Helper()
	if err := collapseSupported(); err != nil {
		t.Skip("this kernel does not collapse huge pages (Linux 6.1+ with THP):", err)
	}
	if err := c.pass(time.Minute); err != nil {
		t.Fatal(err)
	}
}

func TestResidentMemoryIsCollapsedIntoHugePages(t *testing.T) {
	m := mapAnonymous(t, 8*hugePage)
	for i := 0; i < len(m); i += 4096 {
		m[i] = 1
	}
	before := anonHugeBytes(t)
	var c collapser
	pass(t, &c)
	if got := anonHugeBytes(t) - before; got < int64(len(m)) {
		t.Fatalf("%d MiB more in huge pages after a pass over %d MiB of resident memory", got>>20, len(m)>>20)
	}
	if c.next != 0 {
		t.Fatalf("the pass stopped at %#x instead of going round", c.next)
	}
}

// Memory the runtime gave back to the kernel stays given back: a region
// with a page not resident is not collapsed (which would fault it in).
func TestCollapsingNeverBringsBackReleasedPages(t *testing.T) {
	m := mapAnonymous(t, 4*hugePage)
	for i := 0; i < len(m); i += 4096 {
		if i%hugePage != 4096 { // one page per region never touched
			m[i] = 1
		}
	}
	before := anonHugeBytes(t)
	var c collapser
	pass(t, &c)
	vec := make([]byte, len(m)/4096)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	for r := 0; r < len(m)/hugePage; r++ {
		if vec[r*hugePage/4096+1]&1 != 0 {
			t.Fatalf("region %d: the page left untouched is resident after the pass", r)
		}
	}
	if got := anonHugeBytes(t) - before; got >= hugePage {
		t.Fatalf("%d MiB more in huge pages", got>>20)
	}
}
