package cluster

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/raftkms/raftkms/fsm"
	"github.com/raftkms/raftkms/trail"
)

// archivedFSM is a state machine wired to an Archiver as kmsd wires them.
func archivedFSM(t *testing.T, dir string) (*fsm.FSM, *Archiver) {
	t.Helper()
	ar, err := NewArchiver(dir, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ar.Close() })
	f := fsm.New(fsm.Config{OnTrail: ar.OnTrail, OnRestore: ar.OnRestore, BeforePersist: ar.Sync})
	ar.SetFSM(f)
	return f, ar
}

var index uint64

// appendRecords applies a TrailAppend of n events.
func appendRecords(f *fsm.FSM, n int, ret fsm.Retention) {
	var evs [][]byte
	for range n {
		index++
		evs = append(evs, trail.AppendEvent(nil, &trail.Event{EventID: fmt.Sprint("e", index), EventName: "Encrypt",
			RequestID: fmt.Sprintf("00000000-0000-4000-8000-%012d", index), Outcome: trail.Success}))
	}
	var h fsm.Header
	h.RequestID[0], h.RequestID[15] = byte(index>>8), byte(index)
	index++
	f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: fsm.Encode(h, &fsm.TrailAppend{Retention: ret, Events: evs})})
}

func archived(t *testing.T, ar *Archiver) []uint64 {
	t.Helper()
	var seqs []uint64
	if err := ar.Scan(1, 1<<62, func(s trail.Sealed) bool { seqs = append(seqs, s.Seq); return true }); err != nil {
		t.Fatal(err)
	}
	return seqs
}

func TestArchiverKeepsEveryRecordTheWindowDrops(t *testing.T) {
	f, ar := archivedFSM(t, t.TempDir())
	for range 10 {
		appendRecords(f, 7, fsm.Retention{MaxRecords: 5})
	}
	if seqs := archived(t, ar); len(seqs) != 70 || seqs[69] != 70 {
		t.Fatalf("archived %d records, want all 70", len(seqs))
	}
	if first := f.State().TrailFirst(); first != 66 {
		t.Fatalf("the window starts at %d", first)
	}
	// Peers asking for records get them from the files and the window.
	recs, err := ar.Source(60, 70, 1<<20)
	if err != nil || len(recs) != 11 || recs[0].Seq != 60 || recs[10].Seq != 70 {
		t.Fatalf("Source(60, 70) = %d records, %v", len(recs), err)
	}
	recs, _ = ar.Source(1, 70, 2000)
	size := 0
	for _, r := range recs[:len(recs)-1] {
		size += len(r.Content) + 32
	}
	if len(recs) == 0 || len(recs) == 70 || size >= 2000 {
		t.Fatalf("Source with a 2000-byte budget gave %d records (%d bytes before the last)", len(recs), size)
	}
}

func TestArchiverAfterARestoreOfAnOlderStateKeepsTheOldFilesAside(t *testing.T) {
	dir := t.TempDir()
	f, ar := archivedFSM(t, filepath.Join(dir, "trail"))
	appendRecords(f, 10, fsm.Retention{MaxRecords: 100})
	var snap bytes.Buffer
	if err := f.WriteSnapshot(&snap); err != nil {
		t.Fatal(err)
	}
	appendRecords(f, 10, fsm.Retention{MaxRecords: 100}) // records 11-20, which the snapshot has not
	if err := f.Restore(io.NopCloser(&snap)); err != nil {
		t.Fatal(err)
	}
	aside, _ := filepath.Glob(filepath.Join(dir, "trail.before-restore-*"))
	if len(aside) != 1 {
		t.Fatalf("%d directories moved aside", len(aside))
	}
	if segs, _ := filepath.Glob(filepath.Join(aside[0], "*.seg")); len(segs) == 0 {
		t.Fatal("the old segment files are gone")
	}
	// The new files hold the restored window, and the chain goes on from it.
	if seqs := archived(t, ar); len(seqs) != 10 || seqs[9] != 10 {
		t.Fatalf("after the restore the archive holds %v", seqs)
	}
	appendRecords(f, 3, fsm.Retention{MaxRecords: 100})
	if seqs := archived(t, ar); len(seqs) != 13 || !ar.Healthy() {
		t.Fatalf("after the restore and 3 more records: %d archived, healthy %v", len(seqs), ar.Healthy())
	}
	if _, err := os.Stat(filepath.Join(dir, "trail")); err != nil {
		t.Fatal(err)
	}
}

func TestArchiverAfterARestoreOfTheSameHistoryKeepsItsFiles(t *testing.T) {
	dir := t.TempDir()
	f, ar := archivedFSM(t, filepath.Join(dir, "trail"))
	appendRecords(f, 10, fsm.Retention{MaxRecords: 4})
	var snap bytes.Buffer
	if err := f.WriteSnapshot(&snap); err != nil {
		t.Fatal(err)
	}
	// A node that restarts restores its latest snapshot: same history.
	if err := f.Restore(io.NopCloser(&snap)); err != nil {
		t.Fatal(err)
	}
	if aside, _ := filepath.Glob(filepath.Join(dir, "trail.before-restore-*")); len(aside) != 0 {
		t.Fatal("the files were moved aside for a restore of their own history")
	}
	if seqs := archived(t, ar); len(seqs) != 10 {
		t.Fatalf("archive holds %d records", len(seqs))
	}
}
