package cluster

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Follower leases make reads served from a node's local replica
// linearizable (docs/CLUSTER.md has the argument):
//
//   - A follower asks the leader every D/4, noting its monotonic time s;
//     a grant {term, G} lets it serve until s+D, once it has applied G.
//   - The leader grants only while it leads and has caught up, records the
//     grant time and the follower's applied index, and answers G = its own
//     applied index.
//   - The leader acknowledges a write at index i only when, for every node
//     whose grant may still be live (granted within D′ = D·(1+ε)/(1−ε)),
//     that node has applied i; and not before D′ has passed since it won
//     its election, so every lease of an older term has run out.
//   - The leader serves under a self-lease: VerifyLeader started at s and
//     confirmed gives s+D.
//
// All times are each node's monotonic clock; ε bounds how much faster one
// node's clock may run than another's.

// lease is a follower's current lease.
type lease struct {
	term    uint64
	index   uint64 // G: serve only once this index is applied
	expires int64  // monotonic nanoseconds
}

// grant is the leader's record of a follower's last lease.
type grant struct {
	granted int64 // monotonic nanoseconds
	applied uint64
}

type leases struct {
	d, dPrime int64 // nanoseconds
	start     time.Time

	mine atomic.Pointer[lease] // as a follower

	// As the leader.
	self        atomic.Int64 // self-lease expiry
	leaderSince atomic.Int64 // when this node won its election; 0 when not leading
	caughtUp    atomic.Bool  // a barrier since the election has completed
	mu          sync.Mutex
	grants      map[string]*grant
	changed     chan struct{} // closed on every grant or applied report
	reports     atomic.Uint64 // applied reports received from followers
}

func (l *leases) init(cfg Config) {
	l.start = time.Now()
	l.d = int64(cfg.Lease)
	l.dPrime = int64(float64(cfg.Lease) * (1 + cfg.ClockDrift) / (1 - cfg.ClockDrift))
	l.grants = map[string]*grant{}
	l.changed = make(chan struct{})
}

// now is monotonic nanoseconds since the node started.
func (l *leases) now() int64 { return int64(time.Since(l.start)) }

func (l *leases) broadcastLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// leading resets the leader side on an election won (since != 0) or lost.
func (l *leases) leading(since int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leaderSince.Store(since)
	l.caughtUp.Store(false)
	l.self.Store(0)
	clear(l.grants)
	l.broadcastLocked()
}

// fence waits until a write at index i may be acknowledged (see above).
func (l *leases) fence(ctx context.Context, i uint64) error {
	for {
		now := l.now()
		var wait int64
		if since := l.leaderSince.Load(); since != 0 && now < since+l.dPrime {
			wait = since + l.dPrime - now
		}
		l.mu.Lock()
		ch := l.changed
		for _, g := range l.grants {
			if exp := g.granted + l.dPrime; now < exp && g.applied < i {
				if wait == 0 || exp-now < wait {
					wait = exp - now
				}
			}
		}
		l.mu.Unlock()
		if wait == 0 {
			return nil
		}
		t := time.NewTimer(time.Duration(wait))
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
}

// Ready reports whether this node may serve reads and cryptography now: as
// the leader, while it holds a self-lease and has caught up; as a follower,
// while it holds a lease of the current term and has applied what the
// lease names. It costs a few atomic loads.
func (n *Node) Ready() bool {
	if n.closing.Load() {
		return false
	}
	now := n.leases.now()
	if n.raft.State() == raft.Leader {
		return n.leases.caughtUp.Load() && now < n.leases.self.Load()
	}
	l := n.leases.mine.Load()
	return l != nil && l.term == n.raft.CurrentTerm() && now < l.expires && n.fsm.State().Index() >= l.index
}

// watchLeadership tracks elections won and lost: a new leader fences writes
// for D′, runs a barrier so it has applied every earlier entry, and takes
// its first self-lease.
func (n *Node) watchLeadership() {
	for {
		select {
		case leader := <-n.leaderCh:
			if !leader {
				n.leases.leading(0)
				continue
			}
			n.leases.leading(max(n.leases.now(), 1))
			if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err != nil {
				n.log.Warn("barrier after election failed", "err", err)
				continue
			}
			n.leases.caughtUp.Store(true)
			n.renewSelfLease()
			n.log.Info("leading and caught up", "term", n.raft.CurrentTerm())
		case <-n.stop:
			return
		}
	}
}

// renewLeases keeps this node's lease fresh every D/4: a self-lease as the
// leader, a lease from the leader otherwise.
//
// A node that is not serving (just started, or the term changed) asks every
// D/40 instead, so it serves again within a round trip of a new leader.
func (n *Node) renewLeases() {
	for {
		every := time.Duration(n.leases.d / 4)
		if !n.Ready() {
			every /= 10
		}
		select {
		case <-n.stop:
			return
		case <-time.After(every):
		}
		if n.isLeader() {
			if n.leases.caughtUp.Load() {
				n.renewSelfLease()
			}
			continue
		}
		n.requestLease()
	}
}

func (n *Node) renewSelfLease() {
	s := n.leases.now()
	if err := n.raft.VerifyLeader().Error(); err == nil && n.isLeader() {
		n.leases.self.Store(s + n.leases.d)
	}
}

func (n *Node) requestLease() {
	addr, _ := n.raft.LeaderWithID()
	if addr == "" {
		return
	}
	s := n.leases.now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n.leases.d/2))
	defer cancel()
	var reply LeaseReply
	args := LeaseArgs{NodeID: n.cfg.NodeID, Term: n.raft.CurrentTerm(), Applied: n.fsm.State().Index()}
	if err := n.peers.call(ctx, string(addr), "Lease", args, &reply); err != nil {
		n.log.Debug("lease request failed", "leader", addr, "err", err)
		return
	}
	if reply.Granted {
		n.leases.mine.Store(&lease{term: reply.Term, index: reply.Index, expires: s + n.leases.d})
	}
}

