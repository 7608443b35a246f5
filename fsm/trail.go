package fsm

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/raftkms/raftkms/trail"
)

// Commands of the audit trail.
const (
	CmdTrailAppend CmdType = 30
	CmdAudited     CmdType = 31
	// CmdReserveSealsBatch is in commands.go, beside ReserveSeals.
	CmdReserveSealsBatch CmdType = 32
	CmdTrailShip         CmdType = 33
)

// Retention bounds the trail the state keeps (the window): records beyond
// MaxRecords, or committed more than MaxAge ago, leave it, oldest first —
// every node has already written them to its segment files (trail.Archive).
// Each command that appends carries the retention of the node that
// proposed it, so applying it is the same everywhere.
type Retention struct {
	MaxRecords uint64
	MaxAge     int64 // nanoseconds; 0: no age limit
}

func (r Retention) encode(e *encoder)  { e.uvarint(r.MaxRecords); e.varint(r.MaxAge) }
func (r *Retention) decode(d *decoder) { r.MaxRecords, r.MaxAge = d.uvarint(), d.varint() }

// TrailAppend commits the records of requests (trail.Event encodings) a
// node served. Nodes batch many into one command (group commit).
type TrailAppend struct {
	Retention Retention
	Events    [][]byte
}

// Type implements Command.
func (*TrailAppend) Type() CmdType { return CmdTrailAppend }
func (c *TrailAppend) encodeBody(e *encoder) {
	c.Retention.encode(e)
	encodeEvents(e, c.Events)
}
func (c *TrailAppend) sizeHint() int { return 32 + eventsSize(c.Events) }
func (c *TrailAppend) decodeBody(d *decoder) {
	c.Retention.decode(d)
	c.Events = decodeEvents(d)
}

func encodeEvents(e *encoder, events [][]byte) {
	e.uvarint(uint64(len(events)))
	for _, ev := range events {
		e.bytes(ev)
	}
}

func eventsSize(events [][]byte) int {
	n := 0
	for _, ev := range events {
		n += len(ev) + binary.MaxVarintLen32
	}
	return n
}

func decodeEvents(d *decoder) [][]byte {
	n := d.length(1)
	events := make([][]byte, 0, n)
	for range n {
		events = append(events, d.bytes())
	}
	return events
}

// apply seals each event into the chain. An event that does not decode is
// left out (the same on every node); the others are kept.
func (c *TrailAppend) apply(t *txn) Result {
	t.reserveContent(c.Events)
	for _, ev := range c.Events {
		t.appendEvent(c.Retention, ev, false)
	}
	return Result{}
}

// TrailShip commits records a node wrote to its journal (trail.Journal)
// before it answered their requests: the events of journal Journal
// numbered First, First+1, …. The state machine remembers the last number
// it applied of each journal and skips events up to it, so a batch shipped
// again — a retry whose first answer was lost, or what a restarted node
// finds in its journal — enters the trail once.
type TrailShip struct {
	Retention Retention
	Journal   [16]byte
	First     uint64
	Events    [][]byte
}

// Type implements Command.
func (*TrailShip) Type() CmdType { return CmdTrailShip }
func (c *TrailShip) encodeBody(e *encoder) {
	c.Retention.encode(e)
	e.b = append(e.b, c.Journal[:]...)
	e.uvarint(c.First)
	encodeEvents(e, c.Events)
}
func (c *TrailShip) sizeHint() int { return 64 + eventsSize(c.Events) }
func (c *TrailShip) decodeBody(d *decoder) {
	c.Retention.decode(d)
	copy(c.Journal[:], d.fixed(16))
	c.First = d.uvarint()
	c.Events = decodeEvents(d)
}

// JournalKeep is how long the state machine remembers a journal it has not
// been shipped from: a node that ships its journal after being down longer
// could add records already in the trail a second time.
const JournalKeep = 30 * 24 * time.Hour

func (c *TrailShip) apply(t *txn) Result {
	if c.First == 0 {
		return fail(ErrInvalidCommand)
	}
	last := t.dd.journals[c.Journal].last
	t.reserveContent(c.Events)
	for i, ev := range c.Events {
		if c.First+uint64(i) > last {
			t.appendEvent(c.Retention, ev, false)
		}
	}
	t.dd.shipped(c.Journal, max(last, c.First+uint64(len(c.Events))-1), t.now)
	return Result{}
}

// Audited is a state change together with the record of the request that
// made it: the record enters the trail exactly when the change is made,
// in the same entry, so a change is never made unrecorded.
type Audited struct {
	Retention Retention
	Event     []byte // a trail.Event encoding, outcome success
	Cmd       Command
}

// Type implements Command.
func (*Audited) Type() CmdType { return CmdAudited }
func (c *Audited) encodeBody(e *encoder) {
	c.Retention.encode(e)
	e.bytes(c.Event)
	e.u8(uint8(c.Cmd.Type()))
	c.Cmd.encodeBody(e)
}
func (c *Audited) decodeBody(d *decoder) {
	c.Retention.decode(d)
	c.Event = d.bytes()
	t := CmdType(d.u8())
	if t == CmdAudited || t == CmdTrailAppend || t == CmdTrailShip {
		d.fail("audited command (nested trail command)")
		return
	}
	if c.Cmd = newCommand(t); c.Cmd == nil {
		d.fail("audited command type")
		return
	}
	c.Cmd.decodeBody(d)
}
func (c *Audited) apply(t *txn) Result {
	if _, err := trail.CheckEvent(c.Event); err != nil {
		return fail(ErrInvalidCommand)
	}
	r := c.Cmd.apply(t)
	if r.Err == nil {
		t.appendEvent(c.Retention, c.Event, true)
	}
	return r
}

