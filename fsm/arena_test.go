package fsm

import (
	"fmt"
	"reflect"
	"testing"
	"unsafe"
)

// storeKeys stores n keys of account "acct", each with one version, and
// returns them.
func storeKeys(st *State, n int) []*Key {
	keys := make([]*Key, n)
	for i := range keys {
		v := &Version{ID: fmt.Sprintf("v-%06d", i), Account: "acct", KeyID: fmt.Sprintf("key-%06d", i),
			Created: int64(i), Material: make([]byte, 40)}
		st.putVersion(v)
		k := &Key{Account: "acct", ID: v.KeyID, Spec: "Aliyun_AES_256", Usage: "ENCRYPT/DECRYPT",
			State: KeyEnabled, PrimaryVersion: v.ID, Versions: []string{v.ID}}
		st.putKey(k)
		keys[i] = k
	}
	return keys
}

// checkKeys fails unless st holds exactly keys, each with its primary
// version read from the same record the version's own item names.
func checkKeys(t *testing.T, st *State, keys []*Key) {
	t.Helper()
	if st.keys.Len() != len(keys) {
		t.Fatalf("%d keys stored, want %d", st.keys.Len(), len(keys))
	}
	for _, want := range keys {
		got, ok := st.Key(want.Account, want.ID)
		if !ok {
			t.Fatalf("key %s is gone", want.ID)
		}
		if got.PrimarySeals != want.PrimarySeals || got.Description != want.Description {
			t.Fatalf("key %s reads %+v, want %+v", want.ID, got, want)
		}
		v, _ := st.Version(want.PrimaryVersion)
		if got.Primary() == nil || !reflect.DeepEqual(*got.Primary(), *v) || unsafe.StringData(got.Primary().ID) != unsafe.StringData(v.ID) {
			t.Fatalf("key %s's primary version %+v, the version %+v", want.ID, got.Primary(), v)
		}
	}
}

// arenaBytes returns the bytes written to st's arena and the bytes of the
// entries st holds, counted from the trees.
func arenaBytes(st *State) (written, held int) {
	for _, c := range st.arena.owned {
		if c != nil {
			written += len(c.b)
		}
	}
	st.keys.Ascend(func(it keyItem) bool {
		held += entrySize(arenaKey, it.account, len(st.record(it.ref)))
		return true
	})
	st.versions.Ascend(func(it versionItem) bool {
		held += entrySize(arenaVersion, "", len(st.record(it.ref)))
		return true
	})
	return written, held
}

// Changing every key many times leaves the key store holding each key's
// latest record, and the arena no bigger than a third over what it holds
// once compaction has caught up; a state published before the changes
// still reads the records it had.
func TestArenaCompactionKeepsEveryKeyAndFreesTheRest(t *testing.T) {
	st := newState()
	keys := storeKeys(st, 20000)
	before := st.clone()
	for round := range 10 {
		for _, k := range keys {
			k.PrimarySeals++
			k.Description = fmt.Sprintf("round %d", round)
			st.putKey(k)
		}
		st.compact() // as an applied batch does
	}
	for len(st.arena.queue) > 0 {
		st.compact()
	}
	checkKeys(t, st, keys)

	written, held := arenaBytes(st)
	if held == 0 || written > held*4/3+2*arenaChunk {
		t.Fatalf("the arena holds %d bytes for %d bytes of records", written, held)
	}
	inUse := 0
	for _, c := range st.arena.owned {
		if c != nil {
			inUse += c.inUse
		}
	}
	if inUse != held || st.arena.lost != 0 {
		t.Fatalf("the chunks count %d bytes in use (%d lost), the trees hold %d", inUse, st.arena.lost, held)
	}

	for _, k := range keys[:100] {
		old, ok := before.Key(k.Account, k.ID)
		if !ok || old.PrimarySeals != 0 || old.Description != "" {
			t.Fatalf("an earlier state reads %+v", old)
		}
	}
}

