package fsm

import (
	"encoding/binary"
	"slices"
	"unsafe"
)

// The key store's records live in an arena: chunks of arenaChunk bytes,
// each one object to the garbage collector, where a million records were
// two million small objects, and chunks hold no pointers: the collector
// neither scans them nor looks up a span per record. Tree items name their
// record's entry by a ref (chunk id and offset, keystore.go), which a state
// resolves through the chunks by id of its time.
//
// Records never change: a record is written once, at the end of the
// current chunk, and published states read it through the refs of their
// items and index, while the writer appends after it. A record stops being the
// writer's when its key or version changes or goes (release); the chunk
// counts the bytes of its records still in use, and a chunk that falls
// below three quarters in use is evacuated: its records still in use are
// copied to the current chunk and their tree items pointed at the copies,
// a few per applied batch (compact), and the chunk is dropped. Published
// states keep it alive through their chunks by id until they go; the
// collector frees it after that. So the arena holds at most a third more
// than its records in use, plus what is waiting for evacuation.
//
// Only the writer (the FSM's apply path, or Restore building a state)
// calls the arena; a published state reads records through its trees'
// refs, or through the arena's hash index (index.go), with the chunks by id
// and the view of the index it was published with.

// arenaChunk is a chunk's size; a record larger than that gets a chunk of
// its own size.
const arenaChunk = 256 << 10

// Kinds of arena entries, the first byte of each.
const (
	arenaKey     = 1 // then the account, length-prefixed: the record omits it
	arenaVersion = 2
)

// arena entry: kind[1] ‖ (key: uvarint len ‖ account) ‖ uvarint len ‖ record.
// An entry's ref is its chunk's id<<32 | its offset in the chunk.

type arena struct {
	owned []*chunk // by id (nil: no chunk's), for release and evacuation
	// byID holds the chunks' memory by id (0 is no chunk's; a dropped
	// chunk's is nil), for refs: a reader finds an entry in one array it
	// reads often, not through each chunk's struct, a cache miss more per
	// lookup at a million keys. It is copied when a chunk comes or goes:
	// published states keep the one of their time, and with it the chunks
	// their slots name. free lists the ids of dropped chunks.
	byID    [][]byte
	free    []uint32
	index   *hashIndex
	cur     *chunk   // where records are appended
	queue   []*chunk // chunks to evacuate, in order
	scratch []byte   // where the writer encodes a record before adding it
	// lost counts bytes still counted in use in evacuated chunks, which
	// are then kept instead of dropped, and releases of entries in no
	// chunk: the arena's bookkeeping gone wrong, which tests require to be
	// 0. It costs memory, never records, so it is no reason to stop
	// applying the log.
	lost int
}

type chunk struct {
	b      []byte // entries written so far; cap is the chunk's size (readers of refs read byID's b[:cap(b)], never b, which the writer changes)
	id     uint32
	inUse  int // bytes of the entries whose records the writer's state holds
	next   int // offset of the next entry to evacuate
	queued bool
}

// entrySize is the size of a record's arena entry.
func entrySize(kind byte, account string, n int) int {
	size := 1 + uvarintLen(uint64(n)) + n
	if kind == arenaKey {
		size += uvarintLen(uint64(len(account))) + len(account)
	}
	return size
}

// readEntry reads the entry b starts with and returns its size, or 0 if b
// does not start with one.
func readEntry(b []byte) (kind byte, account, rec string, size int) {
	if len(b) == 0 {
		return 0, "", "", 0
	}
	kind, size = b[0], 1
	str := func() (string, bool) {
		n, w := binary.Uvarint(b[size:])
		if w <= 0 || n > uint64(len(b)-size-w) {
			return "", false
		}
		s := unsafe.String(unsafe.SliceData(b[size+w:]), int(n))
		size += w + int(n)
		return s, true
	}
	var ok bool
	switch kind {
	case arenaKey:
		if account, ok = str(); !ok {
			return 0, "", "", 0
		}
	case arenaVersion:
	default:
		return 0, "", "", 0
	}
	if rec, ok = str(); !ok || rec == "" {
		return 0, "", "", 0
	}
	return kind, account, rec, size
}

func uvarintLen(x uint64) int {
	n := 1
	for ; x >= 0x80; x >>= 7 {
		n++
	}
	return n
}

// encoder returns an encoder over the arena's scratch buffer, for the one
// record passed to add next.
func (a *arena) encoder() encoder { return encoder{b: a.scratch[:0]} }

// add copies rec (of a key of account, or of a version) into the arena and
// returns its entry's ref. rec is the buffer of the arena's encoder.
func (a *arena) add(kind byte, account string, rec []byte) uint64 {
	a.scratch = rec[:0] // keep what the buffer grew to
	if len(rec) == 0 {
		return 0 // no record is empty (each starts with its id)
	}
	size := entrySize(kind, account, len(rec))
	c := a.cur
	if c == nil || cap(c.b)-len(c.b) < size {
		c = a.newChunk(max(arenaChunk, size))
	}
	ref := uint64(c.id)<<32 | uint64(len(c.b))
	c.b = append(c.b, kind)
	if kind == arenaKey {
		c.b = binary.AppendUvarint(c.b, uint64(len(account)))
		c.b = append(c.b, account...)
	}
	c.b = binary.AppendUvarint(c.b, uint64(len(rec)))
	c.b = append(c.b, rec...)
	c.inUse += size
	return ref
}

