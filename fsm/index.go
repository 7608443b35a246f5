package fsm

import (
	"hash/maphash"
	"sync/atomic"
)

// The arena's hash index finds a key's or a version's record in a couple
// of cache misses, where the B-trees take a score at a million keys (a
// path of nodes, and a binary search of 64-byte items in each: about 3 µs
// a lookup on the development machine, most of the million-key penalty of
// GenerateDataKey). The trees stay the truth — ordered, copy-on-write,
// what snapshots and listings read; the index is a cache of their point
// lookups that published states read without a lock while the writer
// keeps changing it.
//
// It is one open-addressing table (linear probing) of two-word slots:
//
//	ctl = stamp<<16 | tag   stamp: the index's write count at the slot's last write (0: empty)
//	ref = position bits<<40 | chunk id<<20 | entry offset   the record's arena entry (0: deleted)
//
// A published state knows the stamp of the index's last write before it
// was published. A slot stamped later than that may hold a record newer
// than the state's, so that state asks its tree instead; a slot stamped
// earlier holds the record current in the state, since any later write to
// the slot would have stamped it later. A reader reads ctl, then ref, then
// ctl again (a sequence lock: a write sets ctl to 0, then ref, then ctl),
// and checks that the entry is the one it asked for (kind, account, id),
// so a tag shared by two records costs a probe, not a wrong answer. On any
// doubt — a slot being written, a deleted record, a table replaced — it
// asks the tree. The table is pointer-free: the collector never scans it.
//
// Chunk ids resolve through the arena's table of chunks by id, which is
// copied when a chunk comes or goes, so a published state keeps the table
// of its time (and with it the chunks its slots name). A slot keeps 24 bits
// of its hash's position, so growth moves slots without reading their
// entries (in tables of up to 16M slots). A record whose chunk id or offset
// does not fit 20 bits is not indexed: its tree answers.
//
// The table grows without a pause. Moving every slot into a table twice
// the size at once held the state machine — every write, and every reply
// waiting for its trail batch — for 26, 97 and 213 ms at 0.2, 0.8 and 1.6
// million entries. A full table now gets a new one, and each write after
// that moves a few slots of the old one (slotsMovedPerWrite); until all
// have moved, lookups try the new table, then the old. A record lives in
// one of the two: a new record goes to the new table, a change or a
// deletion is written where its record is, and a moved slot is left
// deleted in the old table with a fresh stamp, so states published before
// the move ask their tree for it rather than read a slot the writer no
// longer keeps. Each applied batch moves a few slots too.

// indexTable is one table: 2 words per slot, a power of two of slots.
type indexTable struct {
	w    []uint64
	mask uint64
}

// hashIndex is the writer's side of the index.
type hashIndex struct {
	seed maphash.Seed
	tab  *indexTable
	old  *indexTable // the table before the last growth, while its slots move to tab
	next uint64      // old's next slot to move
	used int         // slots of tab ever written since it was made (entries and deleted ones)
	live int         // slots holding a record, in tab and old
	wseq uint64      // writes so far; a write's stamp
}

// indexView is a published state's side: the table, the chunks by id and
// the last stamp as they were when the state was published. A zero view
// (the writer's own state) finds nothing.
type indexView struct {
	seed     maphash.Seed
	tab, old *indexTable
	chunks   [][]byte // the arena's byID
	wseq     uint64
}

const (
	minIndexSlots = 1 << 10
	refBits       = 20 // of a chunk id, and of an offset, in a slot's ref
	// slotsMovedPerWrite is how many slots of the old table each write
	// moves: when the table doubles, all have moved within a sixth of the
	// new table's room (grow moves what is left, if a table fills sooner).
	slotsMovedPerWrite = 8
	// slotsMovedPerBatch is how many each applied batch moves besides
	// (State.compact), so the old table goes within seconds of load even
	// when keys rarely change: a few tens of microseconds a batch.
	slotsMovedPerBatch = 256
)

// indexKeptBits is how many bits of its position a slot keeps (a variable
// for the test of growth beyond them).
var indexKeptBits uint = 24

// slotRef packs an arena ref and the position bits of h into a slot's
// ref; ok is false if the arena ref does not fit.
func slotRef(ref, h uint64) (uint64, bool) {
	id, off := ref>>32, ref&0xffffffff
	if id >= 1<<refBits || off >= 1<<refBits {
		return 0, false
	}
	return (h>>16&(1<<indexKeptBits-1))<<(2*refBits) | id<<refBits | off, true
}

