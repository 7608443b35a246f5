package crypto

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
)

func TestTakeSealRunsOneGrantAheadAndAsksForMore(t *testing.T) {
	v := &VersionKey{}
	ok, reserve := v.TakeSeal()
	if !ok || !reserve {
		t.Fatalf("first seal: ok=%v reserve=%v, want both (usable at once, reserve the first grant)", ok, reserve)
	}
	if _, again := v.TakeSeal(); again {
		t.Fatal("a second reservation started while one is pending")
	}
	for i := 3; i <= SealGrant; i++ {
		if ok, _ := v.TakeSeal(); !ok {
			t.Fatalf("seal %d refused within the first grant", i)
		}
	}
	if ok, _ := v.TakeSeal(); ok {
		t.Fatal("sealed past one grant without any confirmed reservation")
	}
	v.Reserved(SealGrant)
	if ok, reserve := v.TakeSeal(); !ok || !reserve {
		t.Fatalf("after a grant: ok=%v reserve=%v, want both (half the budget is gone)", ok, reserve)
	}
	v.ReserveFailed(true)
	if ok, _ := v.TakeSeal(); ok || !v.Exhausted() {
		t.Fatal("an exhausted version still seals")
	}
}

func TestTakeSealNeverExceedsTheBudgetUnderConcurrency(t *testing.T) {
	v := &VersionKey{}
	v.Reserved(SealGrant)
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for range SealGrant / 2 {
				if ok, _ := v.TakeSeal(); ok {
					n++
				}
			}
			mu.Lock()
			granted += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if granted != 2*SealGrant {
		t.Fatalf("granted %d seals, want exactly reserved+one grant = %d", granted, 2*SealGrant)
	}
}

// countingWrapper counts unwraps: each one is a miss of the Keyring.
type countingWrapper struct {
	Wrapper
	unwraps int
}

func (c *countingWrapper) Unwrap(p Purpose, id string, wrapped []byte) ([]byte, error) {
	c.unwraps++
	return c.Wrapper.Unwrap(p, id, wrapped)
}

// keyringVersions returns a Keyring of at most max versions and the wrapped
// material of n versions "v0".."v(n-1)".
func keyringVersions(t *testing.T, max, n int) (*Keyring, *countingWrapper, map[string][]byte) {
	t.Helper()
	root, err := NewRootKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	w := &countingWrapper{Wrapper: root}
	wrapped := map[string][]byte{}
	for i := range n {
		id := fmt.Sprintf("v%d", i)
		if wrapped[id], err = root.Wrap(PurposeKeyMaterial, id, bytes.Repeat([]byte{byte(i)}, 32)); err != nil {
			t.Fatal(err)
		}
	}
	return NewKeyring(w, max), w, wrapped
}

func TestKeyringHoldsAtMostItsLimitAndEveryVersionStillWorks(t *testing.T) {
	k, _, wrapped := keyringVersions(t, 4, 10)
	sealed := map[string][]byte{}
	for round := range 3 {
		for i := range 10 {
			id := fmt.Sprintf("v%d", i)
			_, b, err := k.Software(id, wrapped[id])
			if err != nil {
				t.Fatal(err)
			}
			if round == 0 {
				if sealed[id], err = b.Seal(nil, []byte("data of "+id), nil); err != nil {
					t.Fatal(err)
				}
			} else if pt, err := b.Open(nil, sealed[id], nil); err != nil || string(pt) != "data of "+id {
				t.Fatalf("round %d: %s opens to %q, %v", round, id, pt, err)
			}
			if n := k.Len(); n > 4 {
				t.Fatalf("%d versions unwrapped, limit 4", n)
			}
		}
	}
}

func TestVersionsInUseOutlastOneOffs(t *testing.T) {
	k, w, wrapped := keyringVersions(t, 2, 10)
	use := func(id string) {
		t.Helper()
		if _, _, err := k.Software(id, wrapped[id]); err != nil {
			t.Fatal(err)
		}
	}
	use("v0")
	use("v0") // in use: a second chance
	for i := 1; i < 10; i++ {
		use(fmt.Sprintf("v%d", i)) // one-offs
		use("v0")
	}
	if w.unwraps != 10 {
		t.Fatalf("%d unwraps: the version in use was evicted by one-offs (want 1 + 9)", w.unwraps)
	}
}

