package fsm

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"
)

// checkIndex fails unless a state published from st finds every key and
// version of its trees through the index, as the very record the tree
// holds, each key's record names the entry of its primary version's
// current record, and the index counts exactly those.
func checkIndex(t *testing.T, st *State) {
	t.Helper()
	p := st.clone()
	same := func(a, b string) bool { return a == b && unsafe.StringData(a) == unsafe.StringData(b) }
	p.keys.Ascend(func(it keyItem) bool {
		if rec, ok := p.lookup.find(arenaKey, it.account, it.idString()); !ok || !same(rec, p.record(it.ref)) {
			t.Fatalf("the index finds key %s: %v", it.idString(), ok)
		}
		var k Key
		pref := decodeKeyRecord(p.record(it.ref), it.account, &k)
		if v, ok := p.versions.Get(searchVersion(k.PrimaryVersion)); ok && pref != v.ref {
			t.Fatalf("key %s's record names entry %#x, its primary version's is %#x", it.idString(), pref, v.ref)
		}
		return true
	})
	p.versions.Ascend(func(it versionItem) bool {
		if rec, ok := p.lookup.find(arenaVersion, "", it.idString()); !ok || !same(rec, p.record(it.ref)) {
			t.Fatalf("the index finds version %s: %v", it.idString(), ok)
		}
		return true
	})
	if n := p.keys.Len() + p.versions.Len(); st.arena.index.live != n {
		t.Fatalf("the index counts %d records, the trees hold %d", st.arena.index.live, n)
	}
	if _, ok := p.lookup.find(arenaKey, "acct", "key-none"); ok {
		t.Fatal("the index finds a key that is not there")
	}
	if _, ok := p.lookup.find(arenaVersion, "acct", keyOf(p)); ok {
		t.Fatal("the index finds a key's id as a version")
	}
}

// keyOf returns the id of one of st's keys.
func keyOf(st *State) string {
	it, _ := st.keys.Min()
	return it.idString()
}

func TestIndexFindsEveryRecordThroughGrowthAndCompaction(t *testing.T) {
	st := newState()
	keys := storeKeys(st, 20000) // the table grows from 1024 slots
	checkIndex(t, st)
	for round := range 5 {
		for _, k := range keys {
			k.Description = fmt.Sprint("round ", round)
			st.putKey(k)
		}
		st.compact()
	}
	for i, k := range keys {
		if i%3 == 0 {
			st.deleteVersion(k.PrimaryVersion)
			st.deleteKey(k.Account, k.ID)
		}
	}
	for len(st.arena.queue) > 0 {
		st.compact() // drops chunks, whose ids new chunks reuse
	}
	if len(st.arena.free) == 0 {
		t.Fatal("no chunk was dropped: the test does not reach id reuse")
	}
	checkIndex(t, st)
	storeKeys(st, 100) // into reused chunk ids
	checkIndex(t, st)
}

// changeOrDelete changes the description of every third key (0, 3, …)
// and deletes the next one of each three (1, 4, …) with its version.
func changeOrDelete(st *State, keys []*Key) {
	for i, k := range keys {
		switch i % 3 {
		case 0:
			k.Description = "changed"
			st.putKey(k)
		case 1:
			st.deleteVersion(k.PrimaryVersion)
			st.deleteKey(k.Account, k.ID)
		}
	}
}

// A published state reads the records it was published with, never a
// later one: the index answers for what did not change since, the tree for
// the rest.
func TestIndexNeverShowsAStateLaterRecords(t *testing.T) {
	st := newState()
	keys := storeKeys(st, 3000)
	before := st.clone()
	changeOrDelete(st, keys)
	for i := range 5000 { // and the table grows
		st.putVersion(&Version{ID: fmt.Sprintf("w-%06d", i), Account: "acct", KeyID: "key-other", Material: []byte{1}})
	}
	after := st.clone()
	for i, k := range keys {
		old, ok := before.Key(k.Account, k.ID)
		if !ok || old.Description != "" || old.Primary() == nil || old.Primary().ID != k.PrimaryVersion {
			t.Fatalf("key %d in the earlier state: %+v, %v", i, old, ok)
		}
		now, ok := after.Key(k.Account, k.ID)
		switch i % 3 {
		case 0:
			if !ok || now.Description != "changed" {
				t.Fatalf("key %d in the later state: %+v", i, now)
			}
		case 1:
			if ok {
				t.Fatalf("deleted key %d in the later state: %+v", i, now)
			}
			if _, ok := after.Version(k.PrimaryVersion); ok {
				t.Fatalf("deleted version of key %d in the later state", i)
			}
		}
	}
}

