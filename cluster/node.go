package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
	bbolterrors "go.etcd.io/bbolt/errors"

	"github.com/raftkms/raftkms/fsm"
)

// Errors of Propose and of waiting for the node. They are all transient: a
// client may retry the request.
var (
	// ErrNotLeader is returned when this node cannot commit writes because
	// it is not the leader (or there is none right now).
	ErrNotLeader = errors.New("cluster: this node is not the leader")
	// ErrTimeout is returned when a write did not commit in time. Whether it
	// will still commit is unknown.
	ErrTimeout = errors.New("cluster: timed out waiting for the write to commit")
	// ErrUncertain is returned when leadership was lost while a write was in
	// flight: it may or may not have committed.
	ErrUncertain = errors.New("cluster: leadership lost while committing; the write may or may not have applied")
	// ErrShutdown is returned once the node is shutting down.
	ErrShutdown = errors.New("cluster: node is shutting down")
)

// Config configures a Node.
type Config struct {
	NodeID   string // unique, stable node id
	DataDir  string // Raft data lives in DataDir/raft
	RaftAddr string // host:port to listen on and advertise for Raft traffic
	// Bootstrap makes a node with no Raft state start a new one-node
	// cluster. A node with state ignores it.
	Bootstrap bool

	HeartbeatTimeout  time.Duration // default 500ms
	ElectionTimeout   time.Duration // default 500ms
	SnapshotInterval  time.Duration // how often to check for a snapshot; default 30s
	SnapshotThreshold uint64        // entries since the last snapshot that trigger one; default 8192
	TrailingLogs      uint64        // entries kept after a snapshot; default 10240
	ApplyTimeout      time.Duration // default 10s

	// Clock stamps commands; default time.Now. Tests move it forward.
	Clock func() time.Time

	Logger *slog.Logger
	// LogOutput receives Raft's own log lines; nil discards them.
	LogOutput io.Writer
}

func (c *Config) setDefaults() error {
	if c.NodeID == "" || c.DataDir == "" || c.RaftAddr == "" {
		return errors.New("cluster: NodeID, DataDir and RaftAddr are required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.HeartbeatTimeout, 500*time.Millisecond)
	def(&c.ElectionTimeout, 500*time.Millisecond)
	def(&c.SnapshotInterval, 30*time.Second)
	def(&c.ApplyTimeout, 10*time.Second)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.LogOutput == nil {
		c.LogOutput = io.Discard
	}
	return nil
}

// Node is one Raft member.
type Node struct {
	cfg       Config
	fsm       *fsm.FSM
	raft      *raft.Raft
	store     *raftboltdb.BoltStore
	transport *raft.NetworkTransport
	leaderCh  chan bool // raft's NotifyCh
	ready     atomic.Bool
	closing   atomic.Bool
	stop      chan struct{}
	done      chan struct{}
}

// New opens (or creates) the node's Raft state in cfg.DataDir and starts
// Raft. With cfg.Bootstrap and no existing state it bootstraps a one-node
// cluster.
func New(cfg Config, f *fsm.FSM) (*Node, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: time.Second}})
	if err != nil {
		if errors.Is(err, bbolterrors.ErrTimeout) {
			return nil, fmt.Errorf("cluster: %s is in use by another process (is another kmsd running on this data directory?)", dir)
		}
		return nil, fmt.Errorf("cluster: open raft log: %w", err)
	}
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Info, Output: cfg.LogOutput})
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hlog)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("cluster: open snapshot store: %w", err)
	}
	addr, err := net.ResolveTCPAddr("tcp", cfg.RaftAddr)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("cluster: raft address: %w", err)
	}
	var advertise net.Addr = addr
	if addr.Port == 0 {
		advertise = nil // tests bind port 0: advertise what the listener got
	}
	transport, err := raft.NewTCPTransportWithLogger(cfg.RaftAddr, advertise, 3, 10*time.Second, hlog)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("cluster: listen for raft on %s: %w", cfg.RaftAddr, err)
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hlog
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.HeartbeatTimeout / 2
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	rc.MaxAppendEntries = 512
	rc.BatchApplyCh = true // group commit: many concurrent writes share one fsync
	leaderCh := make(chan bool, 16)
	rc.NotifyCh = leaderCh

	has, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		transport.Close()
		store.Close()
		return nil, err
	}
	r, err := raft.NewRaft(rc, f, store, store, snaps, transport)
	if err != nil {
		transport.Close()
		store.Close()
		return nil, fmt.Errorf("cluster: start raft: %w", err)
	}
	n := &Node{cfg: cfg, fsm: f, raft: r, store: store, transport: transport, leaderCh: leaderCh,
		stop: make(chan struct{}), done: make(chan struct{})}
	if !has && cfg.Bootstrap {
		boot := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: transport.LocalAddr()}}}
		if err := r.BootstrapCluster(boot).Error(); err != nil {
			n.Close()
			return nil, fmt.Errorf("cluster: bootstrap: %w", err)
		}
		cfg.Logger.Info("bootstrapped a new one-node cluster", "raft_addr", cfg.RaftAddr)
	}
	go n.watchLeadership()
	return n, nil
}

