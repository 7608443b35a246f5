package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/raftkms/raftkms/api/replay"
	"github.com/raftkms/raftkms/cluster"
	"github.com/raftkms/raftkms/crypto"
	"github.com/raftkms/raftkms/fsm"
	"github.com/raftkms/raftkms/policy"
	"github.com/raftkms/raftkms/trail"
)

// Proposer commits a state change (an fsm.Encode'd command) and returns
// its result. cluster.Node implements it.
type Proposer interface {
	// Propose commits a state change (fenced: once it returns, no node
	// serves the state before it).
	Propose(ctx context.Context, cmd []byte) (fsm.Result, error)
	// Commit commits trail records, without fencing.
	Commit(ctx context.Context, cmd []byte) (fsm.Result, error)
}

// StateReader gives the node's current replicated state. fsm.FSM
// implements it.
type StateReader interface {
	State() *fsm.State
	// WaitIndex waits until the state has applied Raft index i.
	WaitIndex(ctx context.Context, i uint64) error
}

// Authorizer decides a request, building the full policy input only when
// it must evaluate, under a version of the policies it is kept up to date
// with. policy.Engine implements it.
type Authorizer interface {
	Decide(ctx context.Context, r policy.Request, b policy.InputBuilder) (policy.Decision, error)
	Evaluate(ctx context.Context, in *policy.Input) (policy.Decision, error)
	Version() uint64
	Update(ctx context.Context, version uint64, modules []policy.Module, users []policy.UserPolicy) error
}

// Node is this node's place in the cluster: whether it may serve, its
// status, and the membership and recovery operations the cluster actions
// use. cluster.Node implements it.
type Node interface {
	Ready() bool
	WaitReady(ctx context.Context) error
	// Solo reports whether this node is the only voter of its cluster.
	Solo() bool
	Status() cluster.Status
	Members() ([]cluster.Member, error)
	RemoveNode(id string) error
	TransferLeadership(id string) error
	Restore(ctx context.Context, snapshot io.Reader) error
}

// Snapshotter writes a snapshot of the state. fsm.FSM implements it.
type Snapshotter interface {
	WriteSnapshot(w io.Writer) error
}

var (
	_ Proposer    = (*cluster.Node)(nil)
	_ Node        = (*cluster.Node)(nil)
	_ StateReader = (*fsm.FSM)(nil)
	_ Snapshotter = (*fsm.FSM)(nil)
	_ Authorizer  = (*policy.Engine)(nil)
)

// Config configures a Server.
type Config struct {
	// Region is the region id in ARNs and DescribeRegions; default cn-hangzhou.
	Region string
	// TimestampWindow bounds |request timestamp - now|; default 15 minutes.
	TimestampWindow time.Duration
	// NonceMemory caps the replay filter's memory in bytes; default 1 GiB.
	NonceMemory int64
	// WriteTimeout bounds how long a write waits to commit; default 10s.
	WriteTimeout time.Duration
	// MaxRequestBytes bounds a request (query string and body); default 64 KiB.
	MaxRequestBytes int
	// IdleTimeout closes idle keep-alive connections; default 2 minutes.
	IdleTimeout time.Duration
	Logger      *slog.Logger
	// Clock is the node's clock for scheduled changes; default time.Now.
	Clock func() time.Time
	// SpoolDir holds uploads (snapshot restores) while they are checked;
	// default the system temporary directory.
	SpoolDir string
	// ReadyWait is how long a request waits for a node that cannot serve
	// right now (during an election, or while its lease is renewed) before
	// it is answered 503; default 1s.
	ReadyWait time.Duration
	// NodeID names this node in trail records.
	NodeID string
	// Trail configures the audit trail.
	Trail TrailConfig
}

