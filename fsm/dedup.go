package fsm

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"slices"
	"time"
)

// Windows of the replicated duplicate filters.
const (
	// RequestWindow is how long a request id is remembered: a retry of a
	// forwarded write arriving within it returns the first result.
	RequestWindow = 2 * time.Minute
	// NonceWindow is the signed-timestamp window of the API (±15 minutes).
	// A nonce is remembered until its minute has left the window.
	NonceWindow = 15 * time.Minute
)

const minuteNS = int64(time.Minute)

type reqEntry struct {
	id       [16]byte
	time     int64
	code     uint16
	recorded bool   // the request has its trail record
	account  string // key the command touched, for replaying the result
	keyID    string
}

// reqChunkLen is how many request ids one chunk of the window holds.
const reqChunkLen = 1024

// reqChunk is a run of the request window's entries, in the order they
// came. A snapshot keeps the chunks of its time and reads them while Apply
// goes on, so a chunk made before the last capture (gen below the
// dedup's) is copied before one of its entries changes; entries appended
// after the ones a snapshot saw are never read by it.
type reqChunk struct {
	e   [reqChunkLen]reqEntry
	gen uint64
}

// dedup holds the duplicate filters. It changes only inside Apply, in log
// order, so every node holds the same one; Snapshot captures it (capture)
// without copying or encoding it: at 25 000 requests a second a snapshot
// holding the FSM while it encoded the window stopped every apply for
// tens of milliseconds, and for 0.2–0.5 s after a burst of writes (half a
// million request ids, a million nonces: a throw-away test).
type dedup struct {
	reqs   map[[16]byte]uint64 // request id → its entry's seq
	chunks []*reqChunk         // chunks[0] holds seq base and on
	base   uint64              // seq of chunks[0].e[0]
	head   uint64              // seq of the oldest entry in the window
	next   uint64              // seq of the next entry
	gen    uint64              // captures so far
	// peak is the most request ids reqs has held since it was last
	// rebuilt: a Go map keeps its largest size's memory, and the garbage
	// collector scans all of it, after its entries are deleted.
	peak   int
	nonces map[int64]*nonceSet
	// journals holds, for each node journal shipped from (TrailShip), the
	// number of its last event applied and when it was last shipped from.
	journals map[[16]byte]journalMark
}

// nonceSet holds one minute's nonce fingerprints: a set to check, and a
// list in arrival order that only grows, so a captured prefix never
// changes.
type nonceSet struct {
	has  map[uint64]struct{}
	list []uint64
}

type journalMark struct {
	last uint64
	time int64
}

// minShrink is the size below which dedup's map is never rebuilt: small
// enough not to matter, large enough that a steady load never rebuilds it.
const minShrink = 4096

func newDedup() dedup {
	return dedup{reqs: make(map[[16]byte]uint64), nonces: make(map[int64]*nonceSet),
		journals: make(map[[16]byte]journalMark)}
}

// at returns the entry with seq, for reading.
func (d *dedup) at(seq uint64) *reqEntry { return entryIn(d.chunks, d.base, seq) }

// entryIn returns the entry with seq in chunks whose first holds seq base.
func entryIn(chunks []*reqChunk, base, seq uint64) *reqEntry {
	i := seq - base
	return &chunks[i/reqChunkLen].e[i%reqChunkLen]
}

// mutable returns the entry with seq, for changing: its chunk is copied
// first if a snapshot holds it.
func (d *dedup) mutable(seq uint64) *reqEntry {
	i := seq - d.base
	c := d.chunks[i/reqChunkLen]
	if c.gen < d.gen {
		c = &reqChunk{e: c.e, gen: d.gen}
		d.chunks[i/reqChunkLen] = c
	}
	return &c.e[i%reqChunkLen]
}

