package fsm

import (
	"bytes"
	"slices"
	"sort"
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
	time     int64
	code     uint16
	account  string // key the command touched, for replaying the result
	keyID    string
	recorded bool // the request has its trail record
}

type reqRecord struct {
	id   [16]byte
	time int64
}

// dedup holds the duplicate filters. It changes only inside Apply, in log
// order, so every node holds the same one; Snapshot captures it.
type dedup struct {
	reqs  map[[16]byte]reqEntry
	order []reqRecord // insertion order; times never decrease; live from head
	head  int
	// peak is the most request ids reqs has held since it was last
	// rebuilt: a Go map keeps its largest size's memory, and the garbage
	// collector scans all of it, after its entries are deleted.
	peak   int
	nonces map[int64]map[uint64]struct{}
	// journals holds, for each node journal shipped from (TrailShip), the
	// number of its last event applied and when it was last shipped from.
	journals map[[16]byte]journalMark
}

type journalMark struct {
	last uint64
	time int64
}

// minShrink is the size below which dedup's map and order are never
// rebuilt: small enough not to matter, large enough that a steady load
// never rebuilds them.
const minShrink = 4096

func newDedup() dedup {
	return dedup{reqs: make(map[[16]byte]reqEntry), nonces: make(map[int64]map[uint64]struct{}),
		journals: make(map[[16]byte]journalMark)}
}

func (d *dedup) expire(now int64) {
	cut := now - int64(RequestWindow)
	for d.head < len(d.order) && d.order[d.head].time < cut {
		delete(d.reqs, d.order[d.head].id)
		d.head++
	}
	// Compact only when the dead prefix is the larger half, so each entry
	// is copied O(1) times in all.
	if d.head > len(d.order)/2 {
		n := copy(d.order, d.order[d.head:])
		d.order, d.head = d.order[:n], 0
	}
	d.shrink()
	for m := range d.nonces {
		if nonceExpired(m, now) {
			delete(d.nonces, m)
		}
	}
}

// shrink gives back the memory of a burst once its ids have expired (a
// million CreateKeys leave ≈ 200 MB otherwise): when at most a quarter of
// the peak is live, the map and order are copied to fitting ones. Each id
// is copied O(1) times in all, as in expire's compaction.
func (d *dedup) shrink() {
	d.peak = max(d.peak, len(d.reqs))
	if d.peak >= minShrink && len(d.reqs) <= d.peak/4 {
		reqs := make(map[[16]byte]reqEntry, len(d.reqs))
		for id, e := range d.reqs {
			reqs[id] = e
		}
		d.reqs, d.peak = reqs, len(reqs)
	}
	if live := len(d.order) - d.head; cap(d.order) >= minShrink && live <= cap(d.order)/4 {
		d.order, d.head = append(make([]reqRecord, 0, 2*live), d.order[d.head:]...), 0
	}
}

func nonceExpired(minute, now int64) bool {
	return now >= (minute+1)*minuteNS+int64(NonceWindow)
}

func (d *dedup) request(id [16]byte) (reqEntry, bool) {
	if id == ([16]byte{}) {
		return reqEntry{}, false
	}
	e, ok := d.reqs[id]
	return e, ok
}

func (d *dedup) recordRequest(id [16]byte, e reqEntry) {
	if id == ([16]byte{}) {
		return
	}
	if old, ok := d.reqs[id]; ok { // marked recorded by the command itself
		e.recorded, e.time = e.recorded || old.recorded, old.time
		d.reqs[id] = e
		return
	}
	d.reqs[id] = e
	d.order = append(d.order, reqRecord{id, e.time})
}

// recorded reports whether the request id has a trail record.
func (d *dedup) recorded(id [16]byte) bool { return d.reqs[id].recorded }

// markRecorded notes that the request id has its trail record.
func (d *dedup) markRecorded(id [16]byte, now int64) {
	e, ok := d.reqs[id]
	if !ok {
		e.time = now
		d.order = append(d.order, reqRecord{id, now})
	}
	e.recorded = true
	d.reqs[id] = e
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
		set = make(map[uint64]struct{})
		d.nonces[minute] = set
	}
	if _, ok := set[fp]; ok {
		return ErrNonceReused
	}
	set[fp] = struct{}{}
	return nil
}

func (d *dedup) encode(e *encoder) {
	e.uvarint(uint64(len(d.order) - d.head))
	for _, r := range d.order[d.head:] {
		re := d.reqs[r.id]
		e.b = append(e.b, r.id[:]...)
		e.varint(re.time)
		e.uvarint(uint64(re.code))
		e.str(re.account)
		e.str(re.keyID)
		e.bool(re.recorded)
	}
	minutes := make([]int64, 0, len(d.nonces))
	for m := range d.nonces {
		minutes = append(minutes, m)
	}
	sort.Slice(minutes, func(i, j int) bool { return minutes[i] < minutes[j] })
	e.uvarint(uint64(len(minutes)))
	for _, m := range minutes {
		fps := make([]uint64, 0, len(d.nonces[m]))
		for fp := range d.nonces[m] {
			fps = append(fps, fp)
		}
		sort.Slice(fps, func(i, j int) bool { return fps[i] < fps[j] })
		e.varint(m)
		e.uvarint(uint64(len(fps)))
		for _, fp := range fps {
			e.u64(fp)
		}
	}
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
		var r reqRecord
		if len(dc.b) < 16 {
			dc.fail("request id")
			return
		}
		copy(r.id[:], dc.b)
		dc.b = dc.b[16:]
		e := reqEntry{time: dc.varint(), code: uint16(dc.uvarint()), account: dc.str(), keyID: dc.str(), recorded: dc.bool()}
		r.time = e.time
		d.reqs[r.id] = e
		d.order = append(d.order, r)
	}
	mins := dc.length(2)
	for range mins {
		m := dc.varint()
		k := dc.length(8)
		set := make(map[uint64]struct{}, k)
		for range k {
			set[dc.u64()] = struct{}{}
		}
		d.nonces[m] = set
	}
}