func TestAnEvictedVersionKeepsItsSealCount(t *testing.T) {
	k, _, wrapped := keyringVersions(t, 1, 2)
	v, _, err := k.Software("v0", wrapped["v0"])
	if err != nil {
		t.Fatal(err)
	}
	for range SealGrant { // the grant a version may run ahead of its reservations
		if ok, _ := v.TakeSeal(); !ok {
			t.Fatal("refused within the first grant")
		}
	}
	if _, _, err := k.Software("v1", wrapped["v1"]); err != nil { // evicts v0's key
		t.Fatal(err)
	}
	again, b, err := k.Software("v0", wrapped["v0"])
	if err != nil || b == nil {
		t.Fatal(err)
	}
	if again != v {
		t.Fatal("v0 came back with fresh counts")
	}
	if ok, _ := again.TakeSeal(); ok {
		t.Fatal("an evicted version sealed past its budget after coming back")
	}
}

// An evicted version is unwrapped again when it comes back, with its own
// key, also after the versions that took its place were forgotten and the
// Keyring shrank.
func TestAnEvictedVersionComesBackAfterTheKeyringShrinks(t *testing.T) {
	k, w, wrapped := keyringVersions(t, 2, 3)
	sealed := map[string][]byte{}
	for _, id := range []string{"v0", "v1", "v2"} { // v2 evicts v0
		_, b, err := k.Software(id, wrapped[id])
		if err != nil {
			t.Fatal(err)
		}
		if sealed[id], err = b.Seal(nil, []byte("data of "+id), nil); err != nil {
			t.Fatal(err)
		}
	}
	k.Forget("v1", "v2")
	_, b, err := k.Software("v0", wrapped["v0"])
	if err != nil || w.unwraps != 4 {
		t.Fatalf("v0 after the Keyring emptied: %d unwraps, %v", w.unwraps, err)
	}
	if pt, err := b.Open(nil, sealed["v0"], nil); err != nil || string(pt) != "data of v0" {
		t.Fatalf("v0 came back with another key: %q, %v", pt, err)
	}
	if k.Len() != 1 {
		t.Fatalf("%d versions held, want v0", k.Len())
	}
}

func TestForgottenVersionsAreDropped(t *testing.T) {
	k, w, wrapped := keyringVersions(t, 4, 3)
	for _, id := range []string{"v0", "v1", "v2"} {
		if _, _, err := k.Software(id, wrapped[id]); err != nil {
			t.Fatal(err)
		}
	}
	k.Forget("v0", "v2", "missing")
	if n := k.Len(); n != 1 {
		t.Fatalf("%d versions held after forgetting two of three", n)
	}
	if _, _, err := k.Software("v1", wrapped["v1"]); err != nil || w.unwraps != 3 {
		t.Fatalf("v1 was lost with the others (%d unwraps, %v)", w.unwraps, err)
	}
	if _, _, err := k.Software("v2", wrapped["v2"]); err != nil || w.unwraps != 4 {
		t.Fatalf("a forgotten version was still held (%d unwraps, %v)", w.unwraps, err)
	}
	k.Clear()
	if k.Len() != 0 {
		t.Fatal("Clear left versions")
	}
}

// Every version keeps its own counts, at the same address, however many
// versions the process has counted (they are allocated in chunks) — and a
// Clear gives the versions after it fresh counts without touching the ones
// callers still hold.
func TestEveryVersionKeepsItsOwnCountsAcrossChunks(t *testing.T) {
	n := 2*countsChunk + 5
	k, _, wrapped := keyringVersions(t, 3, n)
	first := map[string]*VersionKey{}
	for i := range n {
		id := fmt.Sprintf("v%d", i)
		v, _, err := k.Software(id, wrapped[id])
		if err != nil {
			t.Fatal(err)
		}
		for range i % 3 {
			v.TakeSeal()
		}
		first[id] = v
	}
	for i := range n {
		id := fmt.Sprintf("v%d", i)
		v, _, err := k.Software(id, wrapped[id])
		if err != nil || v != first[id] || v.used.Load() != uint64(i%3) {
			t.Fatalf("%s: counts %p (used %d), first %p, want used %d (%v)", id, v, v.used.Load(), first[id], i%3, err)
		}
	}
	k.Clear()
	v, _, err := k.Software("v2", wrapped["v2"])
	if err != nil || v == first["v2"] || v.used.Load() != 0 || first["v2"].used.Load() != 2 {
		t.Fatalf("after Clear: %p used %d; held %p used %d (%v)", v, v.used.Load(), first["v2"], first["v2"].used.Load(), err)
	}
}

