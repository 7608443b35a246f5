package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/raftkms/raftkms/fsm"
	"github.com/raftkms/raftkms/trail"
)

// ErrTrailUnavailable answers a request whose trail record could not be
// committed: nothing is served unrecorded.
var ErrTrailUnavailable = errors.New("api: the request's trail record could not be committed")

// ErrTrailBehind answers a trail query on a node whose journaled records
// did not reach the replicated trail in time: the answer would miss them.
var ErrTrailBehind = errors.New("api: this node's trail records have not reached the trail yet")

// TrailConfig configures the trail: what the state keeps, and how records
// are batched into Raft entries.
type TrailConfig struct {
	// Retention bounds the window the replicated state keeps (older records
	// live in every node's segment files); default 100000 records, 24 hours.
	// Give every node the same.
	Retention fsm.Retention
	// BatchRecords and BatchBytes bound one Raft entry of records; defaults
	// 2048 and 1 MiB.
	BatchRecords, BatchBytes int
	// Flushers is how many batches may be committing at once; default 1,
	// which measured best: while one batch commits the next one fills, and
	// Raft pipelines the rest (docs/TRAIL.md).
	Flushers int
	// Linger is how long a flusher may wait, with requests still on their
	// way to their records, before it commits what is queued; default
	// 300µs, negative: never (recorder.linger).
	Linger time.Duration
	// Commit says what a request's record must reach before the request is
	// answered (docs/TRAIL.md); default CommitAuto.
	Commit TrailCommit
	// ShipInterval is how long after one shipment of journaled records
	// began the next may begin, unless a full batch waits or a query waits
	// for them; default 20ms, negative: at once (recorder.lingerShip).
	ShipInterval time.Duration
}

// TrailCommit says what a request's record must reach before the request
// is answered.
type TrailCommit string

// The choices of TrailConfig.Commit.
const (
	// CommitQuorum: the replicated trail — a Raft commit through the
	// leader, on a quorum of the nodes' disks.
	CommitQuorum TrailCommit = "quorum"
	// CommitJournal: this node's journal (Deps.Journal); the records are
	// shipped into the replicated trail right after, so no request waits
	// for another node.
	CommitJournal TrailCommit = "journal"
	// CommitAuto: quorum while this node is the only voter (the commit is
	// then its own disk write), journal when there are others.
	CommitAuto TrailCommit = "auto"
)

// maxShipBacklog bounds the records a node has journaled and not yet
// shipped: beyond it the node refuses requests (it cannot reach the
// leader, or the trail does not keep up) rather than let them pile up.
const maxShipBacklog = 64 << 20

func (c *TrailConfig) setDefaults() {
	if c.Retention.MaxRecords == 0 {
		c.Retention.MaxRecords = 100000
	}
	if c.Retention.MaxAge == 0 {
		c.Retention.MaxAge = int64(24 * time.Hour)
	}
	if c.BatchRecords <= 0 {
		c.BatchRecords = 2048
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = 1 << 20
	}
	if c.Flushers <= 0 {
		c.Flushers = 1
	}
	if c.ShipInterval == 0 {
		c.ShipInterval = 20 * time.Millisecond
	}
	if c.Linger == 0 {
		c.Linger = 300 * time.Microsecond
	}
	if c.Commit == "" {
		c.Commit = CommitAuto
	}
}

// TrailReader reads this node's archived trail. cluster.Archiver
// implements it.
type TrailReader interface {
	Scan(from, to uint64, fn func(trail.Sealed) bool) error
	ScanBackward(before uint64, minTime, maxTime int64, fn func(trail.Sealed) bool) error
	Last() (uint64, [32]byte)
	Holes() []trail.Range
}

// pendingRecord is one request's record waiting for its batch to commit.
type pendingRecord struct {
	event []byte
	done  chan error
}

var pendingPool = sync.Pool{New: func() any {
	return &pendingRecord{event: make([]byte, 0, 512), done: make(chan error, 1)}
}}

