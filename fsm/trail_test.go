package fsm

import (
	"errors"
	"fmt"
	"testing"
	"time"

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