// arenaRef returns the arena ref in a slot's ref (0: deleted).
func arenaRef(r uint64) uint64 {
	return r>>refBits&(1<<refBits-1)<<32 | r&(1<<refBits-1)
}

func newHashIndex() *hashIndex {
	return &hashIndex{seed: maphash.MakeSeed(), tab: newIndexTable(minIndexSlots)}
}

func newIndexTable(slots int) *indexTable {
	return &indexTable{w: make([]uint64, 2*slots), mask: uint64(slots - 1)}
}

// indexHash hashes an entry's identity: its kind, its account (a key's)
// and its id.
func indexHash(seed maphash.Seed, kind byte, account, id string) uint64 {
	h := maphash.String(seed, id)
	if account != "" {
		h ^= maphash.String(seed, account) * 0x9e3779b97f4a7c15
	}
	return h + uint64(kind)
}

// entryAt reads the entry ref names in chunks; ok is false when ref names
// nothing readable.
func entryAt(chunks [][]byte, ref uint64) (kind byte, account, rec string, ok bool) {
	id, off := ref>>32, uint64(uint32(ref))
	if id >= uint64(len(chunks)) || off >= uint64(len(chunks[id])) {
		return 0, "", "", false
	}
	kind, account, rec, n := readEntry(chunks[id][off:])
	return kind, account, rec, n > 0
}

// match reports whether the entry ref names in chunks is the record of
// kind, account and id, and returns that record.
func match(chunks [][]byte, ref uint64, kind byte, account, id string) (string, bool) {
	k, a, rec, ok := entryAt(chunks, ref)
	if !ok || k != kind || a != account || recordID(rec) != id {
		return "", false
	}
	return rec, true
}

// find returns the record of kind, account and id as v's state holds it,
// or false when the state's tree must answer.
func (v *indexView) find(kind byte, account, id string) (string, bool) {
	if v.tab == nil {
		return "", false
	}
	h := indexHash(v.seed, kind, account, id)
	rec, found, doubt := v.findIn(v.tab, h, kind, account, id)
	if !found && !doubt && v.old != nil { // not moved yet, perhaps
		rec, found, _ = v.findIn(v.old, h, kind, account, id)
	}
	return rec, found
}

// findIn looks for the record in t. doubt says t may hold a record of the
// identity that v's state must not see (written after it was published,
// or being written), so the tree must answer. An empty slot ends the
// search without doubt: the record is not in t — or its slot is being
// written, by a move, whose old slot stays as it was until the move
// ends, or as a new record, which no older table holds.
func (v *indexView) findIn(t *indexTable, h uint64, kind byte, account, id string) (rec string, found, doubt bool) {
	tag := h & 0xffff
	i := h >> 16 & t.mask
	for range t.mask + 1 { // an empty slot ends it sooner: the writer keeps a quarter empty
		c := atomic.LoadUint64(&t.w[2*i])
		if c == 0 {
			return "", false, false
		}
		if c&0xffff == tag {
			if c>>16 > v.wseq {
				return "", false, true // written after v's state was published
			}
			r := atomic.LoadUint64(&t.w[2*i+1])
			if atomic.LoadUint64(&t.w[2*i]) != c {
				return "", false, true
			}
			// A deleted entry (ref 0) or another record with the same tag:
			// the record asked for may still come later.
			if rec, ok := match(v.chunks, arenaRef(r), kind, account, id); ok {
				return rec, true, false
			}
		}
		i = (i + 1) & t.mask
	}
	return "", false, true
}

// slot returns where the entry of kind, account and id is in t, or where
// it would go (the first deleted slot on its way, else the empty one that
// ends it), and whether it is there. The writer reads without atomics: it
// is the only one that writes.
func (x *hashIndex) slot(t *indexTable, chunks [][]byte, h uint64, kind byte, account, id string) (uint64, bool) {
	tag := h & 0xffff
	free := ^uint64(0)
	for i := h >> 16 & t.mask; ; i = (i + 1) & t.mask {
		c, ref := t.w[2*i], arenaRef(t.w[2*i+1])
		switch {
		case c == 0:
			if free == ^uint64(0) {
				free = i
			}
			return free, false
		case ref == 0:
			if free == ^uint64(0) {
				free = i
			}
		case c&0xffff == tag:
			if _, ok := match(chunks, ref, kind, account, id); ok {
				return i, true
			}
		}
	}
}

