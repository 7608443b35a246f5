package fsm

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/raftkms/raftkms/trail"
)

var keepAll = Retention{MaxRecords: 1 << 20}

func rid(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

// window returns the records the state holds, decoded, oldest first.
func window(t *testing.T, st *State) []trail.Record {
	t.Helper()
	var out []trail.Record
	st.TrailRecords(0, func(s trail.Sealed) bool {
		r, err := s.Decode()
		if err != nil || !s.Valid() {
			t.Fatalf("record %d: %v (valid %v)", s.Seq, err, s.Valid())
		}
		out = append(out, r)
		return true
	})
	return out
}

func TestTrailRecordsAreChainedInCommitOrderAndHandedToTheArchive(t *testing.T) {
	h := newHarness(t)
	var archived []trail.Sealed
	h.f.cfg.OnTrail = func(s []trail.Sealed) { archived = append(archived, s...) }
	h.mustApply(&TrailAppend{Retention: keepAll, Events: [][]byte{testEvent("Encrypt", rid(1), t0), testEvent("Decrypt", rid(2), t0)}})
	h.now += int64(time.Second)
	h.mustApply(&TrailAppend{Retention: keepAll, Events: [][]byte{testEvent("DescribeKey", rid(3), t0)}})

	recs := window(t, h.f.State())
	if len(recs) != 3 || len(archived) != 3 {
		t.Fatalf("%d records in the window, %d archived; want 3", len(recs), len(archived))
	}
	v := trail.Verifier{}
	for i, r := range recs {
		if err := v.Add(&r); err != nil {
			t.Fatal(err)
		}
		if r.Seq != uint64(i+1) || r.RequestID != rid(i+1) || archived[i].Hash != r.Hash {
			t.Fatalf("record %d = seq %d request %s", i, r.Seq, r.RequestID)
		}
	}
	if recs[2].CommitTime != t0+int64(time.Second) {
		t.Fatalf("commit time %d, want the command's time", recs[2].CommitTime)
	}
	if seq, hash := h.f.State().TrailHead(); seq != 3 || hash != recs[2].Hash {
		t.Fatalf("head = %d %x", seq, hash)
	}
}

func TestTrailWindowKeepsItsRetentionAndTheHead(t *testing.T) {
	h := newHarness(t)
	ret := Retention{MaxRecords: 3, MaxAge: int64(time.Hour)}
	for i := range 5 {
		h.mustApply(&TrailAppend{Retention: ret, Events: [][]byte{testEvent("Encrypt", rid(i+1), h.now)}})
	}
	st := h.f.State()
	if st.TrailFirst() != 3 || len(window(t, st)) != 3 {
		t.Fatalf("after 5 records with MaxRecords 3: first %d, %d held", st.TrailFirst(), len(window(t, st)))
	}
	h.now += 2 * int64(time.Hour)
	h.mustApply(&TrailAppend{Retention: ret, Events: [][]byte{testEvent("Encrypt", rid(6), h.now)}})
	st = h.f.State()
	if recs := window(t, st); len(recs) != 1 || recs[0].Seq != 6 {
		t.Fatalf("records older than MaxAge stayed: %d held", len(recs))
	}
	if seq, _ := st.TrailHead(); seq != 6 {
		t.Fatalf("head %d", seq)
	}
}

func TestAuditedChangeIsRecordedExactlyWhenItIsMade(t *testing.T) {
	h := newHarness(t)
	r := h.apply(&Audited{Retention: keepAll, Event: testEvent("CreateUser", rid(1), t0), Cmd: &CreateUser{Account: acct, Name: "bob"}})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if _, ok := h.f.State().User(acct, "bob"); !ok || len(window(t, h.f.State())) != 1 {
		t.Fatal("the change or its record is missing")
	}
	// A change that fails leaves no record: the node records the failure itself.
	r = h.apply(&Audited{Retention: keepAll, Event: testEvent("CreateUser", rid(2), t0), Cmd: &CreateUser{Account: acct, Name: "bob"}})
	if !errors.Is(r.Err, ErrUserExists) || len(window(t, h.f.State())) != 1 {
		t.Fatalf("failed change: err %v, %d records", r.Err, len(window(t, h.f.State())))
	}
	// A record that does not decode: no change either.
	r = h.apply(&Audited{Retention: keepAll, Event: []byte{1, 2, 3}, Cmd: &CreateUser{Account: acct, Name: "carol"}})
	if !errors.Is(r.Err, ErrInvalidCommand) {
		t.Fatalf("bad record err = %v", r.Err)
	}
	if _, ok := h.f.State().User(acct, "carol"); ok {
		t.Fatal("a change was made without its record")
	}
}

func TestARequestIsRecordedOnce(t *testing.T) {
	h := newHarness(t)
	// A write recorded with its change, whose node then recorded it again
	// as failed (its acknowledgement was lost).
	h.mustApply(&Audited{Retention: keepAll, Event: testEvent("CreateUser", rid(1), t0), Cmd: &CreateUser{Account: acct, Name: "bob"}})
	h.mustApply(&TrailAppend{Retention: keepAll, Events: [][]byte{testEvent("CreateUser", rid(1), t0), testEvent("Encrypt", rid(2), t0)}})
	// A batch retried by a node whose forward timed out.
	hd := h.header()
	batch := &TrailAppend{Retention: keepAll, Events: [][]byte{testEvent("Decrypt", rid(3), t0)}}
	h.applyWith(hd, batch)
	h.applyWith(hd, batch)
	var got []string
	for _, r := range window(t, h.f.State()) {
		got = append(got, r.RequestID)
	}
	if fmt.Sprint(got) != fmt.Sprint([]string{rid(1), rid(2), rid(3)}) {
		t.Fatalf("records of requests %v, want each once", got)
	}
}

func TestAShippedJournalEventEntersTheTrailOnce(t *testing.T) {
	h := newHarness(t)
	ev := func(i int) []byte { return testEvent("Encrypt", rid(i), t0) }
	a, b := [16]byte{1}, [16]byte{2}
	h.mustApply(&TrailShip{Retention: keepAll, Journal: a, First: 1, Events: [][]byte{ev(1), ev(2)}})
	// A retry of the same batch, then a restarted node shipping 1–4 again.
	h.mustApply(&TrailShip{Retention: keepAll, Journal: a, First: 1, Events: [][]byte{ev(1), ev(2)}})
	h.mustApply(&TrailShip{Retention: keepAll, Journal: a, First: 1, Events: [][]byte{ev(1), ev(2), ev(3), ev(4)}})
	// Another journal (the node's next start) numbers from 1 again.
	h.mustApply(&TrailShip{Retention: keepAll, Journal: b, First: 1, Events: [][]byte{ev(5)}})
	// An older batch arriving late changes nothing.
	h.mustApply(&TrailShip{Retention: keepAll, Journal: a, First: 2, Events: [][]byte{ev(2)}})
	if r := h.apply(&TrailShip{Retention: keepAll, Journal: a, Events: [][]byte{ev(6)}}); !errors.Is(r.Err, ErrInvalidCommand) {
		t.Fatalf("a batch numbered from 0: %v", r.Err)
	}
	var got []string
	for _, r := range window(t, h.f.State()) {
		got = append(got, r.RequestID)
	}
	if fmt.Sprint(got) != fmt.Sprint([]string{rid(1), rid(2), rid(3), rid(4), rid(5)}) {
		t.Fatalf("records of requests %v, want each once", got)
	}
	// The marks survive a snapshot: a retry after a restore is skipped too.
	h.f = restore(t, snapshotBytes(t, h.f))
	h.mustApply(&TrailShip{Retention: keepAll, Journal: a, First: 4, Events: [][]byte{ev(4), ev(6)}})
	if recs := window(t, h.f.State()); len(recs) != 6 || recs[5].RequestID != rid(6) {
		t.Fatalf("%d records after restore and a retry", len(recs))
	}
	// A journal not shipped from for JournalKeep is forgotten.
	h.now += int64(JournalKeep) + 1
	h.mustApply(&TrailShip{Retention: keepAll, Journal: b, First: 2, Events: [][]byte{ev(7)}})
	if _, ok := h.f.dd.journals[a]; ok || len(h.f.dd.journals) != 1 {
		t.Fatalf("journal marks %v", h.f.dd.journals)
	}
}

func TestTrailAppendLeavesOutOnlyEventsThatDoNotDecode(t *testing.T) {
	h := newHarness(t)
	h.mustApply(&TrailAppend{Retention: keepAll, Events: [][]byte{testEvent("Encrypt", rid(1), t0), {0xff}, testEvent("Decrypt", rid(2), t0)}})
	if recs := window(t, h.f.State()); len(recs) != 2 || recs[1].Seq != 2 {
		t.Fatalf("%d records", len(recs))
	}
}

func TestTrailSurvivesSnapshotAndTheChainGoesOn(t *testing.T) {
	h := newHarness(t)
	h.mustApply(&TrailAppend{Retention: Retention{MaxRecords: 2}, Events: [][]byte{
		testEvent("Encrypt", rid(1), t0), testEvent("Encrypt", rid(2), t0), testEvent("Encrypt", rid(3), t0)}})
	f := restore(t, snapshotBytes(t, h.f))
	seq, hash := f.State().TrailHead()
	if want, wantHash := h.f.State().TrailHead(); seq != want || hash != wantHash || f.State().TrailFirst() != 2 {
		t.Fatalf("restored head %d, first %d", seq, f.State().TrailFirst())
	}
	// Both replicas seal the next record alike.
	next := &TrailAppend{Retention: Retention{MaxRecords: 2}, Events: [][]byte{testEvent("Encrypt", rid(4), t0)}}
	hd := h.header()
	h.applyWith(hd, next)
	f.Apply(h.entry(hd, next))
	a, _ := h.f.State().TrailHead()
	b, bh := f.State().TrailHead()
	if _, ah := h.f.State().TrailHead(); a != 4 || b != 4 || ah != bh {
		t.Fatalf("heads after the next record: %d %x / %d %x", a, ah, b, bh)
	}
}

func TestTrailWindowCopiesNeverSeeTheWritersLaterChanges(t *testing.T) {
	rec := func(seq uint64) trail.Sealed {
		return trail.Sealed{Seq: seq, CommitTime: int64(seq), Content: []byte(fmt.Sprint("record ", seq))}
	}
	seqs := func(w *trailWindow, from uint64, backward bool) []uint64 {
		var out []uint64
		fn := func(s trail.Sealed) bool {
			if string(s.Content) != fmt.Sprint("record ", s.Seq) {
				t.Errorf("record %d holds %q", s.Seq, s.Content) // Errorf: one reader is another goroutine
				return false
			}
			out = append(out, s.Seq)
			return true
		}
		if backward {
			w.descend(from, fn)
		} else {
			w.ascend(from, fn)
		}
		return out
	}
	var w trailWindow
	if got := seqs(&w, 0, false); got != nil {
		t.Fatalf("empty window holds %v", got)
	}
	for s := uint64(1); s <= 3000; s++ {
		if err := w.push(rec(s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.push(rec(3002)); err == nil {
		t.Fatal("a record that skips a seq was accepted")
	}
	published := w.snapshot()
	done := make(chan []uint64)
	go func() { done <- seqs(&published, 0, false) }() // reads while the writer goes on (go test -race)
	for range 2500 {
		w.pop()
	}
	for s := uint64(3001); s <= 6000; s++ {
		w.push(rec(s))
	}
	if got := <-done; len(got) != 3000 || got[0] != 1 || got[2999] != 3000 {
		t.Fatalf("the published copy changed: %d records, %v … %v", len(got), got[:1], got[len(got)-1:])
	}
	if got := seqs(&w, 0, false); len(got) != 3500 || got[0] != 2501 || got[3499] != 6000 {
		t.Fatalf("writer holds %d records from %d", len(got), got[0])
	}
	if got := seqs(&w, 5999, false); !slices.Equal(got, []uint64{5999, 6000}) {
		t.Fatalf("from 5999: %v", got)
	}
	if got := seqs(&w, 2502, true); !slices.Equal(got, []uint64{2502, 2501}) {
		t.Fatalf("backward from 2502: %v", got)
	}
	if got := seqs(&w, 2500, true); got != nil {
		t.Fatalf("backward from before the window: %v", got)
	}
	if got := seqs(&w, 1<<40, true); len(got) != 3500 || got[0] != 6000 {
		t.Fatalf("backward from past the end: %d records from %v", len(got), got[:1])
	}
}

// TestABatchsRecordsShareOneAllocation: the records of one command are
// sealed into one buffer (one allocation per batch, not per record), each
// record's content right after the previous one's.
func TestABatchsRecordsShareOneAllocation(t *testing.T) {
	h := newHarness(t)
	var evs [][]byte
	for i := range 20 {
		evs = append(evs, testEvent("Decrypt", rid(i+1), t0))
	}
	h.mustApply(&TrailAppend{Retention: keepAll, Events: evs})
	var recs []trail.Sealed
	h.f.State().TrailRecords(0, func(s trail.Sealed) bool { recs = append(recs, s); return true })
	if len(recs) != 20 {
		t.Fatalf("%d records", len(recs))
	}
	for i := 1; i < len(recs); i++ {
		prev := recs[i-1].Content
		if unsafe.Pointer(unsafe.SliceData(recs[i].Content)) != unsafe.Add(unsafe.Pointer(unsafe.SliceData(prev)), len(prev)) {
			t.Fatalf("record %d's content is not right after record %d's", i+1, i)
		}
	}
}

// TestTrailRecordsOutliveTheEntryTheyCameIn: a trail command's events are
// decoded as views of the Raft entry; the records must not be, since the
// entry's buffer is not the state machine's to keep. Both kinds of trail
// command, and the sealed slice OnTrail sees is reused only after it.
func TestTrailRecordsOutliveTheEntryTheyCameIn(t *testing.T) {
	h := newHarness(t)
	var archived []trail.Sealed
	h.f.cfg.OnTrail = func(s []trail.Sealed) { archived = append(archived, s...) }
	for i, c := range []Command{
		&TrailAppend{Retention: keepAll, Events: [][]byte{testEvent("Encrypt", rid(1), t0), testEvent("Decrypt", rid(2), t0)}},
		&TrailShip{Retention: keepAll, Journal: [16]byte{9}, First: 1, Events: [][]byte{testEvent("Encrypt", rid(3), t0)}},
	} {
		e := h.entry(h.header(), c)
		if r := h.f.Apply(e).(Result); r.Err != nil {
			t.Fatalf("command %d: %v", i, r.Err)
		}
		for j := range e.Data {
			e.Data[j] = 0xff
		}
	}
	recs := window(t, h.f.State()) // fails on a record whose bytes changed
	if len(recs) != 3 || len(archived) != 3 {
		t.Fatalf("%d records, %d archived", len(recs), len(archived))
	}
	for i, r := range recs {
		if r.RequestID != rid(i+1) || archived[i].Hash != r.Hash {
			t.Fatalf("record %d: request %s", i+1, r.RequestID)
		}
	}
}
