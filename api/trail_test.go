package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftkms/raftkms/api/client"
	"github.com/raftkms/raftkms/cluster"
	"github.com/raftkms/raftkms/fsm"
	"github.com/raftkms/raftkms/trail"
)

// noTrail is a node whose trail records cannot commit (no quorum for them,
// say); state changes still go through.
type noTrail struct{ Proposer }

func (noTrail) Commit(context.Context, []byte) (fsm.Result, error) {
	return fsm.Result{}, cluster.ErrTimeout
}

// records returns the trail records the node holds, oldest first.
func (tn *testNode) records(t *testing.T) []trail.Record {
	t.Helper()
	var out []trail.Record
	tn.fsm.State().TrailRecords(0, func(s trail.Sealed) bool {
		r, err := s.Decode()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
		return true
	})
	return out
}

func TestNothingIsServedUnrecorded(t *testing.T) {
	tn := startTestNode(t)
	ctx := context.Background()
	id := tn.createKey(t)
	tn.srv.deps.Proposer = noTrail{tn.srv.deps.Proposer}
	before := len(tn.records(t))

	// Cryptography is refused: its record could not commit.
	_, err := tn.cli.GenerateDataKey(ctx, id, 0, nil)
	if e := wantErr(t, err, 503, "ServiceUnavailableTemporary"); !strings.Contains(e.Message, "audit record") {
		t.Fatalf("message %q", e.Message)
	}
	// A state change commits with its own record, so it is made and recorded.
	if err := tn.cli.Do(ctx, "DisableKey", map[string]string{"KeyId": id}, nil); err != nil {
		t.Fatalf("DisableKey: %v", err)
	}
	recs := tn.records(t)
	if len(recs) != before+1 || recs[len(recs)-1].EventName != "DisableKey" || recs[len(recs)-1].KeyID != id {
		t.Fatalf("records after the refused call and the change: %d new", len(recs)-before)
	}
	// A change the state machine refuses is recorded on its own, which
	// cannot commit: 503 rather than an unrecorded answer.
	_, err = tn.cli.Call(ctx, "EnableKey", map[string]string{"KeyId": "key-missing"})
	wantErr(t, err, 503, "ServiceUnavailableTemporary")
	if n := len(tn.records(t)); n != len(recs) {
		t.Fatalf("%d records appeared for refused requests", n-len(recs))
	}
}

func TestRecordsKeepParametersButNoSecret(t *testing.T) {
	tn := startTestNode(t)
	ctx := context.Background()
	id := tn.createKey(t)
	if _, err := tn.cli.Call(ctx, "Encrypt", map[string]string{"KeyId": id, "Plaintext": "top secret text",
		"EncryptionContext": `{"tenant":"acme"}`}); err != nil {
		t.Fatal(err)
	}
	own(t, tn.cli, "PutRegoPolicy", map[string]string{"PolicyName": "m", "Module": "package kms.custom\n"}, nil)
	recs := tn.records(t)
	enc, put := recs[len(recs)-2], recs[len(recs)-1]
	params := func(r trail.Record) map[string]string {
		m := map[string]string{}
		for _, p := range r.Params {
			m[p.Name] = p.Value
		}
		return m
	}
	if p := params(enc); enc.EventName != "Encrypt" || p["KeyId"] != id || p["EncryptionContext"] != `{"tenant":"acme"}` || len(p) != 2 {
		t.Fatalf("Encrypt record parameters %v (the plaintext, the signature's parameters: never)", p)
	}
	if p := params(put); len(p["ModuleSha256"]) != 64 || p["Module"] != "" || p["PolicyName"] != "m" {
		t.Fatalf("PutRegoPolicy record parameters %v", p)
	}
	// A request that is not authenticated is not recorded: anyone could
	// write into the trail.
	var ce *client.Error
	_, err := tn.client(t, client.Credentials{AccessKeyID: tn.creds.AccessKeyID, AccessKeySecret: "wrong"}).Call(ctx, "ListKeys", nil)
	if !errors.As(err, &ce) {
		t.Fatal(err)
	}
	if n := len(tn.records(t)); n != len(recs) {
		t.Fatal("a request with a bad signature was recorded")
	}
}

