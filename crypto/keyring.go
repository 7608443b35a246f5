package crypto

import (
	"sync"
	"sync/atomic"
)

// SealGrant is how many encryptions a node reserves at a time with a key
// version (see VersionKey.TakeSeal).
const SealGrant = 1 << 20

// VersionKey is a key version as a node holds it: the backend that seals and
// opens, and this node's share of the version's encryption budget. AES-GCM
// with random IVs allows 2^32 encryptions per key, cluster-wide; nodes
// reserve budget in grants through Raft and count locally, so the count
// costs one atomic add per encryption.
type VersionKey struct {
	KeyBackend
	used      atomic.Uint64 // encryptions made by this process
	reserved  atomic.Uint64 // grants confirmed for this process
	pending   atomic.Bool   // a reservation is in flight
	exhausted atomic.Bool   // the cluster refused more budget
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

// Keyring caches the unwrapped software key versions a node has used, so
// the fast path pays for unwrapping (and AES key expansion) once per version
// and process, not once per request. Lookups take a read lock only.
type Keyring struct {
	w  Wrapper
	mu sync.RWMutex
	m  map[string]*VersionKey
}

// NewKeyring returns an empty Keyring that unwraps material with w.
func NewKeyring(w Wrapper) *Keyring {
	return &Keyring{w: w, m: make(map[string]*VersionKey)}
}

// Software returns a software key version, unwrapping wrapped
// (PurposeKeyMaterial, bound to versionID) on first use.
func (k *Keyring) Software(versionID string, wrapped []byte) (*VersionKey, error) {
	k.mu.RLock()
	v, ok := k.m[versionID]
	k.mu.RUnlock()
	if ok {
		return v, nil
	}
	material, err := k.w.Unwrap(PurposeKeyMaterial, versionID, wrapped)
	if err != nil {
		return nil, err
	}
	defer clear(material)
	sk, err := NewSoftwareKey(material)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if v, ok := k.m[versionID]; ok {
		return v, nil
	}
	v = &VersionKey{KeyBackend: sk}
	k.m[versionID] = v
	return v, nil
}

// Forget drops cached versions, for example when their key material is
// destroyed, so this process no longer holds them.
func (k *Keyring) Forget(versionIDs ...string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, id := range versionIDs {
		delete(k.m, id)
	}
}

// Len returns the number of cached versions.
func (k *Keyring) Len() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.m)
}

// Clear drops every cached version (after the whole state was replaced by a
// restore).
func (k *Keyring) Clear() {
	k.mu.Lock()
	defer k.mu.Unlock()
	clear(k.m)
}
