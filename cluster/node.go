package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/rpc"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/segment"
	"go.etcd.io/bbolt"
	bbolterrors "go.etcd.io/bbolt/errors"

	"github.com/raftkms/raftkms/fsm"
	"github.com/raftkms/raftkms/trail"
)

// Errors of Propose and of waiting for the node. They are all transient: a
// client may retry the request.
var (
	// ErrNotLeader is returned when no leader could be reached in time to
	// commit a write (an election is going on, or this node is cut off).
	ErrNotLeader = errors.New("cluster: no leader reachable")
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
	RaftAddr string // host:port to listen on and advertise for all traffic between nodes
	// Bootstrap makes a node with no Raft state start a new one-node
	// cluster. A node with state ignores it; a node that will join another
	// cluster leaves it false.
	Bootstrap bool
	// AuthKey, derived from the root key, authenticates every connection
	// between nodes: a node without the cluster's root key cannot connect.
	AuthKey []byte
	// TLSServer and TLSClient secure connections between nodes (mutual TLS).
	// Both nil: plaintext (still authenticated with AuthKey).
	TLSServer, TLSClient *tls.Config

	// Lease is how long a follower may serve reads after asking the leader
	// (D in docs/CLUSTER.md); default 2s. ClockDrift bounds the relative
	// clock-rate error between nodes; default 0.01.
	Lease      time.Duration
	ClockDrift float64

	HeartbeatTimeout  time.Duration // default 500ms
	ElectionTimeout   time.Duration // default 500ms
	SnapshotInterval  time.Duration // how often to check for a snapshot; default 30s
	SnapshotThreshold uint64        // entries since the last snapshot that trigger one, at least; default 8192 (see paceSnapshots)
	TrailingLogs      uint64        // entries kept after a snapshot; default 10240
	ApplyTimeout      time.Duration // default 10s
	// LogStore is where the Raft log is kept: LogStoreWAL or
	// LogStoreBoltDB. Empty (the default) means the store the data
	// directory already holds, and LogStoreWAL for a new one. A directory
	// keeps the store it was made with: naming the other is refused.
	LogStore string

	// TrailSource, if set, answers peers that ask this node for trail
	// records (FetchTrail): sealed records from..to, in seq order, at most
	// about maxBytes of them.
	TrailSource func(from, to uint64, maxBytes int) ([]trail.Sealed, error)

	// Clock stamps commands; default time.Now. Tests move it forward. (Leases
	// use the monotonic clock, never this one.)
	Clock func() time.Time

	Logger *slog.Logger
	// LogOutput receives Raft's own log lines; nil discards them.
	LogOutput io.Writer
}

