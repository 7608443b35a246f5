package crypto

import (
	"sync"
	"sync/atomic"
)

// SealGrant is how many encryptions a node reserves at a time with a key
// version (see VersionKey.TakeSeal).
const SealGrant = 1 << 20

// VersionKey is a key version as a node holds it: this node's share of the
// version's encryption budget and, while the Keyring keeps it, the unwrapped
// key. AES-GCM with random IVs allows 2^32 encryptions per key,
// cluster-wide; nodes reserve budget in grants through Raft and count
// locally, so the count costs one atomic add per encryption. The counts
// outlive the key's eviction from the Keyring: forgetting them would let a
// version run a grant ahead of its reservations again.
type VersionKey struct {
	key       atomic.Pointer[SoftwareKey] // nil once evicted
	ref       atomic.Bool                 // used since the clock hand passed
	slot      int                         // index in Keyring.loaded (Keyring.mu)
	used      atomic.Uint64               // encryptions made by this process
	reserved  atomic.Uint64               // grants confirmed for this process
	pending   atomic.Bool                 // a reservation is in flight
	exhausted atomic.Bool                 // the cluster refused more budget
}

// TakeSeal counts one encryption. ok says whether the caller may encrypt
// now: a node may run one grant ahead of its confirmed reservations, so a
// new version is usable at once while its first reservation commits.
// reserve says the caller should reserve another grant now (and report with
// Reserved or ReserveFailed); it is true for one caller at a time.
func (v *VersionKey) TakeSeal() (ok, reserve bool) {
	if v.exhausted.Load() {
		return false, false
	}
	u := v.used.Add(1)
	r := v.reserved.Load()
	ok = u <= r+SealGrant
	if !ok {
		v.used.Add(^uint64(0)) // not used after all
	}
	reserve = u+SealGrant/2 > r && v.pending.CompareAndSwap(false, true)
	return ok, reserve
}

// Reserved records a confirmed grant of n encryptions.
func (v *VersionKey) Reserved(n uint64) {
	v.reserved.Add(n)
	v.pending.Store(false)
}

// ReserveFailed records a failed reservation. With exhausted, the version
// takes no more encryptions in this process.
func (v *VersionKey) ReserveFailed(exhausted bool) {
	if exhausted {
		v.exhausted.Store(true)
	}
	v.pending.Store(false)
}

// Exhausted reports whether the version may no longer encrypt.
func (v *VersionKey) Exhausted() bool { return v.exhausted.Load() }

// DefaultKeyringVersions is how many unwrapped versions a Keyring keeps by
// default: about 1 KiB each (AES round keys and GCM tables).
const DefaultKeyringVersions = 100000

// Keyring caches the unwrapped software key versions a node uses, so the
// fast path pays for unwrapping (and AES key expansion) once per version
// while it stays in use, not once per request. It keeps at most max
// unwrapped versions, evicting with the CLOCK algorithm (a version used
// since the hand last passed gets a second chance), so a hit costs a read
// lock and an atomic load — no list to reorder. A version starts without
// its second chance, so one-off uses (a scan over many keys) do not push
// out the versions in steady use. A version's seal counts stay after its
// key is evicted (about 100 bytes per version used since the process
// started): a caller may still hold the VersionKey it was given, so counts
// are dropped only with the version (Forget, Clear).
type Keyring struct {
	w      Wrapper
	max    int
	mu     sync.RWMutex
	m      map[string]*VersionKey // every version this process counts or holds
	loaded []*VersionKey          // the versions holding their key
	hand   int
}

// NewKeyring returns an empty Keyring that unwraps material with w and
// keeps at most maxVersions unwrapped (DefaultKeyringVersions if ≤ 0).
func NewKeyring(w Wrapper, maxVersions int) *Keyring {
	if maxVersions <= 0 {
		maxVersions = DefaultKeyringVersions
	}
	return &Keyring{w: w, max: maxVersions, m: make(map[string]*VersionKey)}
}

// Software returns a software key version's counts and its key, unwrapping
// wrapped (PurposeKeyMaterial, bound to versionID) if the Keyring does not
// hold it. The key stays usable by the caller after an eviction.
func (k *Keyring) Software(versionID string, wrapped []byte) (*VersionKey, KeyBackend, error) {
	k.mu.RLock()
	v := k.m[versionID]
	var sk *SoftwareKey
	if v != nil {
		if sk = v.key.Load(); sk != nil && !v.ref.Load() {
			v.ref.Store(true) // under the read lock: the clock hand never races it
		}
	}
	k.mu.RUnlock()
	if sk != nil {
		return v, sk, nil
	}
	material, err := k.w.Unwrap(PurposeKeyMaterial, versionID, wrapped)
	if err != nil {
		return nil, nil, err
	}
	defer clear(material)
	sk, err = NewSoftwareKey(material)
	if err != nil {
		return nil, nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	v = k.m[versionID]
	if v == nil {
		v = &VersionKey{}
		k.m[versionID] = v
	}
	if cur := v.key.Load(); cur != nil {
		return v, cur, nil
	}
	v.key.Store(sk) // ref stays false: a version used once goes first
	k.hold(v)
	return v, sk, nil
}

// hold adds v to the loaded versions, evicting one if the Keyring is full.
// Called with k.mu held.
func (k *Keyring) hold(v *VersionKey) {
	if len(k.loaded) < k.max {
		v.slot = len(k.loaded)
		k.loaded = append(k.loaded, v)
		return
	}
	for { // ends within two turns: the first clears every ref
		if k.hand >= len(k.loaded) {
			k.hand = 0
		}
		c := k.loaded[k.hand]
		if c.ref.Swap(false) {
			k.hand++
			continue
		}
		c.key.Store(nil) // its counts stay in k.m
		v.slot = k.hand
		k.loaded[k.hand] = v
		k.hand++
		return
	}
}

// Forget drops cached versions, for example when their key material is
// destroyed, so this process no longer holds them.
func (k *Keyring) Forget(versionIDs ...string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, id := range versionIDs {
		v := k.m[id]
		if v == nil {
			continue
		}
		delete(k.m, id)
		if v.key.Swap(nil) != nil {
			last := k.loaded[len(k.loaded)-1]
			k.loaded[v.slot], last.slot = last, v.slot
			k.loaded[len(k.loaded)-1] = nil
			k.loaded = k.loaded[:len(k.loaded)-1]
		}
	}
}

// Len returns the number of versions holding their unwrapped key.
func (k *Keyring) Len() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.loaded)
}

// Clear drops every cached version (after the whole state was replaced by a
// restore).
func (k *Keyring) Clear() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, v := range k.loaded {
		v.key.Store(nil)
	}
	clear(k.m)
	clear(k.loaded)
	k.loaded, k.hand = k.loaded[:0], 0
}