// add appends e, the entry of a request id not in the window.
func (d *dedup) add(e reqEntry) {
	i := d.next - d.base
	if i == uint64(len(d.chunks))*reqChunkLen {
		d.chunks = append(d.chunks, &reqChunk{gen: d.gen})
	}
	d.chunks[i/reqChunkLen].e[i%reqChunkLen] = e
	d.reqs[e.id] = d.next
	d.next++
}

func (d *dedup) expire(now int64) {
	cut := now - int64(RequestWindow)
	for d.head < d.next && d.at(d.head).time < cut {
		delete(d.reqs, d.at(d.head).id)
		d.head++
	}
	for d.head-d.base >= reqChunkLen { // a chunk wholly expired
		d.chunks[0] = nil
		d.chunks = d.chunks[1:]
		d.base += reqChunkLen
	}
	d.shrink()
	for m := range d.nonces {
		if nonceExpired(m, now) {
			delete(d.nonces, m)
		}
	}
}

// shrink gives back the memory of a burst once its ids have expired (a
// million CreateKeys leave tens of MB otherwise): when at most a quarter
// of the peak is live, the map is copied to a fitting one. Each id is
// copied O(1) times in all.
func (d *dedup) shrink() {
	d.peak = max(d.peak, len(d.reqs))
	if d.peak >= minShrink && len(d.reqs) <= d.peak/4 {
		reqs := make(map[[16]byte]uint64, len(d.reqs))
		for id, seq := range d.reqs {
			reqs[id] = seq
		}
		d.reqs, d.peak = reqs, len(reqs)
	}
}

func nonceExpired(minute, now int64) bool {
	return now >= (minute+1)*minuteNS+int64(NonceWindow)
}

func (d *dedup) request(id [16]byte) (reqEntry, bool) {
	if id == ([16]byte{}) {
		return reqEntry{}, false
	}
	seq, ok := d.reqs[id]
	if !ok {
		return reqEntry{}, false
	}
	return *d.at(seq), true
}

func (d *dedup) recordRequest(id [16]byte, e reqEntry) {
	if id == ([16]byte{}) {
		return
	}
	if seq, ok := d.reqs[id]; ok { // marked recorded by the command itself
		old := d.mutable(seq)
		old.code, old.account, old.keyID = e.code, e.account, e.keyID
		old.recorded = old.recorded || e.recorded
		return
	}
	e.id = id
	d.add(e)
}

// recorded reports whether the request id has a trail record.
func (d *dedup) recorded(id [16]byte) bool {
	seq, ok := d.reqs[id]
	return ok && d.at(seq).recorded
}

// markRecorded notes that the request id has its trail record.
func (d *dedup) markRecorded(id [16]byte, now int64) {
	if seq, ok := d.reqs[id]; ok {
		d.mutable(seq).recorded = true
		return
	}
	d.add(reqEntry{id: id, time: now, recorded: true})
}

// shipped notes that journal id's events up to number last are applied,
// and forgets journals not shipped from for JournalKeep.
func (d *dedup) shipped(id [16]byte, last uint64, now int64) {
	d.journals[id] = journalMark{last: last, time: now}
	for k, m := range d.journals {
		if m.time < now-int64(JournalKeep) {
			delete(d.journals, k)
		}
	}
}

// checkNonce records a nonce fingerprint and fails if it was recorded
// before, or if its minute is outside the window at time now.
func (d *dedup) checkNonce(fp uint64, minute, now int64) error {
	if nonceExpired(minute, now) || minute*minuteNS > now+int64(NonceWindow)+minuteNS {
		return ErrNonceExpired
	}
	set := d.nonces[minute]
	if set == nil {
		set = &nonceSet{has: make(map[uint64]struct{})}
		d.nonces[minute] = set
	}
	if _, ok := set.has[fp]; ok {
		return ErrNonceReused
	}
	set.has[fp] = struct{}{}
	set.list = append(set.list, fp)
	return nil
}

// dedupView is the filters as a snapshot captured them.
type dedupView struct {
	chunks           []*reqChunk
	base, head, next uint64
	nonces           []nonceMinute
}