func (c *Config) setDefaults() error {
	if c.NodeID == "" || c.DataDir == "" || c.RaftAddr == "" {
		return errors.New("cluster: NodeID, DataDir and RaftAddr are required")
	}
	if len(c.AuthKey) < 16 {
		return errors.New("cluster: AuthKey (derived from the root key) is required")
	}
	if (c.TLSServer == nil) != (c.TLSClient == nil) {
		return errors.New("cluster: TLSServer and TLSClient go together")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Lease, 2*time.Second)
	def(&c.HeartbeatTimeout, 500*time.Millisecond)
	def(&c.ElectionTimeout, 500*time.Millisecond)
	def(&c.SnapshotInterval, 30*time.Second)
	def(&c.ApplyTimeout, 10*time.Second)
	if c.ClockDrift == 0 {
		c.ClockDrift = 0.01
	}
	if c.ClockDrift < 0 || c.ClockDrift >= 0.5 {
		return errors.New("cluster: ClockDrift must be in [0, 0.5)")
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	switch c.LogStore {
	case "", LogStoreBoltDB, LogStoreWAL:
	default:
		return fmt.Errorf("cluster: log store %q is not %s or %s", c.LogStore, LogStoreBoltDB, LogStoreWAL)
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.LogOutput == nil {
		c.LogOutput = io.Discard
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return nil
}

// The Raft log stores (Config.LogStore).
const (
	// LogStoreWAL keeps the log in segment files under wal/
	// (hashicorp/raft-wal): appends with one fsync each, truncation by
	// deleting files. raft.db still holds the term and vote. The default
	// for a new data directory, as in Consul since 1.20.
	LogStoreWAL = "wal"
	// LogStoreBoltDB keeps the log in raft.db (hashicorp/raft-boltdb/v2): a
	// copy-on-write B-tree, two fsyncs per commit.
	LogStoreBoltDB = "boltdb"
)

// Node is one Raft member.
type Node struct {
	cfg       Config
	log       *slog.Logger
	fsm       *fsm.FSM
	raft      *raft.Raft
	store     *raftboltdb.BoltStore // the stable store, and the log with LogStoreBoltDB
	logs      raft.LogStore         // the log: store, or a *wal.WAL
	snaps     raft.SnapshotStore
	transport *raft.NetworkTransport
	mux       *mux
	peers     *peers
	leases    leases
	uploads   uploads
	leaderCh  chan bool // raft's NotifyCh

	forwarded atomic.Uint64 // writes sent to the leader
	closing   atomic.Bool
	stop      chan struct{}
	wg        sync.WaitGroup
}

// New opens (or creates) the node's Raft state in cfg.DataDir and starts
// Raft and the cluster channel. With cfg.Bootstrap and no existing state
// it bootstraps a one-node cluster.
func New(cfg Config, f *fsm.FSM) (*Node, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// The freelist is rebuilt at open rather than written at every commit:
	// a commit writes fewer pages, and the log is written at every request
	// (the trail).
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}})
	if err != nil {
		if errors.Is(err, bbolterrors.ErrTimeout) {
			return nil, fmt.Errorf("cluster: %s is in use by another process (is another kmsd running on this data directory?)", dir)
		}
		return nil, fmt.Errorf("cluster: open raft log: %w", err)
	}
	logs, kind, err := openLogStore(cfg.LogStore, dir, store, cfg.Logger)
	if err != nil {
		store.Close()
		return nil, err
	}
	cfg.LogStore = kind
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Info, Output: cfg.LogOutput})
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hlog)
	if err != nil {
		closeStores(logs, store)
		return nil, fmt.Errorf("cluster: open snapshot store: %w", err)
	}
	addr, err := net.ResolveTCPAddr("tcp", cfg.RaftAddr)
	if err != nil {
		closeStores(logs, store)
		return nil, fmt.Errorf("cluster: raft address: %w", err)
	}
	var advertise net.Addr = addr
	if addr.Port == 0 {
		advertise = nil // tests bind port 0: advertise what the listener got
	}
	m, err := newMux(cfg.RaftAddr, advertise, cfg.AuthKey, cfg.TLSServer, cfg.TLSClient, cfg.Logger)
	if err != nil {
		closeStores(logs, store)
		return nil, fmt.Errorf("cluster: listen on %s: %w", cfg.RaftAddr, err)
	}
	transport := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: raftLayer{m}, MaxPool: 3, Timeout: 10 * time.Second, Logger: hlog})

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
	// Followers learn that an entry committed from the next AppendEntries;
	// fenced writes wait for followers to apply, so send it promptly.
	rc.CommitTimeout = 5 * time.Millisecond
	rc.BatchApplyCh = true // group commit: many concurrent writes share one fsync
	leaderCh := make(chan bool, 16)
	rc.NotifyCh = leaderCh

	has, err := raft.HasExistingState(logs, store, snaps)
	if err != nil {
		transport.Close()
		closeStores(logs, store)
		return nil, err
	}
	// The leader reads each entry back once per follower to send it; the
	// newest entries come from memory instead of a read(2) each.
	cached, err := raft.NewLogCache(logCacheEntries, logs)
	if err != nil {
		transport.Close()
		closeStores(logs, store)
		return nil, err
	}
	r, err := raft.NewRaft(rc, f, cached, store, snaps, transport)
	if err != nil {
		transport.Close()
		closeStores(logs, store)
		return nil, fmt.Errorf("cluster: start raft: %w", err)
	}
	n := &Node{cfg: cfg, log: cfg.Logger, fsm: f, raft: r, store: store, logs: logs, snaps: snaps, transport: transport, mux: m,
		peers: &peers{m: m, clients: map[string]*rpc.Client{}}, leaderCh: leaderCh, stop: make(chan struct{})}
	n.leases.init(cfg)
	n.uploads.files = map[string]*os.File{}
	if old, _ := filepath.Glob(filepath.Join(cfg.DataDir, "restore-*.tmp")); len(old) > 0 {
		for _, f := range old {
			os.Remove(f) // uploads a crash interrupted
		}
	}
	if !has && cfg.Bootstrap {
		boot := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: transport.LocalAddr()}}}
		if err := r.BootstrapCluster(boot).Error(); err != nil {
			n.Close()
			return nil, fmt.Errorf("cluster: bootstrap: %w", err)
		}
		cfg.Logger.Info("bootstrapped a new one-node cluster", "raft_addr", transport.LocalAddr())
	}
	n.spawn(n.serveRPC)
	n.spawn(n.watchLeadership)
	n.spawn(n.renewLeases)
	n.spawn(n.reportApplied)
	n.spawn(n.paceSnapshots)
	return n, nil
}

