package replay

import (
	"errors"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

var (
	// ErrReplay reports that the same (AccessKeyId, nonce) pair was already
	// accepted while a request carrying it could still be replayed.
	ErrReplay = errors.New("replay: nonce already used")
	// ErrTimestamp reports that the signed timestamp lies outside the
	// accepted window around the server clock.
	ErrTimestamp = errors.New("replay: timestamp outside the accepted window")
	// ErrFull reports that recording the nonce would exceed Config.MaxBytes.
	// The request must be refused (the filter fails closed); the condition is
	// transient, so callers should answer with a retryable error.
	ErrFull = errors.New("replay: nonce memory full")
)

const (
	defaultWindow   = 15 * time.Minute
	defaultMaxBytes = 1 << 30
	maxWindow       = 7 * 24 * time.Hour // keeps the ring (one pointer per minute) small

	bucketSpan     = int64(time.Minute)
	numShards      = 64 // shards per bucket, selected by the top fingerprint bits
	shardShift     = 64 - 6
	initialSlots   = 64 // slots in a shard's first table; a power of two
	slotBytes      = 8  // bytes per table slot (one uint64 fingerprint)
	sweepInterval  = int64(time.Second)
	ringSlackSlots = 3 // ring slots beyond 2*ceil(Window/minute)
)

// Config configures a Filter.
type Config struct {
	Window   time.Duration // accepted |timestamp-now|; 0 means 15*time.Minute
	MaxBytes int64         // memory cap for fingerprint tables; 0 means 1<<30
}

// Filter remembers the (AccessKeyId, nonce) pairs of accepted requests for as
// long as their signed timestamps stay inside the window, and rejects
// timestamps outside it. A Filter must be created with New; it is safe for
// concurrent use.
type Filter struct {
	window   int64 // nanoseconds
	maxBytes int64
	seed     maphash.Seed

	// floor is the lowest bucket minute still accepted. Every minute below it
	// has been (or may be) dropped, so requests signed in it are refused with
	// ErrTimestamp even by a caller whose clock lags behind. It only grows.
	floor     atomic.Int64
	lastSweep atomic.Int64 // now (ns) of the last sweep
	bytes     atomic.Int64 // bytes held by all fingerprint tables

	ring []atomic.Pointer[bucket] // indexed by minute mod len(ring)
}

// bucket holds the fingerprints of all accepted requests whose signed
// timestamp falls in one minute.
type bucket struct {
	shards [numShards]shard // first, so that they start cache-line aligned
	minute int64            // Unix minute: floor(ts.UnixNano() / time.Minute)
}

type shardState struct {
	mu    sync.Mutex
	dead  bool     // the bucket was dropped; refuse inserts
	count int      // occupied slots
	table []uint64 // open addressing, linear probing; 0 marks an empty slot
}

// shard is a shardState padded to a cache line so that neighbouring shards'
// mutexes do not share one.
type shard struct {
	shardState
	_ [(64 - unsafe.Sizeof(shardState{})%64) % 64]byte
}

// errDead is returned internally when an insert reaches a dropped bucket.
var errDead = errors.New("replay: bucket dropped")

// New returns a Filter configured by cfg. It returns an error if a value is
// negative or Window exceeds 7 days.
func New(cfg Config) (*Filter, error) {
	if cfg.Window < 0 {
		return nil, errors.New("replay: negative Window")
	}
	if cfg.MaxBytes < 0 {
		return nil, errors.New("replay: negative MaxBytes")
	}
	if cfg.Window > maxWindow {
		return nil, errors.New("replay: Window exceeds 7 days")
	}
	if cfg.Window == 0 {
		cfg.Window = defaultWindow
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = defaultMaxBytes
	}
	windowMinutes := (int64(cfg.Window) + bucketSpan - 1) / bucketSpan
	f := &Filter{
		window:   int64(cfg.Window),
		maxBytes: cfg.MaxBytes,
		seed:     maphash.MakeSeed(),
		ring:     make([]atomic.Pointer[bucket], 2*windowMinutes+ringSlackSlots),
	}
	f.floor.Store(math.MinInt64)
	f.lastSweep.Store(math.MinInt64)
	return f, nil
}

// Check validates ts against now (ErrTimestamp if |ts-now| > Window), then
// records the pair and returns ErrReplay if it was already recorded. Safe for
// concurrent use. accessKeyID and nonce may alias buffers the caller reuses
// afterwards: do not keep them.
//
// Check returns ErrFull, without recording the pair, if recording it would
// exceed Config.MaxBytes. It also returns ErrTimestamp for a timestamp whose
// minute was already dropped because another call passed a later now; with
// clocks that agree to within a minute this only affects timestamps that are
// about to leave the window anyway.
func (f *Filter) Check(accessKeyID, nonce []byte, ts, now time.Time) error {
	if d := ts.Sub(now); d > time.Duration(f.window) || d < -time.Duration(f.window) {
		return ErrTimestamp
	}
	nowNs := now.UnixNano()
	minute := floorDiv(ts.UnixNano(), bucketSpan)
	if minute < f.raiseFloor(nowNs) {
		return ErrTimestamp
	}
	f.maybeSweep(nowNs)

	b := f.bucketFor(minute)
	// A bucket is dropped only after floor has been raised above its minute,
	// so checking floor after loading the slot guarantees we did not miss a
	// bucket that was dropped while we raced with the dropper.
	if b == nil || minute < f.floor.Load() {
		return ErrTimestamp
	}
	fp := f.fingerprint(accessKeyID, nonce)
	switch err := b.shards[fp>>shardShift].insert(f, fp); err {
	case errDead:
		return ErrTimestamp
	default:
		return err
	}
}

// Stats describes the memory held by a Filter.
type Stats struct {
	Buckets int   // live minute buckets
	Entries int64 // fingerprints stored in them
	Bytes   int64 // bytes of all fingerprint tables (the quantity capped by MaxBytes)
}

// Stats returns the current number of buckets, entries and table bytes. It
// locks each shard briefly and is meant for monitoring, not the hot path.
func (f *Filter) Stats() Stats {
	var s Stats
	for i := range f.ring {
		b := f.ring[i].Load()
		if b == nil {
			continue
		}
		s.Buckets++
		for j := range b.shards {
			sh := &b.shards[j]
			sh.mu.Lock()
			s.Entries += int64(sh.count)
			sh.mu.Unlock()
		}
	}
	s.Bytes = f.bytes.Load()
	return s
}

// fingerprint hashes the pair with a length prefix so that distinct pairs
// never feed the hash the same byte stream. It never returns 0.
func (f *Filter) fingerprint(accessKeyID, nonce []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(f.seed)
	n := uint64(len(accessKeyID))
	var prefix [8]byte
	for i := range prefix {
		prefix[i] = byte(n >> (8 * i))
	}
	h.Write(prefix[:])
	h.Write(accessKeyID)
	h.Write(nonce)
	fp := h.Sum64()
	if fp == 0 {
		fp = 1
	}
	return fp
}

// raiseFloor raises floor to the first minute that is not yet expired at
// now and returns the resulting floor. Minute M expires once
// (M+1)*minute + Window < now, i.e. for M <= ceil((now-Window)/minute) - 2.
func (f *Filter) raiseFloor(nowNs int64) int64 {
	want := ceilDiv(nowNs-f.window, bucketSpan) - 1
	for {
		cur := f.floor.Load()
		if want <= cur {
			return cur
		}
		if f.floor.CompareAndSwap(cur, want) {
			return want
		}
	}
}

// maybeSweep drops expired buckets, at most once per sweepInterval of now, so
// that their memory is released even if no request maps to their slot.
func (f *Filter) maybeSweep(nowNs int64) {
	last := f.lastSweep.Load()
	if nowNs < last+sweepInterval || !f.lastSweep.CompareAndSwap(last, nowNs) {
		return
	}
	floor := f.floor.Load()
	for i := range f.ring {
		slot := &f.ring[i]
		b := slot.Load()
		if b != nil && b.minute < floor && slot.CompareAndSwap(b, nil) {
			b.release(f)
		}
	}
}

// bucketFor returns the bucket for minute, creating it (and dropping the
// expired bucket that held its ring slot) if needed. It returns nil if the
// slot is held by a bucket that must not be dropped, in which case minute is
// below floor.
func (f *Filter) bucketFor(minute int64) *bucket {
	slot := &f.ring[floorMod(minute, int64(len(f.ring)))]
	var nb *bucket
	for {
		b := slot.Load()
		if b != nil {
			if b.minute == minute {
				return b
			}
			// A newer minute owns the slot: ours expired for some caller.
			// An older one that is not below floor cannot happen, because
			// the ring is wider than the live span; fail closed anyway.
			if b.minute > minute || b.minute >= f.floor.Load() {
				return nil
			}
		}
		if nb == nil {
			nb = &bucket{minute: minute}
		}
		if slot.CompareAndSwap(b, nb) {
			if b != nil {
				b.release(f)
			}
			return nb
		}
	}
}

// release frees the tables of a bucket that has been removed from the ring.
func (b *bucket) release(f *Filter) {
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		if !s.dead {
			s.dead = true
			f.bytes.Add(-int64(len(s.table)) * slotBytes)
			s.table = nil
			s.count = 0
		}
		s.mu.Unlock()
	}
}

