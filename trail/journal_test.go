package trail

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func events(from, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, "event %d", from+i)
	}
	return out
}

// files counts the journal files in dir.
func files(t *testing.T, dir string) int {
	names, err := filepath.Glob(filepath.Join(dir, "*"+journalExt))
	if err != nil {
		t.Fatal(err)
	}
	return len(names)
}

// recovered flattens what a journal found at open into "id:number=event".
func recovered(j *Journal) []string {
	var out []string
	for _, b := range j.Recovered() {
		for i, ev := range b.Events {
			out = append(out, fmt.Sprintf("%x:%d=%s", b.ID[:1], b.First+uint64(i), ev))
		}
	}
	return out
}

func TestJournalKeepsWhatWasNotShippedAcrossARestart(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	id := j.ID()
	for _, n := range []int{2, 3} {
		if _, err := j.Append(events(0, n)); err != nil {
			t.Fatal(err)
		}
	}
	j.Close() // as a crash would leave it: nothing shipped

	j2, err := OpenJournal(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if j2.ID() == id {
		t.Fatal("a new start writes under the same journal id")
	}
	got := recovered(j2)
	want := fmt.Sprintf("[%[1]x:1=event 0 %[1]x:2=event 1 %[1]x:3=event 0 %[1]x:4=event 1 %[1]x:5=event 2]", id[:1])
	if fmt.Sprint(got) != want {
		t.Fatalf("recovered %v, want %s", got, want)
	}
	if first, _ := j2.Append(events(0, 1)); first != 1 {
		t.Fatalf("the new journal numbers from %d", first)
	}
	// Shipping the old journal's events removes its file; the new one's
	// stays until its events ship too.
	if err := j2.Shipped(id, 5); err != nil {
		t.Fatal(err)
	}
	if n := files(t, dir); n != 1 {
		t.Fatalf("%d files after the old journal shipped", n)
	}
	if err := j2.Shipped(j2.ID(), 1); err != nil {
		t.Fatal(err)
	}
	if names, _ := filepath.Glob(filepath.Join(dir, "*")); len(names) != 0 {
		t.Fatalf("files left after everything shipped: %v", names)
	}
	// Numbering goes on in a fresh file.
	if first, _ := j2.Append(events(5, 1)); first != 2 {
		t.Fatalf("after the file was removed the journal numbers from %d", first)
	}
}

func TestJournalStopsAtATornFrame(t *testing.T) {
	dir := t.TempDir()
	j, _ := OpenJournal(dir, false)
	j.Append(events(0, 2))
	j.Append(events(2, 2))
	j.Close()
	names, _ := filepath.Glob(filepath.Join(dir, "*"+journalExt))
	if len(names) != 1 {
		t.Fatalf("files %v", names)
	}
	st, _ := os.Stat(names[0])
	// A crash in the middle of the second frame's write.
	if err := os.Truncate(names[0], st.Size()-3); err != nil {
		t.Fatal(err)
	}
	j2, err := OpenJournal(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := recovered(j2); len(got) != 2 || j2.Cut() == 0 {
		t.Fatalf("recovered %v, cut %d bytes", got, j2.Cut())
	}
	// A damaged frame (a flipped bit) ends the file the same way.
	j2.Close()
	b, _ := os.ReadFile(names[0])
	b[journalHead+9] ^= 1
	os.WriteFile(names[0], b, 0o600)
	j3, _ := OpenJournal(dir, false)
	if got := recovered(j3); len(got) != 0 || j3.Cut() == 0 {
		t.Fatalf("recovered %v from a damaged frame", got)
	}
}

func TestJournalStartsAFileWhenOneIsFull(t *testing.T) {
	dir := t.TempDir()
	j, _ := OpenJournal(dir, false)
	big := make([]byte, JournalFileBytes/4)
	for i := range 9 {
		if _, err := j.Append([][]byte{big}); err != nil {
			t.Fatal(i, err)
		}
	}
	if n := files(t, dir); n != 3 {
		t.Fatalf("%d files for 9 quarter-file events", n)
	}
	// Files of shipped events go; the one with an unshipped event stays.
	if err := j.Shipped(j.ID(), 5); err != nil {
		t.Fatal(err)
	}
	if n := files(t, dir); n != 2 {
		t.Fatalf("%d files after 5 of 9 events shipped", n)
	}
	j.Close()
	j2, _ := OpenJournal(dir, false)
	b := j2.Recovered()
	if len(b) != 5 || b[0].First != 5 {
		t.Fatalf("recovered %d batches from %d", len(b), b[0].First)
	}
}