func (c *Config) setDefaults() {
	if c.Region == "" {
		c.Region = "cn-hangzhou"
	}
	if c.TimestampWindow == 0 {
		c.TimestampWindow = 15 * time.Minute
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = 64 << 10
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 2 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.ReadyWait == 0 {
		c.ReadyWait = time.Second
	}
	if c.SpoolDir == "" {
		c.SpoolDir = os.TempDir()
	}
	c.Trail.setDefaults()
}

// Deps are the parts of the node a Server uses.
type Deps struct {
	State      StateReader
	Snapshots  Snapshotter
	Proposer   Proposer
	Node       Node
	Authorizer Authorizer
	Wrapper    crypto.Wrapper // root key: wraps new key material, unwraps AccessKey secrets
	Keyring    *crypto.Keyring
	Trail      TrailReader // this node's archived trail
	// Journal, if set, is where requests' records wait to be shipped into
	// the replicated trail (TrailConfig.Commit); nil: they are committed
	// through Raft before their requests are answered.
	Journal *trail.Journal
}

// Server serves the KMS API.
type Server struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	replay   *replay.Filter
	secrets  *secretCache
	nonceKey []byte // keys the replicated nonce fingerprints
	metrics  *metrics
	http     *fasthttp.Server
	recorder *recorder
	reserver *sealReserver
	opened   atomic.Bool // see Open
	shutdown atomic.Bool
}

// New returns a Server. Call Serve to start it.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg.setDefaults()
	if deps.State == nil || deps.Snapshots == nil || deps.Proposer == nil || deps.Node == nil || deps.Authorizer == nil || deps.Wrapper == nil || deps.Keyring == nil || deps.Trail == nil {
		return nil, errors.New("api: every dependency is required")
	}
	rf, err := replay.New(replay.Config{Window: cfg.TimestampWindow, MaxBytes: cfg.NonceMemory})
	if err != nil {
		return nil, err
	}
	nk, err := deps.Wrapper.Derive("nonce-fingerprint")
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, deps: deps, log: cfg.Logger, replay: rf, nonceKey: nk,
		secrets: newSecretCache(deps.Wrapper, deps.State), metrics: newMetrics(deps.Node)}
	s.recorder = newRecorder(s, cfg.Trail)
	if deps.Journal != nil {
		s.metrics.watchJournal(s.recorder.backlog)
	}
	s.reserver = newSealReserver(s)
	s.http = &fasthttp.Server{
		Handler:                       s.Handle,
		Name:                          "raftkms",
		ReadBufferSize:                cfg.MaxRequestBytes,
		MaxRequestBodySize:            cfg.MaxRequestBytes,
		ReadTimeout:                   30 * time.Second,
		WriteTimeout:                  30 * time.Second,
		IdleTimeout:                   cfg.IdleTimeout,
		DisableHeaderNamesNormalizing: false,
		NoDefaultServerHeader:         true,
		NoDefaultDate:                 true,
		NoDefaultContentType:          true,
		ReduceMemoryUsage:             false,
		CloseOnShutdown:               true,
		// Bodies above MaxRequestBodySize reach the handler as a stream;
		// only streaming routes accept them (serve refuses the rest).
		StreamRequestBody: true,
	}
	return s, nil
}

// Open lets the server answer API requests. Until then (while the node
// starts: waits for a quorum, catches up, creates the root account) every
// request is answered 503 and /readyz says not ready, so a 200 from /readyz
// means the node serves.
func (s *Server) Open() { s.opened.Store(true) }

// ready is /readyz: open and able to serve.
func (s *Server) ready() bool { return s.opened.Load() && s.deps.Node.Ready() }

// Serve serves the API on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.http.Serve(ln) }

// Shutdown stops accepting connections and waits for open requests. Calls
// after the first return at once.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.shutdown.CompareAndSwap(false, true) {
		return nil
	}
	err := s.http.ShutdownWithContext(ctx)
	s.recorder.close() // after the requests in flight have their records
	s.reserver.close()
	return err
}

// Handle is the fasthttp handler: the RPC endpoint at / and the
// operational endpoints, which need no signature.
func (s *Server) Handle(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Path()) {
	case "/":
		s.rpc(ctx)
	case "/healthz":
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.WriteString("ok\n")
	case "/readyz":
		ctx.SetContentType("text/plain; charset=utf-8")
		if s.ready() {
			ctx.WriteString("ready\n")
		} else {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			ctx.WriteString("not ready\n")
		}
	case "/metrics":
		s.metrics.handler(ctx)
	case "/status":
		b, _ := json.Marshal(s.deps.Node.Status())
		ctx.SetContentType("application/json")
		ctx.Write(b)
		ctx.WriteString("\n")
	default:
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		ctx.SetContentType("text/plain; charset=utf-8")
		fmt.Fprintf(ctx, "not found: the KMS API is served at /\n")
	}
}