func (a *arena) newChunk(size int) *chunk {
	old := a.cur
	mem := make([]byte, size)
	a.cur = &chunk{b: mem[:0]}
	if len(a.byID) == 0 {
		a.byID, a.owned = [][]byte{nil}, []*chunk{nil} // ref 0 is no entry's
	}
	byID := slices.Clone(a.byID)
	if n := len(a.free); n > 0 {
		a.cur.id, a.free = a.free[n-1], a.free[:n-1]
	} else {
		a.cur.id = uint32(len(byID))
		byID, a.owned = append(byID, nil), append(a.owned, nil)
	}
	byID[a.cur.id], a.owned[a.cur.id] = mem, a.cur
	a.byID = byID
	if old != nil {
		a.check(old)
	}
	return a.cur
}

// release records that the writer's state no longer holds the entry at
// ref.
func (a *arena) release(ref uint64) {
	id, off := ref>>32, uint64(uint32(ref))
	if id >= uint64(len(a.owned)) || a.owned[id] == nil || off >= uint64(len(a.owned[id].b)) {
		a.lost++
		return
	}
	c := a.owned[id]
	_, _, _, size := readEntry(c.b[off:])
	c.inUse -= size
	a.check(c)
}

// check queues c for evacuation once it is full and less than three
// quarters in use.
func (a *arena) check(c *chunk) {
	if c != a.cur && !c.queued && c.inUse < len(c.b)/4*3 {
		c.queued = true
		a.queue = append(a.queue, c)
	}
}

// compactBudget is how many entries one applied batch evacuates at most:
// a few hundred microseconds of tree updates.
const compactBudget = 512

// compact evacuates up to compactBudget entries of the queued chunks of
// s's arena, and drops the chunks it emptied; and it moves a few slots of
// the index's old table, if it has one.
func (s *State) compact() {
	a := s.arena
	a.index.move(a.byID, slotsMovedPerBatch)
	for budget := compactBudget; budget > 0 && len(a.queue) > 0; {
		c := a.queue[0]
		for ; c.next < len(c.b) && budget > 0; budget-- {
			s.evacuate(c)
		}
		if c.next < len(c.b) {
			return
		}
		a.queue[0] = nil
		a.queue = a.queue[1:]
		if c.inUse != 0 { // the bookkeeping went wrong: items may still name its entries, so it stays
			a.lost += c.inUse
			continue
		}
		a.byID = slices.Clone(a.byID)
		a.byID[c.id], a.owned[c.id] = nil, nil
		a.free = append(a.free, c.id)
	}
}

// evacuate reads c's next entry and, if the writer's state still holds it,
// copies its record to the current chunk and points its item at the copy.
func (s *State) evacuate(c *chunk) {
	ref := uint64(c.id)<<32 | uint64(c.next)
	kind, account, rec, size := readEntry(c.b[c.next:])
	if size == 0 { // cannot happen (add writes every entry)
		c.next = len(c.b) // its records stay where they are: compact keeps a chunk still in use
		return
	}
	c.next += size
	id := recordID(rec)
	switch kind {
	case arenaKey:
		it, ok := s.keys.Get(searchKey(account, id))
		if !ok || it.ref != ref {
			return
		}
		it.ref = s.arena.move(c, kind, it.account, id, rec)
		s.keys.ReplaceOrInsert(it)
	case arenaVersion:
		it, ok := s.versions.Get(searchVersion(id))
		if !ok || it.ref != ref {
			return
		}
		it.ref = s.arena.move(c, kind, "", id, rec)
		s.versions.ReplaceOrInsert(it)
		v := decodeVersionRecord(rec)
		if k, ok := s.keys.Get(searchKey(v.Account, v.KeyID)); ok {
			var key Key
			if decodeKeyRecord(s.record(k.ref), k.account, &key) == ref {
				s.putKey(&key) // the key's record names its primary version's entry
			}
		}
	}
}

// move copies rec, the record with id in c, to the current chunk, and
// returns the copy's ref.
func (a *arena) move(c *chunk, kind byte, account, id, rec string) uint64 {
	c.inUse -= entrySize(kind, account, len(rec))
	return a.put(kind, account, id, append(a.scratch[:0], rec...))
}

// put adds rec, the record of kind, account and id, to the arena and
// points the index at it; it returns its entry's ref.
func (a *arena) put(kind byte, account, id string, rec []byte) uint64 {
	ref := a.add(kind, account, rec)
	if ref != 0 {
		a.index.put(a.byID, kind, account, id, ref)
	}
	return ref
}

// drop removes the entry of kind, account and id, at ref, from the index
// and releases it.
func (a *arena) drop(kind byte, account, id string, ref uint64) {
	a.index.del(a.byID, kind, account, id)
	a.release(ref)
}