// Readers of published states run while the writer changes the keys
// (run with -race): each read gives the record its state's tree holds.
func TestIndexReadersRaceTheWriter(t *testing.T) {
	st := newState()
	keys := storeKeys(st, 2000)
	var cur atomic.Pointer[State]
	cur.Store(st.clone())
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for r := range 2 {
		wg.Go(func() {
			for i := r; !stop.Load(); i += 7 {
				p, k := cur.Load(), keys[i%len(keys)]
				got, ok := p.Key(k.Account, k.ID)
				it, inTree := p.keys.Get(searchKey(k.Account, k.ID))
				var want Key
				if inTree {
					decodeKeyRecord(p.record(it.ref), it.account, &want)
				}
				if ok != inTree || ok && got.Description != want.Description {
					errs <- fmt.Errorf("key %s: %+v (%v), the tree holds %v", k.ID, got, ok, inTree)
					return
				}
			}
		})
	}
	grew := 0
	for round := range 30 {
		for i, k := range keys {
			switch {
			case (i+round)%10 == 0:
				st.deleteKey(k.Account, k.ID)
			default:
				k.Description = fmt.Sprint(round)
				st.putKey(k)
			}
			if i%4 == 0 { // the table grows, and its slots move, while readers read
				st.putVersion(&Version{ID: fmt.Sprintf("w-%02d-%06d", round, i), Account: "acct", KeyID: "key-other", Material: []byte{1}})
			}
			if st.arena.index.old != nil && i%100 == 0 {
				cur.Store(st.clone()) // a state published while slots move
				grew++
			}
		}
		st.compact()
		cur.Store(st.clone())
	}
	if grew == 0 {
		t.Fatal("no state was published while the index grew: the test shows nothing")
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkIndex(t, st)
}

// Tables bigger than the position bits a slot keeps are filled by
// reading each entry to rehash it.
func TestIndexGrowsBeyondTheBitsItKeeps(t *testing.T) {
	defer func(b uint) { indexKeptBits = b }(indexKeptBits)
	indexKeptBits = 10 // tables of 1 024 slots at most without reading entries
	st := newState()
	storeKeys(st, 20000)
	if slots := len(st.arena.index.tab.w) / 2; slots <= 1<<indexKeptBits {
		t.Fatalf("the table has %d slots: the test does not reach a rehash", slots)
	}
	checkIndex(t, st)
}

// A record whose ref does not fit a slot is left to the tree, and the
// index stops answering with the key's older record.
func TestIndexDropsAKeyWhoseRefDoesNotFit(t *testing.T) {
	st := newState()
	k := storeKeys(st, 10)[0]
	st.arena.index.put(st.arena.byID, arenaKey, k.Account, k.ID, 1<<refBits<<32)
	p := st.clone()
	if _, ok := p.lookup.find(arenaKey, k.Account, k.ID); ok {
		t.Fatal("the index still answers for the key")
	}
	if got, ok := p.Key(k.Account, k.ID); !ok || got.ID != k.ID {
		t.Fatalf("the tree does not answer: %+v, %v", got, ok)
	}
}

// The index grows without a pause: the write that fills its table starts a
// new one and moves a few slots, later writes and applied batches move the
// rest. Until they have, published states find every record through either
// table; a change or a deletion — of a record moved or not yet moved —
// shows in the states published after it and never before; and a record
// deleted after its move is not found again in the old table.
func TestIndexGrowsAFewSlotsAtATime(t *testing.T) {
	st := newState()
	x := st.arena.index
	var keys []*Key
	for i := 0; x.old == nil || len(x.old.w)/2 < 1<<14; i++ {
		v := &Version{ID: fmt.Sprintf("v-%06d", i), Account: "acct", KeyID: fmt.Sprintf("key-%06d", i), Material: make([]byte, 40)}
		st.putVersion(v)
		k := &Key{Account: "acct", ID: v.KeyID, Spec: "Aliyun_AES_256", Usage: "ENCRYPT/DECRYPT",
			State: KeyEnabled, PrimaryVersion: v.ID, Versions: []string{v.ID}}
		st.putKey(k)
		keys = append(keys, k)
	}
	oldSlots := uint64(len(x.old.w) / 2)
	if x.next > 2*slotsMovedPerWrite {
		t.Fatalf("the write that grew the table moved %d of its %d slots", x.next, oldSlots)
	}
	checkIndex(t, st)

	x.move(st.arena.byID, int(oldSlots/2)) // half the records in each table
	before := st.clone()
	changed := keys[:600] // few enough writes to leave slots unmoved
	changeOrDelete(st, changed)
	if x.old == nil {
		t.Fatal("every slot moved before the changes: the test shows nothing")
	}
	after := st.clone()
	for i, k := range keys {
		if got, ok := before.Key(k.Account, k.ID); !ok || got.Description != "" {
			t.Fatalf("key %d in the state before the changes: %+v, %v", i, got, ok)
		}
		got, ok := after.Key(k.Account, k.ID)
		if i >= len(changed) {
			if !ok || got.Description != "" {
				t.Fatalf("unchanged key %d in the state after: %+v, %v", i, got, ok)
			}
			continue
		}
		switch i % 3 {
		case 0:
			if !ok || got.Description != "changed" {
				t.Fatalf("changed key %d in the state after: %+v, %v", i, got, ok)
			}
		case 1:
			if _, found := after.lookup.find(arenaKey, k.Account, k.ID); ok || found {
				t.Fatalf("deleted key %d in the state after: %v (through the index: %v)", i, ok, found)
			}
			if _, found := after.lookup.find(arenaVersion, "", k.PrimaryVersion); found {
				t.Fatalf("deleted version of key %d found through the index", i)
			}
		}
	}
	for x.old != nil {
		st.compact()
	}
	checkIndex(t, st)
}