// trailChunkLen is how many records one chunk of the trail window holds.
const trailChunkLen = 1024

type trailChunk [trailChunkLen]trail.Sealed

// trailWindow is the trail's window: the records first … first+n-1, whose
// seqs are consecutive, in fixed-size chunks. Records only join at the new
// end and leave from the old one, so it is persistent without copying: a
// copy of the value shares the chunks and reads only its own n records,
// while the writer state appends past every published copy's end and
// drops whole chunks from the front (a B-tree copied a path of nodes per
// record: 4 % of a node's CPU under load).
type trailWindow struct {
	chunks []*trailChunk
	off    int    // chunks[0][off] holds the record first
	first  uint64 // the oldest record's seq
	n      int
}

// at returns the i-th oldest record.
func (w *trailWindow) at(i int) *trail.Sealed {
	p := w.off + i
	return &w.chunks[p/trailChunkLen][p%trailChunkLen]
}

// push appends s, whose seq must follow the newest record's.
func (w *trailWindow) push(s trail.Sealed) error {
	if w.n == 0 {
		w.chunks, w.off, w.first = nil, 0, s.Seq
	} else if s.Seq != w.first+uint64(w.n) {
		return fmt.Errorf("fsm: trail record %d after %d", s.Seq, w.first+uint64(w.n)-1)
	}
	p := w.off + w.n
	if p/trailChunkLen == len(w.chunks) {
		w.chunks = append(w.chunks, new(trailChunk))
	}
	w.chunks[p/trailChunkLen][p%trailChunkLen] = s
	w.n++
	return nil
}

// pop drops the oldest record. (Its slot is not cleared: a published copy
// may still read it.)
func (w *trailWindow) pop() {
	w.off, w.first, w.n = w.off+1, w.first+1, w.n-1
	if w.off == trailChunkLen {
		w.chunks, w.off = w.chunks[1:], 0
	}
}

// snapshot returns a copy for a published State; its chunk list is
// clipped, so nothing appended to it could land where the writer's goes.
func (w trailWindow) snapshot() trailWindow {
	w.chunks = w.chunks[:len(w.chunks):len(w.chunks)]
	return w
}

// ascend calls fn for the records with seq ≥ from, oldest first, until fn
// returns false.
func (w *trailWindow) ascend(from uint64, fn func(trail.Sealed) bool) {
	i := 0
	if from > w.first {
		i = int(min(from-w.first, uint64(w.n)))
	}
	for ; i < w.n; i++ {
		if !fn(*w.at(i)) {
			return
		}
	}
}

// descend calls fn for the records with seq ≤ before, newest first, until
// fn returns false.
func (w *trailWindow) descend(before uint64, fn func(trail.Sealed) bool) {
	if w.n == 0 || before < w.first {
		return
	}
	for i := int(min(before-w.first, uint64(w.n-1))); i >= 0; i-- {
		if !fn(*w.at(i)) {
			return
		}
	}
}

// appendEvent seals an event as the next record, unless the request it
// records already has a record: a write recorded with its change whose
// acknowledgement was lost, then recorded again as failed. Only the records
// of changes are remembered (mark): a change's entry always precedes the
// failure record its node sends after it (Raft commits a surviving entry of
// an older term before anything of the new one), and remembering every
// request id would cost memory and snapshot space per request.
func (t *txn) appendEvent(ret Retention, ev []byte, mark bool) {
	requestID, err := trail.CheckEvent(ev)
	if err != nil {
		return
	}
	rid, ridErr := uuid.Parse(requestID)
	if ridErr == nil && t.dd.recorded(rid) {
		return
	}
	st := t.st
	if n := trail.MaxHeaderBytes + len(ev); cap(t.content)-len(t.content) < n {
		t.content = make([]byte, 0, n) // a lone record (reserveContent did not run)
	}
	var s trail.Sealed
	s, t.content = trail.SealChecked(t.content, st.trailSeq+1, t.now, st.trailHash, ev)
	st.trail.push(s) // cannot fail: s follows trailSeq, the newest record's seq
	st.trailSeq, st.trailHash = s.Seq, s.Hash
	t.sealed = append(t.sealed, s)
	if mark && ridErr == nil {
		t.dd.markRecorded(rid, t.now)
	}
	for st.trail.n > 0 {
		if uint64(st.trail.n) <= max(ret.MaxRecords, 1) && (ret.MaxAge <= 0 || st.trail.at(0).CommitTime >= t.now-ret.MaxAge) {
			break
		}
		st.trail.pop()
	}
}

// reserveContent makes room in the batch's content buffer for the records
// of events, so they share one allocation (the window keeps them, and drops
// them, together).
func (t *txn) reserveContent(events [][]byte) {
	n := eventsSize(events) + len(events)*trail.MaxHeaderBytes
	if cap(t.content)-len(t.content) < n {
		t.content = make([]byte, 0, n)
	}
}

// TrailHead returns the seq and hash of the newest record (0 before the
// first).
func (s *State) TrailHead() (uint64, [32]byte) { return s.trailSeq, s.trailHash }

// TrailFirst returns the seq of the oldest record the state still holds,
// or 0 if it holds none.
func (s *State) TrailFirst() uint64 {
	if s.trail.n == 0 {
		return 0
	}
	return s.trail.first
}

// TrailRecords calls fn for the records the state holds with seq ≥ from,
// oldest first, until fn returns false.
func (s *State) TrailRecords(from uint64, fn func(trail.Sealed) bool) {
	s.trail.ascend(from, fn)
}

// TrailRecordsBackward calls fn for the records the state holds with
// seq ≤ before, newest first, until fn returns false.
func (s *State) TrailRecordsBackward(before uint64, fn func(trail.Sealed) bool) {
	s.trail.descend(before, fn)
}