// recorder group-commits records: requests queue them, and a few flushers
// take everything queued into one TrailAppend entry each, so while one
// batch commits the next fills.
type recorder struct {
	s      *Server
	cfg    TrailConfig
	mu     sync.Mutex
	queue  []*pendingRecord
	bytes  int
	closed bool
	work   chan struct{}
	// target, when not zero, is the queue length at which record wakes a
	// lingering flusher (through full).
	target int
	full   chan struct{}
	stop   chan struct{}
	wg     sync.WaitGroup

	// The journal (nil: every record is committed through Raft) and the
	// shipping of what it holds into the replicated trail.
	journal *trail.Journal
	jmu     sync.Mutex // keeps the shipping queue in journal order
	shipMu  sync.Mutex
	ship    []trail.JournalBatch // journaled, not yet shipped; oldest first
	shipped shipProgress
	// shippedCh is closed (and replaced) whenever a batch ships.
	shippedCh chan struct{}
	shipWork  chan struct{}
	shipKick  chan struct{} // a query waits: retry now, not after the backoff
	settling  atomic.Int32  // queries waiting for records to ship: no lingering
	shipStop  chan struct{} // closed once the flushers are done: ship what is left, stop
	shipDone  chan struct{}

	// Whether this node was its cluster's only voter (solo), and when that
	// was last asked of Raft (soloAt, unix nanoseconds; 0: never).
	solo   atomic.Bool
	soloAt atomic.Int64
}

// soloRefresh is how often the flushers ask Raft whether this node is its
// cluster's only voter (asking costs a copy of the configuration).
const soloRefresh = 100 * time.Millisecond

// shipProgress counts the journal's records: queued to ship and shipped
// since start, their bytes waiting, and the Raft index of the last shipment.
type shipProgress struct {
	queued, done uint64
	bytes        int
	index        uint64
}

func newRecorder(s *Server, cfg TrailConfig) *recorder {
	r := &recorder{s: s, cfg: cfg, work: make(chan struct{}, 1), full: make(chan struct{}, 1), stop: make(chan struct{})}
	if j := s.deps.Journal; j != nil {
		r.journal, r.shippedCh = j, make(chan struct{})
		r.shipWork, r.shipKick = make(chan struct{}, 1), make(chan struct{}, 1)
		r.shipStop, r.shipDone = make(chan struct{}), make(chan struct{})
		for _, b := range j.Recovered() {
			r.enqueue(b)
		}
		if n := r.shipped.queued; n > 0 {
			s.log.Info("shipping the trail records an earlier run left in the journal", "records", n)
		}
		if cut := j.Cut(); cut > 0 {
			s.log.Warn("the trail journal ended in a torn or damaged frame (a crash mid-write); it was left out", "bytes", cut)
		}
		go r.shipper()
	}
	for range cfg.Flushers {
		r.wg.Add(1)
		go r.flusher()
	}
	return r
}

// record commits one event (the encoding in p) and waits for the outcome.
func (r *recorder) record(p *pendingRecord) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrTrailUnavailable
	}
	r.queue = append(r.queue, p)
	r.bytes += len(p.event)
	if r.target > 0 && len(r.queue) >= r.target {
		r.target = 0
		wake(r.full)
	}
	r.mu.Unlock()
	r.signal()
	return <-p.done
}

// linger waits, while records arrive fast enough that some are expected
// within cfg.Linger, until half as many are queued as the last batch held
// or cfg.Linger has passed since that batch committed. Under load, requests
// answered together come back together: committing the first few of them
// alone would make the rest wait a whole commit longer, and spend a commit
// on a few records. Under light load nobody waits. (Several flushers share
// one target; one may then wait out its linger.)
func (r *recorder) linger(t *time.Timer, rate float64, last int, since time.Time) {
	if r.cfg.Linger < 0 || last < 2 || rate*r.cfg.Linger.Seconds() < 1 {
		return // light load, or one client at a time: nothing to wait for
	}
	wait := r.cfg.Linger - time.Since(since)
	if wait <= 0 {
		return
	}
	want := min(max(last/2, 2), r.cfg.BatchRecords)
	r.mu.Lock()
	if len(r.queue) >= want || r.closed {
		r.mu.Unlock()
		return
	}
	r.target = want
	r.mu.Unlock()
	t.Reset(wait)
	select {
	case <-r.full:
		t.Stop()
	case <-t.C:
	case <-r.stop:
		t.Stop()
	}
	r.mu.Lock()
	r.target = 0
	r.mu.Unlock()
	select { // a wake-up that came as the timer fired
	case <-r.full:
	default:
	}
}

func (r *recorder) signal() { wake(r.work) }

// wake signals ch (buffered, one slot) without waiting: a signal already
// pending is enough.
func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// eventsBytes returns the size of events.
func eventsBytes(events [][]byte) int {
	n := 0
	for _, ev := range events {
		n += len(ev)
	}
	return n
}

func (r *recorder) flusher() {
	defer r.wg.Done()
	var batch []*pendingRecord
	events := make([][]byte, 0, r.cfg.BatchRecords)
	t := time.NewTimer(time.Hour)
	t.Stop()
	// What the last batches say about the load: records per second (an
	// average over a few commits), the last batch's size, and when it
	// committed.
	var rate float64
	var last int
	var ended time.Time
	for {
		select {
		case <-r.work:
		case <-r.stop:
			r.fail(ErrTrailUnavailable)
			return
		}
		for {
			r.linger(t, rate, last, ended)
			batch = r.take(batch[:0])
			if len(batch) == 0 {
				break
			}
			events = events[:0]
			for _, p := range batch {
				events = append(events, p.event)
			}
			var err error
			if r.journaling() {
				err = r.write(events)
			} else {
				err = r.commit(events)
			}
			for _, p := range batch {
				p.done <- err
			}
			now := time.Now()
			if !ended.IsZero() {
				rate = 0.75*rate + 0.25*float64(len(batch))/max(now.Sub(ended).Seconds(), 1e-6)
			}
			last, ended = len(batch), now
			clear(batch)
		}
	}
}

// take moves up to one batch from the queue into batch, and wakes another
// flusher if records are left.
func (r *recorder) take(batch []*pendingRecord) []*pendingRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, size := 0, 0
	for n < len(r.queue) && n < r.cfg.BatchRecords && (n == 0 || size+len(r.queue[n].event) <= r.cfg.BatchBytes) {
		size += len(r.queue[n].event)
		n++
	}
	batch = append(batch, r.queue[:n]...)
	rest := copy(r.queue, r.queue[n:])
	clear(r.queue[rest:])
	r.queue = r.queue[:rest]
	r.bytes -= size
	if rest > 0 {
		r.signal()
	}
	return batch
}

func (r *recorder) commit(events [][]byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.s.cfg.WriteTimeout)
	defer cancel()
	cmd := fsm.Encode(fsm.Header{RequestID: uuid.New()}, &fsm.TrailAppend{Retention: r.cfg.Retention, Events: events})
	start := time.Now()
	res, err := r.s.deps.Proposer.Commit(ctx, cmd)
	r.s.metrics.trailBatch(len(events), time.Since(start), err)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		r.s.log.Warn("trail records did not commit; their requests are refused", "records", len(events), "err", err)
		return ErrTrailUnavailable
	}
	return nil
}

// journaling reports whether records go to the journal (cfg.Commit). In
// auto mode that is when this node is not its cluster's only voter, as Raft
// said at most soloRefresh ago: a membership change is followed that much
// later, and either way the records are safe — committed before the reply,
// or journaled and shipped — only the speed differs.
func (r *recorder) journaling() bool {
	switch {
	case r.journal == nil || r.cfg.Commit == CommitQuorum:
		return false
	case r.cfg.Commit == CommitJournal:
		return true
	}
	now := time.Now().UnixNano()
	if at := r.soloAt.Load(); at == 0 || now-at >= int64(soloRefresh) {
		r.solo.Store(r.s.deps.Node.Solo())
		r.soloAt.Store(now)
	}
	return !r.solo.Load()
}

// write writes events to the journal and queues them to ship.
func (r *recorder) write(events [][]byte) error {
	r.jmu.Lock()
	defer r.jmu.Unlock()
	r.shipMu.Lock()
	backlog := r.shipped.bytes
	r.shipMu.Unlock()
	if backlog > maxShipBacklog {
		r.s.log.Warn("trail records are not reaching the replicated trail; requests are refused", "waiting_bytes", backlog)
		return ErrTrailUnavailable
	}
	first, err := r.journal.Append(events)
	if err != nil {
		r.s.log.Warn("trail records could not be written to the journal; their requests are refused", "records", len(events), "err", err)
		return ErrTrailUnavailable
	}
	// A copy: the events are the requests' pooled buffers.
	buf := make([]byte, 0, eventsBytes(events))
	b := trail.JournalBatch{ID: r.journal.ID(), First: first, Events: make([][]byte, len(events))}
	for i, ev := range events {
		buf = append(buf, ev...)
		b.Events[i] = buf[len(buf)-len(ev):]
	}
	r.enqueue(b)
	return nil
}

func (r *recorder) enqueue(b trail.JournalBatch) {
	r.shipMu.Lock()
	r.ship = append(r.ship, b)
	r.shipped.queued += uint64(len(b.Events))
	r.shipped.bytes += eventsBytes(b.Events)
	r.shipMu.Unlock()
	wake(r.shipWork)
}

// shipper ships the journal's records into the replicated trail, one
// TrailShip entry at a time, oldest first; a shipment that fails is tried
// again (the state machine applies each record once). At close it ships
// what it can within the write timeout; the rest waits in the journal.
func (r *recorder) shipper() {
	defer close(r.shipDone)
	var backoff time.Duration
	var failing bool
	var began time.Time
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case <-r.shipWork:
		case <-r.shipStop:
			r.drain()
			return
		}
		for {
			if !r.lingerShip(t, began) {
				r.drain()
				return
			}
			began = time.Now()
			b, n, ok := r.nextShipment()
			if !ok {
				break
			}
			ctx, cancel := context.WithTimeout(context.Background(), r.s.cfg.WriteTimeout)
			err := r.shipBatch(ctx, b, n)
			cancel()
			if err == nil {
				if failing {
					r.s.log.Info("trail records reach the replicated trail again")
				}
				backoff, failing = 0, false
				continue
			}
			if !failing {
				r.s.log.Warn("trail records could not be shipped; retrying", "records", len(b.Events), "err", err)
			}
			failing, backoff = true, min(max(2*backoff, 20*time.Millisecond), time.Second)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-r.shipKick:
				t.Stop()
			case <-r.shipStop:
				t.Stop()
				r.drain()
				return
			}
		}
	}
}

// lingerShip waits, while less than a full batch is queued, until
// cfg.ShipInterval has passed since the last shipment began, or a query
// waits for the records (settle, which also kicks). Every shipment is a
// Raft entry that every node writes and fsyncs and the leader sends to each
// follower, whatever it holds: under load a shipment as soon as the last
// one committed carried 50-80 records, one every 20 ms carries 200-230, and
// a 3-node cluster on one machine served 22 % more requests. The records'
// requests were answered already; what waits is their place in the
// replicated trail. It returns false if the recorder is stopping.
func (r *recorder) lingerShip(t *time.Timer, began time.Time) bool {
	for {
		wait := r.cfg.ShipInterval - time.Since(began)
		if wait <= 0 || r.settling.Load() > 0 || r.fullShipment() {
			return true
		}
		t.Reset(wait)
		select {
		case <-t.C:
			return true
		case <-r.shipKick: // a query's, or left by one already answered
			if r.settling.Load() > 0 {
				t.Stop()
				return true
			}
		case <-r.shipWork: // more records: a full batch yet?
			t.Stop()
		case <-r.shipStop:
			t.Stop()
			return false
		}
	}
}

// fullShipment reports whether a batch's worth of records waits to ship.
func (r *recorder) fullShipment() bool {
	r.shipMu.Lock()
	defer r.shipMu.Unlock()
	return r.shipped.queued-r.shipped.done >= uint64(r.cfg.BatchRecords) || r.shipped.bytes >= r.cfg.BatchBytes
}

// drain ships what is queued, for at most the write timeout.
func (r *recorder) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), r.s.cfg.WriteTimeout)
	defer cancel()
	for ctx.Err() == nil {
		b, n, ok := r.nextShipment()
		if !ok {
			return
		}
		if err := r.shipBatch(ctx, b, n); err != nil {
			r.s.log.Warn("trail records left in the journal; they are shipped after the next start", "err", err)
			return
		}
	}
}

// nextShipment returns the oldest queued records of one journal, in
// number order, as one batch of at most one entry's worth, and how many
// queued batches it covers.
func (r *recorder) nextShipment() (trail.JournalBatch, int, bool) {
	r.shipMu.Lock()
	defer r.shipMu.Unlock()
	if len(r.ship) == 0 {
		return trail.JournalBatch{}, 0, false
	}
	out := trail.JournalBatch{ID: r.ship[0].ID, First: r.ship[0].First}
	size, n := 0, 0
	for _, b := range r.ship {
		next := out.First + uint64(len(out.Events))
		bs := eventsBytes(b.Events)
		if n > 0 && (b.ID != out.ID || b.First != next || len(out.Events)+len(b.Events) > r.cfg.BatchRecords || size+bs > r.cfg.BatchBytes) {
			break
		}
		out.Events = append(out.Events, b.Events...)
		size += bs
		n++
	}
	return out, n, true
}

// shipBatch commits one shipment, then drops its n queued batches and the
// journal files it empties.
func (r *recorder) shipBatch(ctx context.Context, b trail.JournalBatch, n int) error {
	cmd := fsm.Encode(fsm.Header{}, &fsm.TrailShip{Retention: r.cfg.Retention, Journal: b.ID, First: b.First, Events: b.Events})
	start := time.Now()
	res, err := r.s.deps.Proposer.Commit(ctx, cmd)
	if err != nil {
		return err
	}
	if res.Err != nil { // never for a well-formed shipment; retrying would not help
		r.s.log.Error("the state machine refused a shipment of trail records; they are left out", "records", len(b.Events), "err", res.Err)
	} else {
		r.s.metrics.trailBatch(len(b.Events), time.Since(start), nil)
	}
	r.shipMu.Lock()
	for _, q := range r.ship[:n] {
		r.shipped.bytes -= eventsBytes(q.Events)
	}
	clear(r.ship[:n])
	r.ship = r.ship[n:]
	r.shipped.done += uint64(len(b.Events))
	r.shipped.index = max(r.shipped.index, res.Index)
	close(r.shippedCh)
	r.shippedCh = make(chan struct{})
	r.shipMu.Unlock()
	if err := r.journal.Shipped(b.ID, b.First+uint64(len(b.Events))-1); err != nil {
		r.s.log.Warn("a shipped trail journal file could not be removed", "err", err)
	}
	return nil
}

// settle waits until the records this node journaled before the call are
// in its replica of the trail, so that a client finds its own requests'
// records in LookupEvents and ExportTrail on the node that served them.
func (r *recorder) settle(ctx context.Context) error {
	if r.journal == nil {
		return nil
	}
	r.settling.Add(1)
	defer r.settling.Add(-1)
	r.shipMu.Lock()
	want := r.shipped.queued
	r.shipMu.Unlock()
	wake(r.shipKick)
	for {
		r.shipMu.Lock()
		done, index, ch := r.shipped.done >= want, r.shipped.index, r.shippedCh
		r.shipMu.Unlock()
		if done {
			return r.s.deps.State.WaitIndex(ctx, index)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// backlog returns how many journaled records wait to be shipped.
func (r *recorder) backlog() uint64 {
	r.shipMu.Lock()
	defer r.shipMu.Unlock()
	return r.shipped.queued - r.shipped.done
}

// fail answers everything queued with err.
func (r *recorder) fail(err error) {
	r.mu.Lock()
	q := r.queue
	r.queue, r.bytes = nil, 0
	r.mu.Unlock()
	for _, p := range q {
		p.done <- err
	}
}

func (r *recorder) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	close(r.stop)
	r.wg.Wait()
	if r.journal != nil {
		close(r.shipStop)
		<-r.shipDone
	}
}

// recordCall commits the record of a request that has not been recorded
// with its state change, and returns the error to answer with: err itself,
// or ErrTrailUnavailable when the record did not commit.
func (s *Server) recordCall(c *call, err error) error {
	outcome, code := trail.Success, ""
	if err != nil {
		outcome = trail.Failed
		var de *DeniedError
		if errors.As(err, &de) {
			outcome = trail.Denied
		}
		we, _ := toWire(err)
		code = we.Code
	}
	p := pendingPool.Get().(*pendingRecord)
	p.event = c.appendEvent(p.event[:0], outcome, code)
	rerr := s.recorder.record(p)
	clear(p.event)
	pendingPool.Put(p)
	if rerr != nil {
		return rerr
	}
	return err
}

// auditedCommand wraps a state change with the record of the request that
// asks for it (outcome success): the record commits with the change or not
// at all.
func (s *Server) auditedCommand(c *call, cmd fsm.Command) fsm.Command {
	return &fsm.Audited{Retention: s.cfg.Trail.Retention, Event: c.appendEvent(nil, trail.Success, ""), Cmd: cmd}
}

// Limits of what a record keeps of a request.
const (
	maxTrailValue     = 8 << 10
	maxTrailParams    = 24 << 10
	maxTrailUserAgent = 256
)

// trailParams are the parameters a record keeps: never a secret (Plaintext),
// nor the signature's own parameters. A Module is kept as its SHA-256.
var trailParams = func() map[string]bool {
	m := map[string]bool{}
	for _, p := range strings.Fields(`KeyId Description KeySpec KeyUsage Origin ProtectionLevel EnableAutomaticRotation
		RotationInterval Tags DKMSInstanceId PageNumber PageSize Filters PendingWindowInDays ProtectedResourceArn
		EnableDeletionProtection DeletionProtectionDescription AliasName EncryptionContext SourceEncryptionContext
		DestinationEncryptionContext DestinationKeyId NumberOfBytes DryRun PasswordLength ExcludeCharacters
		ExcludeLowercase ExcludeUppercase ExcludeNumbers ExcludePunctuation RequireEachIncludedType AccountName AccountId
		UserName ProductCode Status PolicyName PolicyDocument NodeId StartTime EndTime EventName Outcome NextToken
		MaxResults StartSeq`) {
		m[p] = true
	}
	return m
}()

// appendEvent appends the encoding of the request's trail event.
func (c *call) appendEvent(b []byte, outcome trail.Outcome, code string) []byte {
	s := c.s
	var eid [16]byte
	var eidText [36]byte
	newRequestID(&eid, &eidText)
	e := trail.Event{EventID: bstr(eidText[:]), Time: c.now.UnixNano(), EventName: validUTF8(c.action),
		Account: c.principal.account, PrincipalType: c.principal.kind.String(), PrincipalName: c.principal.name,
		AccessKeyID: c.principal.accessKeyID, RequestID: c.reqID, Node: s.cfg.NodeID,
		KeyVersionID: c.trailVersion, Outcome: outcome, ErrorCode: code}
	if ip, ok := netip.AddrFromSlice(c.ctx.RemoteIP()); ok {
		c.trailIP = ip.Unmap().AppendTo(c.trailIP[:0])
		e.SourceIP = bstr(c.trailIP)
	}
	ua := c.ctx.UserAgent()
	if len(ua) > maxTrailUserAgent {
		ua = ua[:maxTrailUserAgent]
	}
	e.UserAgent = validUTF8(bstr(ua))
	account := c.principal.account
	if k := c.authKey; k != nil {
		e.KeyID, account = k.ID, k.Account
	} else {
		e.KeyID = c.trailKeyID
	}
	if e.KeyID != "" {
		c.trailARN = append(append(append(append(append(c.trailARN[:0], "acs:kms:"...), s.cfg.Region...), ':'), account...), ":key/"...)
		c.trailARN = append(c.trailARN, e.KeyID...)
		e.ResourceARN = bstr(c.trailARN)
	}
	e.Params = c.trailParams[:0]
	size := 0
	for _, p := range c.params {
		name := bstr(p.Key)
		value := bstr(p.Value)
		switch {
		case name == "Module":
			sum := sha256.Sum256(p.Value)
			name, value = "ModuleSha256", hex.EncodeToString(sum[:])
		case name == "AccessKeyId" && c.v3: // the identity actions' parameter (V1 signs with one)
		case !trailParams[name]:
			continue
		}
		if len(value) > maxTrailValue {
			value = value[:maxTrailValue] + "…"
		}
		value = validUTF8(value)
		if size += len(name) + len(value); size > maxTrailParams {
			break
		}
		e.Params = append(e.Params, trail.Param{Name: name, Value: value})
	}
	e.Params = trail.SortParams(e.Params)
	c.trailParams = e.Params
	b = trail.AppendEvent(b, &e)
	clear(c.trailParams) // views of the request
	return b
}

// validUTF8 returns s, or a copy with invalid bytes replaced: a record holds
// text only.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