// Forgetting versions moves others within the Keyring's table; every
// version not forgotten keeps its counts, however their slots collided.
// The hashes here are made up so that versions crowd the same few slots
// and their runs wrap around the table's end.
func TestForgettingVersionsKeepsEveryOtherVersionsCounts(t *testing.T) {
	k := NewKeyring(nil, 4)
	last := uint64(len(k.table) - 1)
	var hs [][2]uint64
	for i := range 300 {
		home := []uint64{3, 3, 4, last, last - 1, 7}[i%6] + uint64(i/6)*17
		hs = append(hs, [2]uint64{home, uint64(i)<<40 | uint64(i%2)}) // half share a tag
	}
	held := map[[2]uint64]*VersionKey{}
	for i, h := range hs {
		v := k.newCounts(h)
		v.used.Store(uint64(i))
		held[h] = v
	}
	gone := map[[2]uint64]bool{}
	for i, h := range hs {
		if i%3 != 1 {
			continue
		}
		v, p, inOld := k.find(h)
		if v != held[h] {
			t.Fatalf("version %d not found before forgetting it", i)
		}
		k.remove(p, inOld)
		v.h = [2]uint64{}
		gone[h] = true
	}
	for i, h := range hs {
		v, _, _ := k.find(h)
		switch {
		case gone[h] && v != nil:
			t.Fatalf("forgotten version %d still found", i)
		case !gone[h] && (v != held[h] || v.used.Load() != uint64(i)):
			t.Fatalf("version %d: counts %p (used %v), want %p (used %d)", i, v, v, held[h], i)
		}
	}
	if k.live != len(hs)-len(gone) {
		t.Fatalf("table counts %d versions, want %d", k.live, len(hs)-len(gone))
	}
}

// The table grows without a pause: each version added moves a few slots of
// the old table, and versions are found, and forgotten, wherever they are
// meanwhile.
func TestTheTableGrowsAFewSlotsAtATime(t *testing.T) {
	k := NewKeyring(nil, 4)
	held := map[[2]uint64]*VersionKey{}
	gone := map[[2]uint64]bool{}
	check := func(when string) {
		t.Helper()
		for h, want := range held {
			v, _, _ := k.find(h)
			if gone[h] != (v == nil) || (v != nil && v != want) {
				t.Fatalf("%s: version %x found as %p, want %p (forgotten: %v)", when, h, v, want, gone[h])
			}
		}
	}
	growths, sawOld := 0, false
	for i := range 20000 {
		h := [2]uint64{uint64(i+1) * 0x9e3779b97f4a7c15, uint64(i + 1)} // never the zero hash, which marks a forgotten version
		before := len(k.table)
		held[h] = k.newCounts(h)
		if len(k.table) != before {
			growths++
			if k.old == nil || k.next > slotsMovedPerAdd {
				t.Fatalf("growth %d moved %d slots at once (old table kept: %v)", growths, k.next, k.old != nil)
			}
		}
		if k.old != nil {
			sawOld = true
			if i%7 == 0 { // forget one from each table while they coexist
				for g := range held {
					if gone[g] {
						continue
					}
					v, p, inOld := k.find(g)
					k.remove(p, inOld)
					v.h = [2]uint64{}
					gone[g] = true
					break
				}
			}
			if i%1000 == 0 {
				check(fmt.Sprintf("while moving, after %d versions", i+1))
			}
		}
	}
	if growths < 5 || !sawOld {
		t.Fatalf("%d growths (moving seen: %v): the test does not reach what it tests", growths, sawOld)
	}
	k.move(len(k.old))
	check("after moving")
	if k.old != nil || k.live != len(held)-len(gone) {
		t.Fatalf("old table kept: %v; %d versions counted, want %d", k.old != nil, k.live, len(held)-len(gone))
	}
	slots := 0
	for _, s := range k.table {
		if s == 0 {
			continue
		}
		slots++
		if k.number(s).h == [2]uint64{} {
			t.Fatal("a forgotten version still has a slot")
		}
	}
	if slots != k.live {
		t.Fatalf("%d slots in use for %d versions", slots, k.live)
	}
}
