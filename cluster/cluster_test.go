package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftkms/raftkms/fsm"
	"github.com/raftkms/raftkms/trail"
)

type testNode struct {
	*Node
	fsm *fsm.FSM
}

func newTestNode(t *testing.T, id string, bootstrap bool, key []byte) *testNode {
	return newTestNodeIn(t, id, t.TempDir(), "127.0.0.1:0", bootstrap, key, nil)
}

// newTestNodeIn starts a node on dir and addr; tune adjusts its Config.
func newTestNodeIn(t *testing.T, id, dir, addr string, bootstrap bool, key []byte, tune func(*Config)) *testNode {
	t.Helper()
	f := fsm.New(fsm.Config{})
	cfg := Config{NodeID: id, DataDir: dir, RaftAddr: addr, Bootstrap: bootstrap, AuthKey: key, Lease: 300 * time.Millisecond}
	if tune != nil {
		tune(&cfg)
	}
	n, err := New(cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return &testNode{n, f}
}

func within(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond) // condition poll
	}
}

// startCluster starts a leader and joins n-1 voters to it.
func startCluster(t *testing.T, n int) []*testNode {
	t.Helper()
	nodes := []*testNode{newTestNode(t, "n1", true, testAuthKey)}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := nodes[0].WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= n; i++ {
		tn := newTestNode(t, fmt.Sprint("n", i), false, testAuthKey)
		if err := tn.Join(ctx, nodes[0].Addr(), true); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, tn)
	}
	for _, tn := range nodes {
		if err := tn.WaitReady(ctx); err != nil {
			t.Fatalf("%s not ready: %v", tn.ID(), err)
		}
	}
	return nodes
}

var seq byte

func account(id string) []byte {
	seq++
	return fsm.Encode(fsm.Header{RequestID: [16]byte{seq, 1}}, &fsm.CreateAccount{ID: id, Name: id, AccessKeyID: "AK" + id, Secret: []byte{1}})
}

func TestWritesFromAnyNodeAreSeenByEveryServingNodeWhenAcknowledged(t *testing.T) {
	nodes := startCluster(t, 3)
	for i := range 30 {
		via := nodes[i%3]
		id := fmt.Sprint("acct-", i)
		r, err := via.Propose(context.Background(), account(id))
		if err != nil || r.Err != nil || r.Account == nil || r.Account.ID != id {
			t.Fatalf("Propose via %s = %+v, %v", via.ID(), r, err)
		}
		// Linearizable reads: once acknowledged, every node that serves has it.
		for _, n := range nodes {
			if n.Ready() {
				if _, ok := n.fsm.State().Account(id); !ok {
					t.Fatalf("%s serves but has not applied acknowledged write %s", n.ID(), id)
				}
			}
		}
	}
	ms, err := nodes[2].Members()
	if err != nil || len(ms) != 3 {
		t.Fatalf("Members = %+v, %v", ms, err)
	}
}

// TestFollowersReportAppliedChangesButNotTrailAppends: fenced writes wait
// for lease holders' applied reports, so a follower reports every change it
// applies at once — and nothing for trail appends, which are most entries
// under load and fence nothing.
func TestFollowersReportAppliedChangesButNotTrailAppends(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := nodes[0]
	reports := func() uint64 { return leader.Status().Lease.AppliedReports }
	for _, n := range nodes[1:] { // both followers hold leases, so they report
		within(t, 5*time.Second, n.ID()+" holds a lease", func() bool { return n.Status().Lease.Held })
	}
	before := reports()
	for i := range 20 {
		ev := trail.AppendEvent(nil, &trail.Event{EventID: fmt.Sprint("e", i), EventName: "Encrypt",
			RequestID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Outcome: trail.Success})
		cmd := fsm.Encode(fsm.Header{RequestID: [16]byte{byte(i), 7}}, &fsm.TrailAppend{Retention: fsm.Retention{MaxRecords: 100}, Events: [][]byte{ev}})
		if r, err := nodes[1+i%2].Commit(context.Background(), cmd); err != nil || r.Err != nil {
			t.Fatalf("Commit = %v, %v", r.Err, err)
		}
	}
	last := leader.fsm.State().Index()
	for _, n := range nodes[1:] {
		within(t, 5*time.Second, n.ID()+" applies the records", func() bool { return n.fsm.State().Index() >= last })
	}
	if got := reports() - before; got != 0 {
		t.Fatalf("followers sent %d applied reports for trail appends alone", got)
	}
	if _, err := leader.Propose(context.Background(), account("fenced")); err != nil {
		t.Fatal(err)
	}
	within(t, 5*time.Second, "both followers report the change", func() bool { return reports()-before >= 2 })
}

