package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/rpc"
	"sync"
	"time"
)

// The cluster RPCs run over net/rpc (gob) on authenticated mux connections.
// Handlers live on Node (node.go, lease.go); this file holds the messages,
// the server registration and the client pool.

// ForwardArgs carries a command from a follower to the leader. An
// unfenced command (trail records) is acknowledged once committed and
// applied on the leader, without waiting for lease holders.
type ForwardArgs struct {
	Cmd      []byte
	Unfenced bool
}

// TrailRangeArgs asks a peer for sealed trail records From..To (inclusive),
// at most about MaxBytes of them.
type TrailRangeArgs struct {
	From, To uint64
	MaxBytes int
}

// TrailRangeReply carries sealed records in seq order, from the first
// asked for; fewer than asked when MaxBytes was reached.
type TrailRangeReply struct {
	Contents [][]byte
	Hashes   [][32]byte
}

// ForwardReply is the leader's answer: where the command landed and what it
// did, so the follower can wait for it locally and rebuild the result.
type ForwardReply struct {
	Index      uint64
	Code       uint16 // fsm.ErrorCode of the command's result
	KeyAccount string
	KeyID      string
	AccountID  string
	Codes      []uint16 // fsm.Result.Codes
	NotLeader  bool
}

// LeaseArgs is a follower's lease request.
type LeaseArgs struct {
	NodeID  string
	Term    uint64
	Applied uint64
}

// LeaseReply is the leader's grant: G = the leader's applied index.
type LeaseReply struct {
	Term    uint64
	Index   uint64
	Granted bool
}

// AppliedArgs is a follower's report of its applied index.
type AppliedArgs struct {
	NodeID  string
	Applied uint64
}

// MemberArgs names a node for Join, Remove and TransferLeadership.
type MemberArgs struct {
	NodeID string
	Addr   string
	Voter  bool
}

// Empty is an empty reply.
type Empty struct{}

// rpcService is the receiver net/rpc serves as "Cluster".
type rpcService struct{ n *Node }

func (s *rpcService) Forward(a ForwardArgs, r *ForwardReply) error { return s.n.handleForward(a, r) }
func (s *rpcService) Lease(a LeaseArgs, r *LeaseReply) error       { return s.n.handleLease(a, r) }
func (s *rpcService) Applied(a AppliedArgs, _ *Empty) error        { s.n.handleApplied(a); return nil }
func (s *rpcService) Join(a MemberArgs, _ *Empty) error            { return s.n.handleJoin(a) }
func (s *rpcService) Remove(a MemberArgs, _ *Empty) error          { return s.n.handleRemove(a) }
func (s *rpcService) Transfer(a MemberArgs, _ *Empty) error        { return s.n.handleTransfer(a) }
func (s *rpcService) TrailRange(a TrailRangeArgs, r *TrailRangeReply) error {
	return s.n.handleTrailRange(a, r)
}
func (s *rpcService) RestoreChunk(a RestoreChunkArgs, _ *Empty) error {
	return s.n.handleRestoreChunk(a)
}

func (n *Node) serveRPC() {
	srv := rpc.NewServer()
	if err := srv.RegisterName("Cluster", &rpcService{n}); err != nil {
		panic(err) // a programming error: the method set is fixed
	}
	for {
		select {
		case c := <-n.mux.rpcConns:
			go srv.ServeConn(c)
		case <-n.mux.closed:
			return
		}
	}
}

// errRemote wraps an error a peer returned over RPC (net/rpc carries text).
var errRemote = errors.New("cluster: peer")

// peers keeps one RPC client per peer address; net/rpc multiplexes
// concurrent calls on it.
type peers struct {
	m       *mux
	mu      sync.Mutex
	clients map[string]*rpc.Client
}

func (p *peers) client(addr string) (*rpc.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[addr]; ok {
		return c, nil
	}
	conn, err := p.m.dial(addr, connRPC, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := rpc.NewClient(conn)
	p.clients[addr] = c
	return c, nil
}

// drop closes and forgets a client whose connection failed or hung, so
// the next call dials again (and a hung peer's pending calls fail).
func (p *peers) drop(addr string, c *rpc.Client) {
	p.mu.Lock()
	if p.clients[addr] == c {
		delete(p.clients, addr)
	}
	p.mu.Unlock()
	c.Close()
}

// call runs method on addr, bounded by ctx.
func (p *peers) call(ctx context.Context, addr, method string, args, reply any) error {
	c, err := p.client(addr)
	if err != nil {
		return err
	}
	done := c.Go("Cluster."+method, args, reply, make(chan *rpc.Call, 1)).Done
	select {
	case call := <-done:
		if call.Error == nil {
			return nil
		}
		var se rpc.ServerError
		if errors.As(call.Error, &se) {
			return fmt.Errorf("%w %s: %s", errRemote, addr, string(se))
		}
		p.drop(addr, c)
		return call.Error
	case <-ctx.Done():
		p.drop(addr, c)
		return ctx.Err()
	}
}

func (p *peers) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, c := range p.clients {
		c.Close()
		delete(p.clients, addr)
	}
}