func (n *Node) spawn(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// Addr returns the address other nodes reach this one at.
func (n *Node) Addr() string { return string(n.transport.LocalAddr()) }

// ID returns the node's id.
func (n *Node) ID() string { return n.cfg.NodeID }

// isLeader reports whether this node is the Raft leader right now.
func (n *Node) isLeader() bool { return n.raft.State() == raft.Leader }

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

// Propose commits a command made by fsm.Encode and returns its result. On
// the leader it stamps the leader's time into the command, applies it and
// waits until every node holding a lease has applied it too; elsewhere it
// forwards the command to the leader (retrying, with the same request id,
// through elections until ctx ends) and waits until this node has applied
// it, so the caller reads its own write.
func (n *Node) Propose(ctx context.Context, cmd []byte) (fsm.Result, error) {
	return n.propose(ctx, cmd, true)
}

// Commit commits cmd without fencing: it returns once the command is
// committed and applied on the leader, and does not wait for lease holders
// (or this node) to apply it. For trail records, which change nothing a
// read depends on.
func (n *Node) Commit(ctx context.Context, cmd []byte) (fsm.Result, error) {
	return n.propose(ctx, cmd, false)
}

func (n *Node) propose(ctx context.Context, cmd []byte, fenced bool) (fsm.Result, error) {
	if n.closing.Load() {
		return fsm.Result{}, ErrShutdown
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.ApplyTimeout)
		defer cancel()
	}
	for {
		var (
			r   fsm.Result
			err error
		)
		if n.isLeader() {
			var index uint64
			r, index, err = n.proposeLocal(ctx, cmd, fenced)
			if err == nil {
				r.Index = index
				return r, nil
			}
		} else {
			var reply ForwardReply
			reply, err = n.forward(ctx, cmd, fenced)
			if err == nil {
				if !fenced {
					return fsm.Result{Err: fsm.CodeError(reply.Code), Index: reply.Index}, nil
				}
				if err := n.fsm.WaitIndex(ctx, reply.Index); err != nil {
					return fsm.Result{}, ErrTimeout
				}
				return n.result(reply), nil
			}
		}
		if !errors.Is(err, ErrNotLeader) {
			return fsm.Result{}, err
		}
		// No leader, or it changed: wait for one (bounded by ctx) and retry.
		if err := n.waitLeader(ctx); err != nil {
			return fsm.Result{}, ErrNotLeader
		}
	}
}