func TestRetriedForwardIsAppliedOnce(t *testing.T) {
	nodes := startCluster(t, 3)
	cmd := account("once")
	for range 3 {
		r, err := nodes[1].Propose(context.Background(), append([]byte(nil), cmd...))
		if err != nil || r.Err != nil {
			t.Fatalf("Propose = %+v, %v", r, err)
		}
	}
	n := 0
	nodes[0].fsm.State().Accounts(func(*fsm.Account) bool { n++; return true })
	if n != 1 {
		t.Fatalf("%d accounts after three sends of one request, want 1", n)
	}
}

func TestNodeWithoutTheRootKeyCannotJoin(t *testing.T) {
	nodes := startCluster(t, 1)
	intruder := newTestNode(t, "evil", false, []byte("another-root-key-derived-0000000"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := intruder.Join(ctx, nodes[0].Addr(), true)
	if !errors.Is(err, ErrClusterAuth) || !strings.Contains(err.Error(), "root key") {
		t.Fatalf("Join with another root key err = %v, want ErrClusterAuth", err)
	}
	if ms, _ := nodes[0].Members(); len(ms) != 1 {
		t.Fatalf("members after a refused join: %+v", ms)
	}
}

func TestRemovedNodeStopsServingAndCanRejoinWiped(t *testing.T) {
	nodes := startCluster(t, 3)
	if err := nodes[2].RemoveNode("n3"); err != nil { // asked on the node itself: forwarded
		t.Fatal(err)
	}
	within(t, 3*time.Second, "removed node stops serving", func() bool { return !nodes[2].Ready() })
	if _, err := nodes[0].Propose(context.Background(), account("after-removal")); err != nil {
		t.Fatal(err)
	}
	// A new node with a wiped data directory takes the old id.
	fresh := newTestNode(t, "n3", false, testAuthKey)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fresh.Join(ctx, nodes[1].Addr(), true); err != nil {
		t.Fatal(err)
	}
	if err := fresh.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := fresh.fsm.State().Account("after-removal"); !ok {
		t.Fatal("rejoined node did not catch up")
	}
	if err := nodes[0].RemoveNode("nobody"); !errors.Is(err, ErrUnknownMember) && (err == nil || !strings.Contains(err.Error(), "no such node")) {
		t.Fatalf("RemoveNode(nobody) err = %v", err)
	}
}

func TestLeadershipTransferKeepsServing(t *testing.T) {
	nodes := startCluster(t, 3)
	if err := nodes[1].TransferLeadership("n2"); err != nil {
		t.Fatal(err)
	}
	within(t, 5*time.Second, "n2 leads", func() bool { return nodes[1].Role() == "leader" && nodes[1].Ready() })
	if r, err := nodes[0].Propose(context.Background(), account("after-transfer")); err != nil || r.Err != nil {
		t.Fatalf("Propose after transfer = %+v, %v", r, err)
	}
}

func TestNonVoterServesReadsAndCannotLead(t *testing.T) {
	nodes := startCluster(t, 1)
	ro := newTestNode(t, "replica", false, testAuthKey)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ro.Join(ctx, nodes[0].Addr(), false); err != nil {
		t.Fatal(err)
	}
	if err := ro.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := ro.Propose(ctx, account("via-replica")); err != nil || r.Err != nil {
		t.Fatalf("write through a non-voter = %+v, %v", r, err)
	}
	if st := ro.Status(); st.Voter || st.Role != "follower" || !st.Lease.Held {
		t.Fatalf("non-voter status = %+v", st)
	}
	if err := nodes[0].TransferLeadership("replica"); err == nil {
		t.Fatal("leadership transferred to a non-voter")
	}
}

func TestRestoreThroughAFollowerReplacesTheStateOnEveryNode(t *testing.T) {
	old := startCluster(t, 1)
	for i := range 20 {
		if _, err := old[0].Propose(context.Background(), account(fmt.Sprint("old-", i))); err != nil {
			t.Fatal(err)
		}
	}
	var snap bytes.Buffer
	if err := old[0].fsm.WriteSnapshot(&snap); err != nil {
		t.Fatal(err)
	}
	fresh := startCluster(t, 3)
	if _, err := fresh[0].Propose(context.Background(), account("doomed")); err != nil {
		t.Fatal(err)
	}
	var follower *testNode
	for _, n := range fresh {
		if n.Role() != "leader" {
			follower = n
		}
	}
	if err := follower.Restore(context.Background(), &snap); err != nil {
		t.Fatal(err)
	}
	for _, n := range fresh {
		if !n.Ready() {
			continue
		}
		st := n.fsm.State()
		if _, ok := st.Account("old-19"); !ok {
			t.Fatalf("%s serves without the restored state", n.ID())
		}
		if _, ok := st.Account("doomed"); ok {
			t.Fatalf("%s still has state the restore replaced", n.ID())
		}
	}
}

// TestFarBehindFollowerCatchesUpFromASnapshot: the leader truncated the log
// past what a stopped follower has, so the follower needs the snapshot.
func TestFarBehindFollowerCatchesUpFromASnapshot(t *testing.T) {
	for _, store := range []string{LogStoreBoltDB, LogStoreWAL} {
		t.Run(store, func(t *testing.T) { farBehindFollowerCatchesUp(t, store) })
	}
}

func farBehindFollowerCatchesUp(t *testing.T, logStore string) {
	small := func(c *Config) { c.SnapshotThreshold, c.TrailingLogs, c.LogStore = 16, 4, logStore }
	leader := newTestNodeIn(t, "n1", t.TempDir(), "127.0.0.1:0", true, testAuthKey, small)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := leader.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	addr := freeTCPAddr(t)
	follower := newTestNodeIn(t, "n2", dir, addr, false, testAuthKey, small)
	if err := follower.Join(ctx, leader.Addr(), true); err != nil {
		t.Fatal(err)
	}
	if err := follower.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	follower.Close()
	// With one of two voters down there is no quorum: add a third first.
	third := newTestNodeIn(t, "n3", t.TempDir(), "127.0.0.1:0", false, testAuthKey, small)
	if err := third.Join(ctx, leader.Addr(), true); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := leader.Propose(ctx, account(fmt.Sprint("far-", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := leader.Snapshot(); err != nil {
		t.Fatal(err)
	}
	raftLog := &lockedBuffer{}
	back := newTestNodeIn(t, "n2", dir, addr, false, testAuthKey, func(c *Config) { small(c); c.LogOutput = raftLog })
	if err := back.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := back.fsm.State().Account("far-99"); !ok {
		t.Fatal("the restarted follower did not catch up")
	}
	// Raft logs the install just after the state machine has the snapshot.
	within(t, 5*time.Second, "the follower installs the snapshot (not entries the leader compacted away)", func() bool {
		return strings.Contains(raftLog.String(), "Installed remote snapshot")
	})
	if first := leader.Status().FirstIndex; first <= 2 {
		t.Fatalf("the leader's log starts at %d: it was not truncated, so the test proved nothing", first)
	}
}

// lockedBuffer collects a node's Raft log while Raft goes on writing it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeTCPAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