// Deleted keys and versions free their records too, and a version moved by
// compaction stays its key's primary.
func TestArenaCompactionAfterDeletes(t *testing.T) {
	st := newState()
	keys := storeKeys(st, 20000)
	var kept []*Key
	for i, k := range keys {
		if i%5 == 0 {
			kept = append(kept, k)
			continue
		}
		st.deleteVersion(k.PrimaryVersion)
		st.deleteKey(k.Account, k.ID)
	}
	for range 1000 {
		st.compact()
	}
	if len(st.arena.queue) != 0 {
		t.Fatal("compaction did not finish")
	}
	checkKeys(t, st, kept)
	if st.arena.lost != 0 {
		t.Fatalf("the arena's bookkeeping lost %d bytes", st.arena.lost)
	}
	if written, held := arenaBytes(st); written > held*4/3+2*arenaChunk {
		t.Fatalf("the arena holds %d bytes for %d bytes of records", written, held)
	}
}

// A chunk whose bookkeeping went wrong — bytes still counted in use once
// every entry it held was moved or released — is kept, not dropped: its
// entries may still be named by items, and a lost record would be worse
// than lost memory. The arena reports it (lost), which tests require to be 0.
func TestArenaKeepsAChunkItsBookkeepingSaysIsStillInUse(t *testing.T) {
	st := newState()
	keys := storeKeys(st, 5000)
	for _, k := range keys {
		k.Description = "changed"
		st.putKey(k)
	}
	if len(st.arena.queue) == 0 {
		t.Fatal("no chunk queued for evacuation: the test shows nothing")
	}
	c := st.arena.queue[0]
	c.inUse++ // as a release that never came would leave it
	for len(st.arena.queue) > 0 {
		st.compact()
	}
	if st.arena.owned[c.id] != c || st.arena.byID[c.id] == nil || st.arena.lost != 1 {
		t.Fatalf("the chunk was dropped (kept: %v), lost %d", st.arena.owned[c.id] == c, st.arena.lost)
	}
	checkKeys(t, st, keys)
}

// A key changed by a command is stored with its account's own id string,
// and what the state keeps beside it — its due rotation, its aliases —
// owns its key id instead of viewing the record the key was read from:
// else a million keys changed once (a seal reservation each) are a million
// account strings for the collector to mark, and a replaced record's chunk
// stays pinned by whatever views it.
func TestChangedKeysShareTheirAccountsIDAndPinNoRecord(t *testing.T) {
	h := newHarness(t)
	k := h.mustApply(&CreateKey{Account: acct, ID: "key-a", Spec: "Aliyun_AES_256", Usage: "ENCRYPT/DECRYPT",
		Origin: "Aliyun_KMS", Protection: "SOFTWARE", CreatorType: "User", RotationInterval: 7 * 24 * 3600,
		VersionID: "00000000-0000-4000-8000-000000000001", Material: []byte("wrapped-key-a")}).Key
	h.mustApply(&ReserveSeals{Account: acct, KeyID: "key-a", VersionID: k.PrimaryVersion, Count: 10})
	h.mustApply(NewCreateAlias(acct, "alias/app", "key-a"))
	h.mustApply(&ReserveSeals{Account: acct, KeyID: "key-a", VersionID: k.PrimaryVersion, Count: 10})

	st := h.f.w
	a, _ := st.Account(acct)
	shared := func(s string) bool { return unsafe.StringData(s) == unsafe.StringData(a.ID) }
	inArena := func(s string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		for _, c := range st.arena.byID {
			if b := uintptr(unsafe.Pointer(unsafe.SliceData(c))); cap(c) > 0 && p >= b && p < b+uintptr(cap(c)) {
				return true
			}
		}
		return false
	}
	st.keys.Ascend(func(it keyItem) bool {
		if !shared(it.account) {
			t.Errorf("key item %x has an account string of its own", it.id)
		}
		return true
	})
	dues := 0
	st.due.Ascend(func(it dueItem) bool {
		dues++
		if !shared(it.account) || inArena(it.id) {
			t.Errorf("due item of %s: account shared %v, id views the arena %v", it.id, shared(it.account), inArena(it.id))
		}
		return true
	})
	if dues != 1 {
		t.Fatalf("%d due items, want the key's rotation", dues)
	}
	st.aliases.Ascend(func(it aliasItem) bool {
		if !shared(it.account) || inArena(it.a.KeyID) {
			t.Errorf("alias %s: account shared %v, key id views the arena %v", it.name, shared(it.account), inArena(it.a.KeyID))
		}
		return true
	})
}
