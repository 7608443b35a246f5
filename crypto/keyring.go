package crypto

import (
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
)

// SealGrant is how many encryptions a node reserves at a time with a key
// version (see VersionKey.TakeSeal).
const SealGrant = 1 << 20

// VersionKey is a key version's encryption budget as a node holds it: this
// node's share, and where the Keyring keeps its unwrapped key. AES-GCM with random IVs allows 2^32 encryptions per key,
// cluster-wide; nodes reserve budget in grants through Raft and count
// locally, so the count costs one atomic add per encryption. The counts
// outlive the key's eviction from the Keyring: forgetting them would let a
// version run a grant ahead of its reservations again.
type VersionKey struct {
	h         [2]uint64     // the version id's hash (Keyring.hash); zero once forgotten (Keyring.mu)
	slot      int32         // index in Keyring.loaded while unwrapped, else -1 (Keyring.mu)
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

// DefaultKeyringVersions is how many unwrapped versions a Keyring keeps by
// default: about 1 KiB each (AES round keys and GCM tables).
const DefaultKeyringVersions = 100000

// countsChunk is how many VersionKeys are allocated together.
const countsChunk = 1024

// Keyring caches the unwrapped software key versions a node uses, so the
// fast path pays for unwrapping (and AES key expansion) once per version
// while it stays in use, not once per request. It keeps at most max
// unwrapped versions, evicting with the CLOCK algorithm (a version used
// since the hand last passed gets a second chance), so a hit costs a read
// lock and an atomic load — no list to reorder. A version starts without
// its second chance, so one-off uses (a scan over many keys) do not push
// out the versions in steady use.
//
// A version's seal counts stay after its key is evicted (about 60 bytes per
// version used since the process started): a caller may still hold the
// VersionKey it was given, so counts are dropped only with the version
// (Forget, Clear), and their memory is never reused. With a million
// versions in use they are most of the Keyring, so they hold no pointers
// for the garbage collector to follow: VersionKeys live in arrays of
// countsChunk, each with a 128-bit hash of its version id (two seeded
// maphash sums; two ids colliding would share counts, which happens with
// probability about n²/2¹²⁹). An unwrapped key is handed out only for the
// id it was unwrapped for.
//
// Every request looks its version up, and over a million versions that
// lookup misses the CPU's caches: a Go map took three or four misses (its
// table, control word, slot, then the counts), about 1 µs a request on the
// development machine. The Keyring's own table takes two: one 8-byte slot
// per version, a filter tag and the VersionKey's number, then the
// VersionKey, whose hash says whether it is the one. The table is open
// addressing with linear probing, at most half full, so a probe rarely
// leaves the slot's cache line. It grows without a pause: a full table
// gets a new one twice its size, and each version added after that moves a
// few slots of the old one over (lookups meanwhile try the new table, then
// the old), where moving half a million at once held every request up for
// 22 ms.
type Keyring struct {
	w      Wrapper
	max    int
	seeds  [2]maphash.Seed
	mu     sync.RWMutex
	table  []uint64                   // every version this process counts or holds: tag<<32 | number+1 (0: empty)
	old    []uint64                   // the table before the last growth, while its slots move to table
	next   int                        // old's next slot to move
	live   int                        // versions in table and old
	counts []*[countsChunk]VersionKey // by number
	n      int32                      // VersionKeys allocated
	loaded []loadedKey                // the versions holding their key
	hand   int
}

const (
	minKeyringSlots  = 1 << 10                  // the size of an empty Keyring's table
	movedSlot        = ^uint64(0) &^ 0xffffffff // an old slot moved to the table (no version has number -1)
	slotsMovedPerAdd = 8                        // slots of old moved per version added: done within a quarter of the new table's room
)

// loadedKey is an unwrapped version.
type loadedKey struct {
	id  string
	v   *VersionKey
	key *SoftwareKey
	ref atomic.Bool // used since the clock hand passed
}

// NewKeyring returns an empty Keyring that unwraps material with w and
// keeps at most maxVersions unwrapped (DefaultKeyringVersions if ≤ 0).
func NewKeyring(w Wrapper, maxVersions int) *Keyring {
	if maxVersions <= 0 {
		maxVersions = DefaultKeyringVersions
	}
	return &Keyring{w: w, max: maxVersions, seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		table: make([]uint64, minKeyringSlots)}
}

func (k *Keyring) hash(versionID string) [2]uint64 {
	return [2]uint64{maphash.String(k.seeds[0], versionID), maphash.String(k.seeds[1], versionID)}
}

// slotTag is the part of a table slot a version with hash h must match.
func slotTag(h [2]uint64) uint64 { return uint64(uint32(h[1])) << 32 }

// number returns the VersionKey a nonzero table slot names.
func (k *Keyring) number(slot uint64) *VersionKey {
	i := uint32(slot) - 1
	return &k.counts[i/countsChunk][i%countsChunk]
}

// probe returns where the version with hash h is in table t, or the empty
// slot where it would go, and its counts (nil if t has none). Moved slots
// (old's) are passed over. Called with k.mu held, for reading at least.
func (k *Keyring) probe(t []uint64, h [2]uint64) (int, *VersionKey) {
	mask := uint64(len(t) - 1)
	tag := slotTag(h)
	for p := h[0] & mask; ; p = (p + 1) & mask { // ends: a table is never full
		s := t[p]
		if s == 0 {
			return int(p), nil
		}
		if s&^0xffffffff == tag && s != movedSlot {
			if v := k.number(s); v.h == h {
				return int(p), v
			}
		}
	}
}

// find returns the counts of the version with hash h (nil if it has none),
// their slot, and whether that slot is the old table's. Called with k.mu
// held, for reading at least.
func (k *Keyring) find(h [2]uint64) (v *VersionKey, p int, inOld bool) {
	p, v = k.probe(k.table, h)
	if v == nil && k.old != nil {
		if q, w := k.probe(k.old, h); w != nil {
			return w, q, true
		}
	}
	return v, p, false
}

// held returns v's unwrapped key if the Keyring holds it for versionID.
// Called with k.mu held, for reading at least.
func (k *Keyring) held(v *VersionKey, versionID string) *loadedKey {
	if v == nil || v.slot < 0 {
		return nil
	}
	if l := &k.loaded[v.slot]; l.id == versionID {
		return l
	}
	return nil
}

// lookup returns the version's counts and, if it holds it, its key. Called
// with k.mu held, for reading at least.
func (k *Keyring) lookup(h [2]uint64, versionID string) (*VersionKey, *loadedKey) {
	v, _, _ := k.find(h)
	return v, k.held(v, versionID)
}

// Software returns a software key version's counts and its key, unwrapping
// wrapped (PurposeKeyMaterial, bound to versionID) if the Keyring does not
// hold it. The key stays usable by the caller after an eviction.
func (k *Keyring) Software(versionID string, wrapped []byte) (*VersionKey, KeyBackend, error) {
	h := k.hash(versionID)
	k.mu.RLock()
	v, l := k.lookup(h, versionID)
	var sk *SoftwareKey
	if l != nil {
		sk = l.key
		if !l.ref.Load() {
			l.ref.Store(true) // under the read lock: the clock hand never races it
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
	v, l = k.lookup(h, versionID)
	if l != nil {
		return v, l.key, nil
	}
	if v == nil {
		v = k.newCounts(h)
	}
	if v.slot < 0 { // else another id's key sits there: the counts collided, the key does not
		k.hold(strings.Clone(versionID), v, sk) // ref false: a version used once goes first
	}
	return v, sk, nil
}

// newCounts allocates the counts of a version the Keyring does not have.
// Called with k.mu held.
func (k *Keyring) newCounts(h [2]uint64) *VersionKey {
	if (k.live+1)*2 > len(k.table) {
		k.move(len(k.old)) // the last growth's moves, if any are left
		k.old, k.table, k.next = k.table, make([]uint64, 2*len(k.table)), 0
	}
	p, _ := k.probe(k.table, h)
	i := k.n
	if int(i/countsChunk) == len(k.counts) {
		k.counts = append(k.counts, new([countsChunk]VersionKey))
	}
	k.n++
	k.table[p] = slotTag(h) | uint64(i+1)
	k.live++
	v := &k.counts[i/countsChunk][i%countsChunk]
	v.h, v.slot = h, -1
	k.move(slotsMovedPerAdd)
	return v
}

// move moves up to n slots of the old table to the table, and drops the
// old table once it has moved them all. Called with k.mu held.
func (k *Keyring) move(n int) {
	if k.old == nil {
		return
	}
	mask := uint64(len(k.table) - 1)
	for ; n > 0 && k.next < len(k.old); n-- {
		if s := k.old[k.next]; s != 0 && s != movedSlot {
			p := k.number(s).h[0] & mask
			for k.table[p] != 0 {
				p = (p + 1) & mask
			}
			k.table[p] = s
			k.old[k.next] = movedSlot
		}
		k.next++
	}
	if k.next == len(k.old) {
		k.old = nil
	}
}

// remove drops the version in slot p of the table, or of the old table if
// inOld. In the table it empties the slot and moves later slots of its run
// back, so every version stays reachable from its home slot without gaps;
// in the old table, which only loses slots now, it marks the slot moved.
// Called with k.mu held.
func (k *Keyring) remove(p int, inOld bool) {
	k.live--
	if inOld {
		k.old[p] = movedSlot
		return
	}
	t, mask := k.table, uint64(len(k.table)-1)
	hole := uint64(p)
	t[hole] = 0
	for q := (hole + 1) & mask; t[q] != 0; q = (q + 1) & mask {
		home := k.number(t[q]).h[0] & mask
		if (q-home)&mask >= (q-hole)&mask { // hole lies between its home and q
			t[hole], t[q] = t[q], 0
			hole = q
		}
	}
}

// hold adds a version's key to the loaded versions, evicting one if the
// Keyring is full. Called with k.mu held.
func (k *Keyring) hold(id string, v *VersionKey, key *SoftwareKey) {
	if len(k.loaded) < k.max {
		k.loaded = append(k.loaded, loadedKey{})
		k.put(int32(len(k.loaded)-1), id, v, key, false)
		return
	}
	for { // ends within two turns: the first clears every ref
		if k.hand >= len(k.loaded) {
			k.hand = 0
		}
		c := &k.loaded[k.hand]
		if c.ref.Swap(false) {
			k.hand++
			continue
		}
		c.v.slot = -1 // its counts stay
		k.put(int32(k.hand), id, v, key, false)
		k.hand++
		return
	}
}

// put stores a version's key in slot i (nil v: empties it).
func (k *Keyring) put(i int32, id string, v *VersionKey, key *SoftwareKey, ref bool) {
	d := &k.loaded[i]
	d.id, d.v, d.key = id, v, key
	d.ref.Store(ref)
	if v != nil {
		v.slot = i
	}
}

// Forget drops cached versions, for example when their key material is
// destroyed, so this process no longer holds them.
func (k *Keyring) Forget(versionIDs ...string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, id := range versionIDs {
		h := k.hash(id)
		v, p, inOld := k.find(h)
		if v == nil {
			continue
		}
		l := k.held(v, id)
		k.remove(p, inOld)
		v.h = [2]uint64{}
		if l != nil {
			s, last := v.slot, len(k.loaded)-1
			if m := &k.loaded[last]; int(s) != last {
				k.put(s, m.id, m.v, m.key, m.ref.Load())
			}
			k.put(int32(last), "", nil, nil, false)
			k.loaded = k.loaded[:last]
			v.slot = -1
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
// restore). Callers holding a VersionKey keep a valid one; it is no longer
// the Keyring's.
func (k *Keyring) Clear() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i := range k.loaded {
		k.loaded[i].v.slot = -1
		k.put(int32(i), "", nil, nil, false)
	}
	k.table, k.old, k.next, k.live = make([]uint64, minKeyringSlots), nil, 0, 0
	k.counts, k.n = nil, 0
	k.loaded, k.hand = k.loaded[:0], 0
}
