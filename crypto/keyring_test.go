package crypto

import (
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