// watchLeadership keeps Ready true exactly while this node leads and has
// applied every entry committed before it took over (a barrier).
func (n *Node) watchLeadership() {
	defer close(n.done)
	for {
		if n.raft.State() == raft.Leader && !n.ready.Load() {
			if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err == nil && n.raft.State() == raft.Leader {
				n.ready.Store(true)
				n.cfg.Logger.Info("leading and caught up", "term", n.raft.CurrentTerm())
			}
		}
		select {
		case leader := <-n.leaderCh:
			if !leader {
				n.ready.Store(false)
			}
		case <-time.After(n.cfg.HeartbeatTimeout):
			// Re-check: a failed barrier is retried, and a missed
			// notification cannot leave the flag wrong for long.
			if n.raft.State() != raft.Leader {
				n.ready.Store(false)
			}
		case <-n.stop:
			n.ready.Store(false)
			return
		}
	}
}

// Ready reports whether the node serves: it leads and has applied all
// earlier entries. (A follower serving under a lease comes with the
// multi-node work.)
func (n *Node) Ready() bool { return n.ready.Load() && !n.closing.Load() }

// WaitReady blocks until Ready or ctx ends.
func (n *Node) WaitReady(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !n.Ready() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Propose commits a command made by fsm.Encode and returns its result. It
// stamps this node's (the leader's) time into the command first.
func (n *Node) Propose(ctx context.Context, cmd []byte) (fsm.Result, error) {
	if n.closing.Load() {
		return fsm.Result{}, ErrShutdown
	}
	if n.raft.State() != raft.Leader {
		return fsm.Result{}, ErrNotLeader
	}
	if err := fsm.StampTime(cmd, n.cfg.Clock().UnixNano()); err != nil {
		return fsm.Result{}, err
	}
	timeout := n.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	fut := n.raft.Apply(cmd, timeout)
	if err := fut.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader):
			return fsm.Result{}, ErrNotLeader
		case errors.Is(err, raft.ErrLeadershipLost):
			return fsm.Result{}, ErrUncertain
		case errors.Is(err, raft.ErrEnqueueTimeout):
			return fsm.Result{}, ErrTimeout
		case errors.Is(err, raft.ErrRaftShutdown):
			return fsm.Result{}, ErrShutdown
		}
		return fsm.Result{}, fmt.Errorf("cluster: apply: %w", err)
	}
	return fut.Response().(fsm.Result), nil
}

// Status is a node's view of the cluster, as /status shows it.
type Status struct {
	NodeID       string `json:"node_id"`
	Role         string `json:"role"` // leader, follower, candidate or shutdown
	Ready        bool   `json:"ready"`
	Leader       string `json:"leader"`
	LeaderAddr   string `json:"leader_addr"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"applied_index"`
	CommitIndex  uint64 `json:"commit_index"`
	LastIndex    uint64 `json:"last_log_index"`
	FSMIndex     uint64 `json:"fsm_index"`
}

// Status returns the node's current status.
func (n *Node) Status() Status {
	addr, id := n.raft.LeaderWithID()
	role := "shutdown"
	switch n.raft.State() {
	case raft.Leader:
		role = "leader"
	case raft.Follower:
		role = "follower"
	case raft.Candidate:
		role = "candidate"
	}
	return Status{
		NodeID: n.cfg.NodeID, Role: role, Ready: n.Ready(),
		Leader: string(id), LeaderAddr: string(addr),
		Term: n.raft.CurrentTerm(), AppliedIndex: n.raft.AppliedIndex(),
		CommitIndex: n.raft.CommitIndex(), LastIndex: n.raft.LastIndex(),
		FSMIndex: n.fsm.State().Index(),
	}
}

// Snapshot takes a Raft snapshot now (and truncates the log behind it).
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }

// Close stops Raft and closes the log store. Acknowledged writes are already
// durable: each was fsynced to the log before it committed.
func (n *Node) Close() error {
	if !n.closing.CompareAndSwap(false, true) {
		return nil
	}
	close(n.stop)
	err := n.raft.Shutdown().Error()
	<-n.done
	if cerr := n.transport.Close(); err == nil {
		err = cerr
	}
	if cerr := n.store.Close(); err == nil {
		err = cerr
	}
	return err
}