// proposeLocal applies cmd on this node, the leader; a fenced command is
// acknowledged only once no lease holder can serve the state before it.
func (n *Node) proposeLocal(ctx context.Context, cmd []byte, fenced bool) (fsm.Result, uint64, error) {
	if err := fsm.StampTime(cmd, n.cfg.Clock().UnixNano()); err != nil {
		return fsm.Result{}, 0, err
	}
	timeout := n.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	fut := n.raft.Apply(cmd, timeout)
	if err := fut.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader):
			return fsm.Result{}, 0, ErrNotLeader
		case errors.Is(err, raft.ErrLeadershipLost):
			return fsm.Result{}, 0, ErrUncertain
		case errors.Is(err, raft.ErrEnqueueTimeout):
			return fsm.Result{}, 0, ErrTimeout
		case errors.Is(err, raft.ErrRaftShutdown):
			return fsm.Result{}, 0, ErrShutdown
		}
		return fsm.Result{}, 0, fmt.Errorf("cluster: apply: %w", err)
	}
	r, ok := fut.Response().(fsm.Result)
	if !ok {
		return fsm.Result{}, 0, fmt.Errorf("cluster: apply returned %T", fut.Response())
	}
	// Fencing: acknowledge only once no lease holder can serve the old state.
	if fenced {
		if err := n.leases.fence(ctx, fut.Index()); err != nil {
			return fsm.Result{}, 0, ErrTimeout
		}
	}
	return r, fut.Index(), nil
}

// forward sends cmd to the leader.
func (n *Node) forward(ctx context.Context, cmd []byte, fenced bool) (ForwardReply, error) {
	addr, _ := n.raft.LeaderWithID()
	if addr == "" {
		return ForwardReply{}, ErrNotLeader
	}
	var reply ForwardReply
	n.forwarded.Add(1)
	if err := n.peers.call(ctx, string(addr), "Forward", ForwardArgs{Cmd: cmd, Unfenced: !fenced}, &reply); err != nil {
		if errors.Is(err, errRemote) {
			return ForwardReply{}, err
		}
		n.log.Debug("forward failed; will retry", "leader", addr, "err", err)
		return ForwardReply{}, ErrNotLeader // connection trouble: find the leader again, retry
	}
	if reply.NotLeader {
		return ForwardReply{}, ErrNotLeader
	}
	return reply, nil
}

func (n *Node) handleForward(a ForwardArgs, reply *ForwardReply) error {
	if !n.isLeader() {
		reply.NotLeader = true
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout)
	defer cancel()
	r, index, err := n.proposeLocal(ctx, a.Cmd, !a.Unfenced)
	if errors.Is(err, ErrNotLeader) {
		reply.NotLeader = true
		return nil
	}
	if err != nil {
		return err
	}
	reply.Index = index
	reply.Code, reply.Codes = fsm.ErrorCode(r.Err), r.Codes
	if r.Key != nil {
		reply.KeyAccount, reply.KeyID = r.Key.Account, r.Key.ID
	}
	if r.Account != nil {
		reply.AccountID = r.Account.ID
	}
	return nil
}

// result rebuilds a forwarded command's result from this node's state,
// which has applied it.
func (n *Node) result(reply ForwardReply) fsm.Result {
	r := fsm.Result{Err: fsm.CodeError(reply.Code), Codes: reply.Codes, Index: reply.Index}
	st := n.fsm.State()
	if reply.KeyID != "" {
		r.Key, _ = st.Key(reply.KeyAccount, reply.KeyID)
	}
	if reply.AccountID != "" {
		r.Account, _ = st.Account(reply.AccountID)
	}
	return r
}

// waitLeader waits until some node is known to lead.
func (n *Node) waitLeader(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if addr, _ := n.raft.LeaderWithID(); addr != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.stop:
			return ErrShutdown
		case <-t.C:
		}
	}
}

// Snapshot takes a Raft snapshot now (and truncates the log behind it).
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }

// Close stops Raft and the cluster channel and closes the log store.
// Acknowledged writes are already durable: each was fsynced to the log
// before it committed.
func (n *Node) Close() error {
	if !n.closing.CompareAndSwap(false, true) {
		return nil
	}
	close(n.stop)
	err := n.raft.Shutdown().Error()
	n.peers.closeAll()
	if cerr := n.transport.Close(); err == nil {
		err = cerr
	}
	n.wg.Wait()
	if cerr := closeStores(n.logs, n.store); err == nil {
		err = cerr
	}
	return err
}

// closeStores closes the log (when it is not the BoltDB store itself) and
// the BoltDB store.
func closeStores(logs raft.LogStore, store *raftboltdb.BoltStore) error {
	var err error
	if w, ok := logs.(compactedWAL); ok {
		err = w.Close()
	}
	if cerr := store.Close(); err == nil {
		err = cerr
	}
	return err
}

// logCacheEntries is how many of the newest Raft entries the log cache
// keeps: a few pipelines' worth of MaxAppendEntries.
const logCacheEntries = 2048

// openLogStore returns the Raft log kind names in dir: the BoltDB store
// itself, or a WAL under dir/wal; for kind "", the one dir holds (a WAL
// for a directory with neither). A directory whose log is in the other
// store is refused rather than started with an empty log (which would
// lose every entry since the last snapshot).
func openLogStore(kind, dir string, bolt *raftboltdb.BoltStore, log *slog.Logger) (raft.LogStore, string, error) {
	walDir := filepath.Join(dir, "wal")
	_, err := os.Stat(walDir)
	hasWAL := err == nil
	boltLast, err := bolt.LastIndex()
	if err != nil {
		return nil, "", fmt.Errorf("cluster: read raft log: %w", err)
	}
	if kind == "" {
		kind = LogStoreWAL
		if !hasWAL && boltLast > 0 {
			kind = LogStoreBoltDB
		}
	}
	switch {
	case kind == LogStoreBoltDB && hasWAL:
		return nil, "", fmt.Errorf("cluster: the Raft log in %s is in segment files (raft.log_store: %s); start with that setting", dir, LogStoreWAL)
	case kind == LogStoreWAL && !hasWAL && boltLast > 0:
		return nil, "", fmt.Errorf("cluster: the Raft log in %s is in raft.db (raft.log_store: %s); start with that setting", dir, LogStoreBoltDB)
	case kind == LogStoreBoltDB:
		return bolt, kind, nil
	}
	if err := os.MkdirAll(walDir, 0o700); err != nil {
		return nil, "", err
	}
	fs, err := newSegmentFS(walDir, log)
	if err != nil {
		return nil, "", fmt.Errorf("cluster: open raft log: %w", err)
	}
	w, err := wal.Open(walDir, wal.WithSegmentFiler(segment.NewFiler(walDir, fs)))
	if err != nil {
		fs.close()
		return nil, "", fmt.Errorf("cluster: open raft log: %w", err)
	}
	if err := privateFiles(walDir); err != nil { // wal-meta.db, and segments of older versions
		w.Close()
		fs.close()
		return nil, "", fmt.Errorf("cluster: open raft log: %w", err)
	}
	return compactedWAL{w, fs}, kind, nil
}

// compactedWAL is raft-wal without the entries it still keeps after they
// were compacted away: it truncates the head of a segment only logically
// and would go on serving them. Reads below FirstIndex fail as they do with
// BoltDB, so a node that fell behind the compaction point catches up from a
// snapshot with either store, and first_log_index means what it says.
type compactedWAL struct {
	*wal.WAL
	fs *segmentFS
}

// Close closes the log, then stops preparing its next segment.
func (w compactedWAL) Close() error {
	err := w.WAL.Close()
	w.fs.close()
	return err
}

func (w compactedWAL) GetLog(index uint64, log *raft.Log) error {
	if first, err := w.FirstIndex(); err == nil && index < first {
		return raft.ErrLogNotFound
	}
	return w.WAL.GetLog(index, log)
}

// privateFiles makes the files in dir 0600.
func privateFiles(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			if err := os.Chmod(filepath.Join(dir, e.Name()), 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}