type nonceMinute struct {
	minute int64
	fps    []uint64
}

// capture returns a view of the filters that later changes leave as it
// is. It copies a pointer per chunk and per minute (the minutes sorted).
func (d *dedup) capture() dedupView {
	d.gen++
	v := dedupView{chunks: slices.Clone(d.chunks), base: d.base, head: d.head, next: d.next}
	for m, set := range d.nonces {
		v.nonces = append(v.nonces, nonceMinute{m, set.list[:len(set.list):len(set.list)]})
	}
	slices.SortFunc(v.nonces, func(a, b nonceMinute) int { return cmp.Compare(a.minute, b.minute) })
	return v
}

func (v *dedupView) encode(e *encoder) {
	e.b = slices.Grow(e.b, v.maxSize())
	e.uvarint(v.next - v.head)
	for seq := v.head; seq < v.next; seq++ {
		re := entryIn(v.chunks, v.base, seq)
		e.b = append(e.b, re.id[:]...)
		e.varint(re.time)
		e.uvarint(uint64(re.code))
		e.str(re.account)
		e.str(re.keyID)
		e.bool(re.recorded)
	}
	e.uvarint(uint64(len(v.nonces)))
	var fps []uint64 // a minute's nonces, sorted (the view's own are shared with Apply)
	for _, m := range v.nonces {
		fps = append(fps[:0], m.fps...)
		slices.Sort(fps)
		e.varint(m.minute)
		e.uvarint(uint64(len(fps)))
		for _, fp := range fps {
			e.u64(fp)
		}
	}
}

// maxSize bounds the bytes encode appends. The filters are one snapshot
// record, tens of MB after a burst of writes, and growing it as it was
// written cost a tenth of a snapshot's CPU (copying, and clearing each new
// array) at a million keys.
func (v *dedupView) maxSize() int {
	const u = binary.MaxVarintLen64
	n := 2 * u
	for seq := v.head; seq < v.next; seq++ {
		re := entryIn(v.chunks, v.base, seq)
		n += len(re.id) + 4*u + len(re.account) + len(re.keyID) + 1
	}
	for _, m := range v.nonces {
		n += 2*u + 8*len(m.fps)
	}
	return n
}

// encodeJournals writes the journal marks, by id (a section of its own:
// snapshots of format version 2 have none).
func (d *dedup) encodeJournals(e *encoder) {
	ids := make([][16]byte, 0, len(d.journals))
	for id := range d.journals {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
	e.uvarint(uint64(len(ids)))
	for _, id := range ids {
		e.b = append(e.b, id[:]...)
		e.uvarint(d.journals[id].last)
		e.varint(d.journals[id].time)
	}
}

func (d *dedup) decodeJournals(dc *decoder) {
	n := dc.length(16 + 2)
	for range n {
		var id [16]byte
		copy(id[:], dc.fixed(16))
		d.journals[id] = journalMark{last: dc.uvarint(), time: dc.varint()}
	}
}

func (d *dedup) decode(dc *decoder) {
	*d = newDedup()
	n := dc.length(16 + 4)
	for range n {
		var e reqEntry
		if len(dc.b) < 16 {
			dc.fail("request id")
			return
		}
		copy(e.id[:], dc.b)
		dc.b = dc.b[16:]
		e.time, e.code, e.account, e.keyID, e.recorded = dc.varint(), uint16(dc.uvarint()), dc.str(), dc.str(), dc.bool()
		d.add(e)
	}
	mins := dc.length(2)
	for range mins {
		m := dc.varint()
		k := dc.length(8)
		set := &nonceSet{has: make(map[uint64]struct{}, k), list: make([]uint64, 0, k)}
		for range k {
			fp := dc.u64()
			set.has[fp] = struct{}{}
			set.list = append(set.list, fp)
		}
		d.nonces[m] = set
	}
}
