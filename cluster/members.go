package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Member is one server of the Raft configuration.
type Member struct {
	ID     string `json:"node_id"`
	Addr   string `json:"addr"`
	Voter  bool   `json:"voter"`
	Leader bool   `json:"leader"`
}

// ErrUnknownMember is returned for a node id that is not in the cluster.
var ErrUnknownMember = errors.New("cluster: no such node in the cluster")

// Members returns the cluster's servers as this node knows them.
func (n *Node) Members() ([]Member, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	_, leader := n.raft.LeaderWithID()
	var out []Member
	for _, s := range f.Configuration().Servers {
		out = append(out, Member{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter, Leader: s.ID == leader})
	}
	return out, nil
}

// Solo reports whether this node is the only voter of its cluster: then
// committing an entry needs no other node.
func (n *Node) Solo() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter && string(s.ID) != n.cfg.NodeID {
			return false
		}
	}
	return true
}

func (n *Node) isMember(id string) bool {
	ms, err := n.Members()
	if err != nil {
		return false
	}
	for _, m := range ms {
		if m.ID == id {
			return true
		}
	}
	return false
}

// Join asks the cluster, through any member's cluster address, to add this
// node (as a voter, or as a non-voting read replica). It retries until ctx
// ends, except when the cluster refuses this node's root key.
func (n *Node) Join(ctx context.Context, addr string, voter bool) error {
	args := MemberArgs{NodeID: n.cfg.NodeID, Addr: n.Addr(), Voter: voter}
	for {
		err := n.peers.call(ctx, addr, "Join", args, &Empty{})
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrClusterAuth):
			return fmt.Errorf("cluster: joining through %s was refused: this node's root key is not the cluster's (%w)", addr, err)
		}
		n.log.Warn("join failed; retrying", "via", addr, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: join through %s: %w (last error: %v)", addr, ctx.Err(), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// toLeader runs a membership change on the leader: here, or by RPC.
func (n *Node) toLeader(method string, a MemberArgs, local func() error) error {
	if n.isLeader() {
		return local()
	}
	addr, _ := n.raft.LeaderWithID()
	if addr == "" {
		return ErrNotLeader
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout)
	defer cancel()
	return n.peers.call(ctx, string(addr), method, a, &Empty{})
}

func (n *Node) handleJoin(a MemberArgs) error {
	return n.toLeader("Join", a, func() error {
		timeout := n.cfg.ApplyTimeout
		var f raft.IndexFuture
		if a.Voter {
			f = n.raft.AddVoter(raft.ServerID(a.NodeID), raft.ServerAddress(a.Addr), 0, timeout)
		} else {
			f = n.raft.AddNonvoter(raft.ServerID(a.NodeID), raft.ServerAddress(a.Addr), 0, timeout)
		}
		if err := f.Error(); err != nil {
			return fmt.Errorf("add %s: %w", a.NodeID, err)
		}
		n.log.Info("node joined", "node", a.NodeID, "addr", a.Addr, "voter", a.Voter)
		return nil
	})
}

// RemoveNode removes a node from the cluster. Its lease can no longer be
// renewed, so it stops serving within the lease length.
func (n *Node) RemoveNode(id string) error {
	// Every node knows the configuration: check here, so the error keeps its
	// identity instead of crossing RPC as text.
	if !n.isMember(id) {
		return fmt.Errorf("%w: %s", ErrUnknownMember, id)
	}
	return n.handleRemove(MemberArgs{NodeID: id})
}

func (n *Node) handleRemove(a MemberArgs) error {
	return n.toLeader("Remove", a, func() error {
		if !n.isMember(a.NodeID) {
			return fmt.Errorf("%w: %s", ErrUnknownMember, a.NodeID)
		}
		if err := n.raft.RemoveServer(raft.ServerID(a.NodeID), 0, n.cfg.ApplyTimeout).Error(); err != nil {
			return fmt.Errorf("remove %s: %w", a.NodeID, err)
		}
		n.log.Info("node removed", "node", a.NodeID)
		return nil
	})
}

// TransferLeadership asks the leader to hand over to node id (any suitable
// voter when id is empty).
func (n *Node) TransferLeadership(id string) error {
	if id != "" && !n.isMember(id) {
		return fmt.Errorf("%w: %s", ErrUnknownMember, id)
	}
	return n.handleTransfer(MemberArgs{NodeID: id})
}

func (n *Node) handleTransfer(a MemberArgs) error {
	return n.toLeader("Transfer", a, func() error {
		if a.NodeID == "" {
			return n.raft.LeadershipTransfer().Error()
		}
		ms, err := n.Members()
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.ID == a.NodeID {
				if !m.Voter {
					return fmt.Errorf("cluster: %s is a non-voter and cannot lead", a.NodeID)
				}
				return n.raft.LeadershipTransferToServer(raft.ServerID(m.ID), raft.ServerAddress(m.Addr)).Error()
			}
		}
		return fmt.Errorf("%w: %s", ErrUnknownMember, a.NodeID)
	})
}