// insert records fp. It returns ErrReplay if fp is already present, ErrFull
// if the table would have to grow beyond the cap, errDead if the bucket was
// dropped.
func (s *shard) insert(f *Filter, fp uint64) error {
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return errDead
	}
	if s.table == nil {
		if !f.reserve(initialSlots * slotBytes) {
			s.mu.Unlock()
			return ErrFull
		}
		s.table = make([]uint64, initialSlots)
	}
	t := s.table
	mask := uint64(len(t) - 1)
	i := fp & mask
	for {
		v := t[i]
		if v == fp {
			s.mu.Unlock()
			return ErrReplay
		}
		if v == 0 {
			break
		}
		i = (i + 1) & mask
	}
	if 4*(s.count+1) > 3*len(t) {
		if !s.grow(f) {
			s.mu.Unlock()
			return ErrFull
		}
		t = s.table
		mask = uint64(len(t) - 1)
		i = fp & mask
		for t[i] != 0 {
			i = (i + 1) & mask
		}
	}
	t[i] = fp
	s.count++
	s.mu.Unlock()
	return nil
}

// grow doubles the table. The new table is charged before the old one is
// released, so the accounting covers the peak during rehashing.
func (s *shard) grow(f *Filter) bool {
	old := s.table
	n := 2 * len(old)
	if !f.reserve(int64(n) * slotBytes) {
		return false
	}
	t := make([]uint64, n)
	mask := uint64(n - 1)
	for _, v := range old {
		if v == 0 {
			continue
		}
		i := v & mask
		for t[i] != 0 {
			i = (i + 1) & mask
		}
		t[i] = v
	}
	s.table = t
	f.bytes.Add(-int64(len(old)) * slotBytes)
	return true
}

// reserve charges n bytes against MaxBytes, reporting false if that would
// exceed it.
func (f *Filter) reserve(n int64) bool {
	for {
		cur := f.bytes.Load()
		if cur+n > f.maxBytes {
			return false
		}
		if f.bytes.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }

func floorMod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}