// locate returns the table and slot of the entry of kind, account and id,
// and whether it is there; if it is not, the slot of the table where it
// would go.
func (x *hashIndex) locate(chunks [][]byte, h uint64, kind byte, account, id string) (*indexTable, uint64, bool) {
	i, found := x.slot(x.tab, chunks, h, kind, account, id)
	if !found && x.old != nil {
		if j, ok := x.slot(x.old, chunks, h, kind, account, id); ok {
			return x.old, j, true
		}
	}
	return x.tab, i, found
}

// write sets slot i of t to (tag, ref), stamped with the next write.
func (x *hashIndex) write(t *indexTable, i, tag, ref uint64) {
	x.wseq++
	set(t, i, x.wseq<<16|tag, ref)
}

// set writes slot i of t as readers expect: ctl 0 (a reader that sees it
// asks elsewhere), then ref, then ctl.
func set(t *indexTable, i, ctl, ref uint64) {
	atomic.StoreUint64(&t.w[2*i], 0)
	atomic.StoreUint64(&t.w[2*i+1], ref)
	atomic.StoreUint64(&t.w[2*i], ctl)
}

// put points the index at ref, the entry of kind, account and id in
// chunks (the arena's current ones).
func (x *hashIndex) put(chunks [][]byte, kind byte, account, id string, ref uint64) {
	defer x.move(chunks, slotsMovedPerWrite)
	if (x.used+1)*4 > len(x.tab.w)/2*3 {
		x.grow(chunks)
	}
	h := indexHash(x.seed, kind, account, id)
	r, ok := slotRef(ref, h)
	if !ok { // the tree answers for it; an older entry must not
		x.del(chunks, kind, account, id)
		return
	}
	t, i, found := x.locate(chunks, h, kind, account, id)
	if !found {
		x.live++
		if t.w[2*i] == 0 {
			x.used++
		}
	}
	x.write(t, i, h&0xffff, r)
}

// del marks the entry of kind, account and id deleted.
func (x *hashIndex) del(chunks [][]byte, kind byte, account, id string) {
	defer x.move(chunks, slotsMovedPerWrite)
	h := indexHash(x.seed, kind, account, id)
	if t, i, found := x.locate(chunks, h, kind, account, id); found {
		x.live--
		x.write(t, i, h&0xffff, 0)
	}
}

// grow starts a new table of at least twice as many slots as entries (16
// bytes a slot), after moving what is left of the last growth's old table.
func (x *hashIndex) grow(chunks [][]byte) {
	if x.old != nil {
		x.move(chunks, len(x.old.w))
	}
	slots := minIndexSlots
	for slots < 2*(x.live+1) {
		slots *= 2
	}
	x.old, x.tab, x.next, x.used = x.tab, newIndexTable(slots), 0, 0
}

// move moves up to n slots of the old table to the table, keeping their
// stamps, and leaves each moved slot deleted, with a fresh stamp, in the
// old table; it drops the old table once it has moved them all.
func (x *hashIndex) move(chunks [][]byte, n int) {
	old, t := x.old, x.tab
	if old == nil {
		return
	}
	for ; n > 0 && x.next <= old.mask; n-- {
		i := x.next
		x.next++
		c, r := old.w[2*i], old.w[2*i+1]
		if c == 0 || arenaRef(r) == 0 {
			continue
		}
		j := r >> (2 * refBits) & t.mask
		if t.mask >= 1<<indexKeptBits { // the kept bits do not say: rehash
			kind, account, rec, ok := entryAt(chunks, arenaRef(r))
			if !ok { // cannot happen: a live slot names a live entry
				continue
			}
			j = indexHash(x.seed, kind, account, recordID(rec)) >> 16 & t.mask
		}
		for t.w[2*j] != 0 {
			j = (j + 1) & t.mask
		}
		set(t, j, c, r)
		x.used++
		x.write(old, i, c&0xffff, 0)
	}
	if x.next > old.mask {
		x.old = nil
	}
}

// versionAt returns the record of the version with id at ref in chunks, a
// ref a key's record holds, or false if ref names no such entry.
func versionAt(chunks [][]byte, ref uint64, id string) (string, bool) {
	kind, _, rec, ok := entryAt(chunks, ref)
	if !ok || kind != arenaVersion || recordID(rec) != id {
		return "", false
	}
	return rec, true
}

// view returns the view a state published now reads through.
func (x *hashIndex) view(chunks [][]byte) indexView {
	return indexView{seed: x.seed, tab: x.tab, old: x.old, chunks: chunks, wseq: x.wseq}
}