func (n *Node) handleLease(a LeaseArgs, reply *LeaseReply) error {
	term := n.raft.CurrentTerm()
	reply.Term = term
	if !n.isLeader() || !n.leases.caughtUp.Load() || a.Term > term || !n.isMember(a.NodeID) {
		return nil
	}
	now := n.leases.now()
	n.leases.mu.Lock()
	g := n.leases.grants[a.NodeID]
	if g == nil {
		g = &grant{}
		n.leases.grants[a.NodeID] = g
	}
	g.granted = now
	g.applied = max(g.applied, a.Applied)
	n.leases.broadcastLocked()
	n.leases.mu.Unlock()
	// Read G after recording the grant: a write acknowledged before the
	// grant is in G; one acknowledged after it waited for this node.
	reply.Index = n.fsm.State().Index()
	reply.Granted = true
	return nil
}

func (n *Node) handleApplied(a AppliedArgs) {
	n.leases.reports.Add(1)
	n.leases.mu.Lock()
	defer n.leases.mu.Unlock()
	if g := n.leases.grants[a.NodeID]; g != nil && a.Applied > g.applied {
		g.applied = a.Applied
		n.leases.broadcastLocked()
	}
}

// reportApplied tells the leader, as soon as this follower applies a
// change, how far it got: the leader's fenced writes wait for it. Trail
// appends alone are not reported (they are not fenced, and under load
// they are most of the entries; the lease renewals carry the index too).
func (n *Node) reportApplied() {
	var reported uint64
	for {
		ch := n.fsm.Changed()
		select {
		case <-ch:
		case <-n.stop:
			return
		}
		st := n.fsm.State()
		idx := st.Index()
		if st.ChangeIndex() <= reported || n.isLeader() || n.leases.mine.Load() == nil {
			continue
		}
		addr, _ := n.raft.LeaderWithID()
		if addr == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n.leases.d/2))
		if err := n.peers.call(ctx, string(addr), "Applied", AppliedArgs{NodeID: n.cfg.NodeID, Applied: idx}, &Empty{}); err == nil {
			reported = idx
		}
		cancel()
	}
}

// LeaseStatus is a node's lease as /status shows it.
type LeaseStatus struct {
	Held      bool    `json:"held"`
	Term      uint64  `json:"term,omitempty"`
	Index     uint64  `json:"index,omitempty"`
	ExpiresIn float64 `json:"expires_in_ms"` // negative once expired
	Grants    int     `json:"grants,omitempty"`
	// AppliedReports counts the followers' reports of applied changes this
	// node received (as the leader) since it started.
	AppliedReports uint64 `json:"applied_reports,omitempty"`
}

func (n *Node) leaseStatus() LeaseStatus {
	now := n.leases.now()
	if n.isLeader() {
		n.leases.mu.Lock()
		grants := 0
		for _, g := range n.leases.grants {
			if now < g.granted+n.leases.dPrime {
				grants++
			}
		}
		n.leases.mu.Unlock()
		exp := n.leases.self.Load()
		return LeaseStatus{Held: now < exp, Term: n.raft.CurrentTerm(), ExpiresIn: ms(exp - now), Grants: grants,
			AppliedReports: n.leases.reports.Load()}
	}
	l := n.leases.mine.Load()
	if l == nil {
		return LeaseStatus{}
	}
	return LeaseStatus{Held: now < l.expires && l.term == n.raft.CurrentTerm(), Term: l.term, Index: l.index, ExpiresIn: ms(l.expires - now)}
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }
