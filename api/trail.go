package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/raftkms/raftkms/fsm"
	"github.com/raftkms/raftkms/trail"
)

// ErrTrailUnavailable answers a request whose trail record could not be
// committed: nothing is served unrecorded.
var ErrTrailUnavailable = errors.New("api: the request's trail record could not be committed")

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
}

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
	if c.Linger == 0 {
		c.Linger = 300 * time.Microsecond
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
}

func newRecorder(s *Server, cfg TrailConfig) *recorder {
	r := &recorder{s: s, cfg: cfg, work: make(chan struct{}, 1), full: make(chan struct{}, 1), stop: make(chan struct{})}
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
		select {
		case r.full <- struct{}{}:
		default:
		}
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

func (r *recorder) signal() {
	select {
	case r.work <- struct{}{}:
	default:
	}
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
			err := r.commit(events)
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
