// Package trail is raftkms's audit trail: the record of every request, its
// canonical encoding, the SHA-256 hash chain that makes any edit, gap,
// duplicate or reordering detectable, the JSON form auditors export and
// verify, and the append-only segment files every node keeps.
//
// A node describes a request as an Event and proposes it through Raft; the
// state machine seals events in commit order into Records: it gives each
// the next sequence number and the commit time, and the hash of the
// previous record, and hashes the result (Seal). The sealed bytes are what
// the state machine keeps, the segment files hold and the chain covers.
package trail

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// Limits of one event.
const (
	MaxEventBytes = 32 << 10
	MaxParams     = 64
)

// ErrFormat is returned (wrapped) for bytes that are not a valid event or
// record encoding.
var ErrFormat = errors.New("trail: malformed record")

// Outcome is how a request ended.
type Outcome uint8

// Outcomes.
const (
	Success Outcome = 1 // the request did what it asked
	Denied  Outcome = 2 // the policies refused it
	Failed  Outcome = 3 // it failed: bad input, a key state, an unavailable node…
)

var outcomeNames = [...]string{Success: "success", Denied: "denied", Failed: "failed"}

func (o Outcome) String() string {
	if o >= Success && o <= Failed {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// ParseOutcome reads "success", "denied" or "failed".
func ParseOutcome(s string) (Outcome, bool) {
	for o := Success; o <= Failed; o++ {
		if outcomeNames[o] == s {
			return o, true
		}
	}
	return 0, false
}

// Param is one request parameter kept in the trail (secrets never are).
type Param struct{ Name, Value string }

// Event is what a node records of one request.
type Event struct {
	EventID   string
	Time      int64 // when the node received the request, unix ns
	EventName string
	// The principal who signed the request.
	Account, PrincipalType, PrincipalName, AccessKeyID string
	SourceIP, UserAgent                                string
	RequestID                                          string
	Node                                               string // the node that served the request
	// The key acted on, if any.
	KeyID, KeyVersionID, ResourceARN string
	Outcome                          Outcome
	ErrorCode                        string  // the Alibaba error code when the outcome is not success
	Params                           []Param // sorted by name, names unique
}

// Record is an Event sealed into the chain.
type Record struct {
	Seq        uint64 // 1, 2, 3 … in commit order
	CommitTime int64  // the state machine's time when the record was committed, unix ns
	PrevHash   [32]byte
	Event
	Hash [32]byte // SHA-256 of the record's content (Content), PrevHash included
}

// Sealed is a record in its stored form: the canonical content and its hash.
type Sealed struct {
	Seq        uint64
	CommitTime int64
	Content    []byte
	Hash       [32]byte
}

const contentVersion = 1

// AppendEvent appends the canonical encoding of e to b. Params must be
// sorted by name with unique names (SortParams); DecodeEvent refuses
// anything else, so every event has exactly one encoding.
func AppendEvent(b []byte, e *Event) []byte {
	b = appendStr(b, e.EventID)
	b = binary.AppendVarint(b, e.Time)
	b = appendStr(b, e.EventName)
	for _, s := range [...]string{e.Account, e.PrincipalType, e.PrincipalName, e.AccessKeyID,
		e.SourceIP, e.UserAgent, e.RequestID, e.Node, e.KeyID, e.KeyVersionID, e.ResourceARN} {
		b = appendStr(b, s)
	}
	b = append(b, byte(e.Outcome))
	b = appendStr(b, e.ErrorCode)
	b = binary.AppendUvarint(b, uint64(len(e.Params)))
	for _, p := range e.Params {
		b = appendStr(b, p.Name)
		b = appendStr(b, p.Value)
	}
	return b
}

// SortParams puts params in canonical order; a name given twice keeps its
// first value.
func SortParams(ps []Param) []Param {
	slices.SortStableFunc(ps, func(a, b Param) int { return strings.Compare(a.Name, b.Name) })
	return slices.CompactFunc(ps, func(a, b Param) bool { return a.Name == b.Name })
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// reader reads what the append functions wrote. Strings it returns view
// the input when view is set (no allocation; valid while the input is),
// and are copies otherwise. The first error sticks.
type reader struct {
	b          []byte
	view       bool
	skipParams bool // check the parameters without keeping them
	err        error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: bad %s", ErrFormat, what)
	}
}

// uvarint reads a uvarint in its shortest form only: a padded one would
// give the same value a second encoding, and a record a second hash.
func (r *reader) uvarint(what string) uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n != uvarintLen(v) {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint(what string) int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 || n != varintLen(v) {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}

func varintLen(v int64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutVarint(b[:], v)
}

func (r *reader) str(what string) string {
	n := r.uvarint(what)
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail(what)
		return ""
	}
	p := r.b[:n]
	r.b = r.b[n:]
	if !utf8.Valid(p) {
		r.fail(what + " (not UTF-8)")
		return ""
	}
	if r.view {
		return unsafe.String(unsafe.SliceData(p), len(p))
	}
	return string(p)
}

func (r *reader) event(e *Event) {
	e.EventID = r.str("event id")
	e.Time = r.varint("event time")
	e.EventName = r.str("event name")
	for _, f := range [...]*string{&e.Account, &e.PrincipalType, &e.PrincipalName, &e.AccessKeyID,
		&e.SourceIP, &e.UserAgent, &e.RequestID, &e.Node, &e.KeyID, &e.KeyVersionID, &e.ResourceARN} {
		*f = r.str("string field")
	}
	if r.err == nil && len(r.b) > 0 {
		e.Outcome = Outcome(r.b[0])
		r.b = r.b[1:]
	}
	if e.Outcome < Success || e.Outcome > Failed {
		r.fail("outcome")
	}
	e.ErrorCode = r.str("error code")
	n := r.uvarint("parameter count")
	if n > MaxParams {
		r.fail("parameter count")
		return
	}
	if !r.skipParams {
		e.Params = make([]Param, 0, n)
	}
	prev := ""
	for i := range n {
		p := Param{Name: r.str("parameter name"), Value: r.str("parameter value")}
		if r.err != nil {
			return
		}
		if i > 0 && prev >= p.Name {
			r.fail("parameter order (names must be sorted and unique)")
			return
		}
		prev = p.Name
		if !r.skipParams {
			e.Params = append(e.Params, p)
		}
	}
}

// DecodeEvent reads an event AppendEvent wrote. With view, its strings
// view b and are valid only while b is.
func DecodeEvent(b []byte, view bool) (Event, error) {
	var e Event
	if len(b) > MaxEventBytes {
		return e, fmt.Errorf("%w: event of %d bytes (at most %d)", ErrFormat, len(b), MaxEventBytes)
	}
	r := reader{b: b, view: view}
	r.event(&e)
	if r.err == nil && len(r.b) != 0 {
		r.fail("event (trailing bytes)")
	}
	return e, r.err
}

// CheckEvent checks that b is an event's canonical encoding, as
// DecodeEvent does, without allocating, and returns its request id (a view
// of b).
func CheckEvent(b []byte) (requestID string, err error) {
	if len(b) > MaxEventBytes {
		return "", fmt.Errorf("%w: event of %d bytes (at most %d)", ErrFormat, len(b), MaxEventBytes)
	}
	var e Event
	r := reader{b: b, view: true, skipParams: true}
	r.event(&e)
	if r.err == nil && len(r.b) != 0 {
		r.fail("event (trailing bytes)")
	}
	return e.RequestID, r.err
}

// MaxHeaderBytes is the most bytes a record's content holds before its
// event: a buffer with MaxHeaderBytes+len(event) spare bytes takes the
// record's content (SealChecked).
const MaxHeaderBytes = 1 + 2*binary.MaxVarintLen64 + 32

// SealChecked is Seal of an event CheckEvent accepted: its bytes are
// already the canonical encoding (an event has exactly one), so they go into
// the record as they are. The record's content is written after buf's
// bytes, into its spare capacity when it fits (a new array otherwise), and
// buf is returned with it: the records of a batch can share one
// allocation. The content is a slice of it that appending cannot reach.
func SealChecked(buf []byte, seq uint64, commitTime int64, prev [32]byte, event []byte) (Sealed, []byte) {
	start := len(buf)
	buf = appendHeader(buf, seq, commitTime, prev)
	buf = append(buf, event...)
	content := buf[start:len(buf):len(buf)]
	return Sealed{Seq: seq, CommitTime: commitTime, Content: content, Hash: sha256.Sum256(content)}, buf
}

// Seal makes the record of an event: its content is the format version,
// seq, commit time, the previous record's hash and the event, and its hash
// is the SHA-256 of the content. The event is decoded and encoded again,
// so the content is canonical whatever the proposer sent.
func Seal(seq uint64, commitTime int64, prev [32]byte, event []byte) (Sealed, error) {
	e, err := DecodeEvent(event, true)
	if err != nil {
		return Sealed{}, err
	}
	return SealEvent(seq, commitTime, prev, &e), nil
}

// SealEvent is Seal of an event already decoded.
func SealEvent(seq uint64, commitTime int64, prev [32]byte, e *Event) Sealed {
	content := make([]byte, 0, 512)
	content = appendHeader(content, seq, commitTime, prev)
	content = AppendEvent(content, e)
	return Sealed{Seq: seq, CommitTime: commitTime, Content: content, Hash: sha256.Sum256(content)}
}

func appendHeader(b []byte, seq uint64, commitTime int64, prev [32]byte) []byte {
	b = append(b, contentVersion)
	b = binary.AppendUvarint(b, seq)
	b = binary.AppendVarint(b, commitTime)
	return append(b, prev[:]...)
}

// Content returns the canonical content of r (what its Hash covers).
func (r *Record) Content() []byte {
	b := appendHeader(make([]byte, 0, 512), r.Seq, r.CommitTime, r.PrevHash)
	return AppendEvent(b, &r.Event)
}

// ComputeHash returns the SHA-256 of r's content: equal to r.Hash unless
// the record was changed.
func (r *Record) ComputeHash() [32]byte { return sha256.Sum256(r.Content()) }

// Decode returns the record s holds, with its strings copied.
func (s Sealed) Decode() (Record, error) {
	rec := Record{Hash: s.Hash}
	r := reader{b: s.Content}
	if len(r.b) == 0 || r.b[0] != contentVersion {
		return rec, fmt.Errorf("%w: unknown record format", ErrFormat)
	}
	r.b = r.b[1:]
	rec.Seq = r.uvarint("seq")
	rec.CommitTime = r.varint("commit time")
	if r.err == nil && len(r.b) < 32 {
		r.fail("previous hash")
	}
	if r.err != nil {
		return rec, r.err
	}
	copy(rec.PrevHash[:], r.b)
	r.b = r.b[32:]
	r.event(&rec.Event)
	if r.err == nil && len(r.b) != 0 {
		r.fail("record (trailing bytes)")
	}
	return rec, r.err
}

// Seal returns r in its stored form. r.Hash is kept as it is: a changed
// record keeps the hash it had, which no longer matches.
func (r *Record) Seal() Sealed {
	return Sealed{Seq: r.Seq, CommitTime: r.CommitTime, Content: r.Content(), Hash: r.Hash}
}

// Valid reports whether s's hash is the hash of its content.
func (s Sealed) Valid() bool { return sha256.Sum256(s.Content) == s.Hash }

// PeekHeader reads the seq and commit time at the start of sealed content
// without decoding the rest.
func PeekHeader(content []byte) (seq uint64, commitTime int64, prev [32]byte, err error) {
	r := reader{b: content}
	if len(r.b) == 0 || r.b[0] != contentVersion {
		return 0, 0, prev, fmt.Errorf("%w: unknown record format", ErrFormat)
	}
	r.b = r.b[1:]
	seq = r.uvarint("seq")
	commitTime = r.varint("commit time")
	if r.err == nil && len(r.b) < 32 {
		r.fail("previous hash")
	}
	if r.err == nil {
		copy(prev[:], r.b)
	}
	return seq, commitTime, prev, r.err
}