func TestConcurrentRequestsShareTrailCommits(t *testing.T) {
	tn := startTestNode(t)
	id := tn.createKey(t)
	cp := &countingProposer{Proposer: tn.srv.deps.Proposer}
	tn.srv.deps.Proposer = cp
	const clients, calls = 32, 40
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Go(func() {
			for range calls {
				if _, err := tn.cli.GenerateDataKey(context.Background(), id, 0, nil); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := cp.commits.Load(); n > clients*calls/4 {
		t.Fatalf("%d requests took %d trail commits: batches average under 4 records", clients*calls, n)
	}
}

func TestOneClientAtATimeIsNotHeldForABatch(t *testing.T) {
	tn := startTestNode(t)
	id := tn.createKey(t)
	// A flusher that waited for company would hold each of these calls for
	// the whole linger.
	tn.srv.recorder.cfg.Linger = time.Minute
	start := time.Now()
	for range 200 {
		if _, err := tn.cli.GenerateDataKey(context.Background(), id, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("200 calls one after another took %v", d)
	}
}

// stallingProposer refuses trail commits while stalled, as a node cut off
// from its leader would see them fail.
type stallingProposer struct {
	Proposer
	stalled atomic.Bool
}

func (p *stallingProposer) Commit(ctx context.Context, cmd []byte) (fsm.Result, error) {
	if p.stalled.Load() {
		return fsm.Result{}, cluster.ErrNotLeader
	}
	return p.Proposer.Commit(ctx, cmd)
}

// startJournalNode starts a test node whose records go to a journal in dir.
func startJournalNode(t *testing.T, dir string, writeTimeout time.Duration) *testNode {
	return startTestNode(t, func(c *Config, d *Deps) {
		j, err := trail.OpenJournal(dir, false)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { j.Close() }) // after the server's shutdown, registered later
		c.Trail.Commit, c.WriteTimeout, d.Journal = CommitJournal, writeTimeout, j
	})
}

func TestJournaledRecordsAnswerAtOnceAndReachTheTrailOnce(t *testing.T) {
	dir := t.TempDir()
	tn := startJournalNode(t, dir, 2*time.Second)
	id := tn.createKey(t)
	before := len(tn.records(t))
	sp := &stallingProposer{Proposer: tn.srv.deps.Proposer}
	sp.stalled.Store(true)
	tn.srv.deps.Proposer = sp
	ctx := context.Background()
	var reqs []string
	for range 3 {
		body, err := tn.cli.Call(ctx, "GenerateDataKey", map[string]string{"KeyId": id})
		if err != nil {
			t.Fatalf("a journaled request waited for the trail: %v", err)
		}
		var r struct{ RequestId string }
		json.Unmarshal(body, &r)
		reqs = append(reqs, r.RequestId)
	}
	if n := len(tn.records(t)); n != before || tn.srv.recorder.backlog() != 3 {
		t.Fatalf("%d new records in the trail, %d waiting, while the trail refuses commits", n-before, tn.srv.recorder.backlog())
	}
	// A trail query on this node would miss them: it says so.
	_, err := tn.cli.CallVersion(ctx, OwnVersion, "LookupEvents", map[string]string{"KeyId": id})
	var ae *client.Error
	if !errors.As(err, &ae) || ae.StatusCode != 503 {
		t.Fatalf("LookupEvents while the records wait: %v", err)
	}
	sp.stalled.Store(false)
	body, err := tn.cli.CallVersion(ctx, OwnVersion, "LookupEvents", map[string]string{"KeyId": id, "EventName": "GenerateDataKey"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		if !bytes.Contains(body, []byte(r)) {
			t.Fatalf("request %s has no record once the trail took commits again", r)
		}
	}
	seen := map[string]int{}
	for _, r := range tn.records(t) {
		seen[r.RequestID]++
	}
	for _, r := range reqs {
		if seen[r] != 1 {
			t.Fatalf("request %s has %d records", r, seen[r])
		}
	}
	// The lookups' own records ship too; then the journal is empty.
	if err := tn.srv.recorder.settle(ctx); err != nil {
		t.Fatal(err)
	}
	if names, _ := filepath.Glob(filepath.Join(dir, "*")); len(names) != 0 || tn.srv.recorder.backlog() != 0 {
		t.Fatalf("journal files %v, %d records waiting after everything shipped", names, tn.srv.recorder.backlog())
	}
}

func TestRecordsUnshippedAtShutdownWaitInTheJournal(t *testing.T) {
	dir := t.TempDir()
	tn := startJournalNode(t, dir, 2*time.Second)
	id := tn.createKey(t)
	sp := &stallingProposer{Proposer: tn.srv.deps.Proposer}
	sp.stalled.Store(true)
	tn.srv.deps.Proposer = sp
	var reqs []string
	for range 3 {
		body, err := tn.cli.Call(context.Background(), "Encrypt", map[string]string{"KeyId": id, "Plaintext": "aGk="})
		if err != nil {
			t.Fatal(err)
		}
		var r struct{ RequestId string }
		json.Unmarshal(body, &r)
		reqs = append(reqs, r.RequestId)
	}
	if err := tn.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// What the next start finds: every answered request's record.
	next, err := trail.OpenJournal(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	var found [][]byte
	for _, b := range next.Recovered() {
		found = append(found, b.Events...)
	}
	for _, r := range reqs {
		if !slices.ContainsFunc(found, func(ev []byte) bool { return bytes.Contains(ev, []byte(r)) }) {
			t.Fatalf("request %s's record is not in the journal after shutdown (%d records there)", r, len(found))
		}
	}
}

// soloNode is the test node with Solo answered by the test, counting how
// often it is asked.
type soloNode struct {
	Node
	solo  atomic.Bool
	asked atomic.Int64
}

func (n *soloNode) Solo() bool {
	n.asked.Add(1)
	return n.solo.Load()
}

func TestALoneNodeAsksRaftIfItIsAloneOnlyNowAndThenAndJournalsOnceItIsNot(t *testing.T) {
	sn := &soloNode{}
	sn.solo.Store(true)
	tn := startTestNode(t, func(c *Config, d *Deps) {
		j, err := trail.OpenJournal(t.TempDir(), false)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { j.Close() })
		sn.Node = d.Node
		c.Trail.Commit, d.Journal, d.Node = CommitAuto, j, sn
	})
	id := tn.createKey(t)
	ctx := context.Background()
	start, asked := time.Now(), sn.asked.Load()
	for range 50 { // one batch each
		if _, err := tn.cli.Call(ctx, "GenerateDataKey", map[string]string{"KeyId": id}); err != nil {
			t.Fatal(err)
		}
	}
	if n, most := sn.asked.Load()-asked, int64(time.Since(start)/soloRefresh)+2; n > most {
		t.Fatalf("asked Raft whether the node is alone %d times in 50 requests over %s (at most %d)", n, time.Since(start), most)
	}
	// Alone, the node commits before it answers: with the trail refusing
	// commits, requests fail. Once a voter joins it journals them, within
	// soloRefresh.
	sp := &stallingProposer{Proposer: tn.srv.deps.Proposer}
	sp.stalled.Store(true)
	tn.srv.deps.Proposer = sp
	if _, err := tn.cli.Call(ctx, "GenerateDataKey", map[string]string{"KeyId": id}); err == nil {
		t.Fatal("a lone node answered while its record could not commit")
	}
	sn.solo.Store(false)
	deadline := time.Now().Add(10 * soloRefresh)
	for {
		_, err := tn.cli.Call(ctx, "GenerateDataKey", map[string]string{"KeyId": id})
		if err == nil && tn.srv.recorder.backlog() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still not journaling %s after the node stopped being alone: %v", 10*soloRefresh, err)
		}
	}
	sp.stalled.Store(false)
	if err := tn.srv.recorder.settle(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestJournaledRecordsShipTogetherEachIntervalButAtOnceForAQuery(t *testing.T) {
	dir := t.TempDir()
	tn := startTestNode(t, func(c *Config, d *Deps) {
		j, err := trail.OpenJournal(dir, false)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { j.Close() })
		c.Trail.Commit, c.Trail.ShipInterval, d.Journal = CommitJournal, time.Hour, j
	})
	id := tn.createKey(t)
	ctx := context.Background()
	// A record shipped (a query does not wait): the interval starts.
	if _, err := tn.cli.Call(ctx, "GenerateDataKey", map[string]string{"KeyId": id}); err != nil {
		t.Fatal(err)
	}
	if err := tn.srv.recorder.settle(ctx); err != nil {
		t.Fatal(err)
	}
	cp := &countingProposer{Proposer: tn.srv.deps.Proposer}
	tn.srv.deps.Proposer = cp
	var reqs []string
	for range 20 {
		body, err := tn.cli.Call(ctx, "GenerateDataKey", map[string]string{"KeyId": id})
		if err != nil {
			t.Fatal(err)
		}
		var r struct{ RequestId string }
		json.Unmarshal(body, &r)
		reqs = append(reqs, r.RequestId)
	}
	// They wait for the interval, together.
	if n := cp.commits.Load(); n != 0 || tn.srv.recorder.backlog() != 20 {
		t.Fatalf("%d shipments, %d records waiting: the records did not wait to ship together", n, tn.srv.recorder.backlog())
	}
	// A query on this node does not wait the interval: it ships them.
	start := time.Now()
	body, err := tn.cli.CallVersion(ctx, OwnVersion, "LookupEvents", map[string]string{"KeyId": id, "EventName": "GenerateDataKey"})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("LookupEvents waited %s for the shipment", d)
	}
	for _, r := range reqs {
		if !bytes.Contains(body, []byte(r)) {
			t.Fatalf("request %s has no record", r)
		}
	}
	if n := cp.commits.Load(); n > 2 {
		t.Fatalf("%d shipments for 20 records", n)
	}
}
