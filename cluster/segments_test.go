package cluster

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/segment"
)

// openTestWAL opens a WAL in dir with segments of segBytes on segmentFS.
func openTestWAL(t *testing.T, dir string, segBytes int) (*wal.WAL, *segmentFS) {
	t.Helper()
	fs, err := newSegmentFS(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	w, err := wal.Open(dir, wal.WithSegmentFiler(segment.NewFiler(dir, fs)), wal.WithSegmentSize(segBytes))
	if err != nil {
		t.Fatal(err)
	}
	return w, fs
}

// TestLogSegmentsAreMadeFromZeroFilledSparesAndReadBack: once a segment is
// half written the next is prepared (written with zeros) and becomes the
// next segment; the log reads back whole across those segments after a
// reopen, the segment files are private, and a spare an earlier run left is not
// trusted.
func TestLogSegmentsAreMadeFromZeroFilledSparesAndReadBack(t *testing.T) {
	dir := t.TempDir()
	const segBytes = 1 << 20
	w, fs := openTestWAL(t, dir, segBytes)
	data := func(i uint64) []byte { return bytes.Repeat([]byte(fmt.Sprint(i%251)), 3000+int(i%7)) }
	// waitSpare waits while a spare is being written, so the next
	// rotation finds it ready.
	waitSpare := func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			fs.mu.Lock()
			preparing := fs.preparing
			fs.mu.Unlock()
			if !preparing {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the spare was not written in 10 s")
			}
			time.Sleep(time.Millisecond)
		}
	}
	var next uint64 = 1
	for fs.fromSpare.Load() < 3 {
		if err := w.StoreLog(&raft.Log{Index: next, Term: 1, Type: raft.LogCommand, Data: data(next)}); err != nil {
			t.Fatal(err)
		}
		next++
		waitSpare()
		if next > 5000 {
			t.Fatalf("%d segments made from a spare after %d logs", fs.fromSpare.Load(), next)
		}
	}
	// The newest segment came from a spare: past what was appended, zeros.
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	tail, err := os.ReadFile(segs[len(segs)-1])
	if err != nil || len(tail) != segBytes || !bytes.Equal(tail[segBytes-65536:], make([]byte, 65536)) {
		t.Fatalf("the newest segment: %d bytes, %v, or not zero past its records", len(tail), err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fs.close()
	names, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	for _, n := range names {
		if fi, err := os.Stat(n); err != nil || fi.Mode().Perm()&0o077 != 0 {
			t.Fatalf("%s: mode %v, %v", n, fi.Mode(), err)
		}
	}

	// An earlier run's spare, perhaps half written: not used.
	if err := os.WriteFile(filepath.Join(dir, spareName), bytes.Repeat([]byte{0xff}, segBytes), 0o600); err != nil {
		t.Fatal(err)
	}
	w, fs = openTestWAL(t, dir, segBytes)
	defer func() { w.Close(); fs.close() }()
	if _, err := os.Stat(filepath.Join(dir, spareName)); !os.IsNotExist(err) {
		t.Fatalf("an earlier run's spare is still there: %v", err)
	}
	last, _ := w.LastIndex()
	if last != next-1 {
		t.Fatalf("last index %d after reopening, want %d", last, next-1)
	}
	for i := uint64(1); i < next; i++ {
		var l raft.Log
		if err := w.GetLog(i, &l); err != nil || !bytes.Equal(l.Data, data(i)) {
			t.Fatalf("log %d: %v (data equal: %v)", i, err, bytes.Equal(l.Data, data(i)))
		}
	}
}
