package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/raftkms/raftkms/trail"
)

// maxTrailReply bounds the records one TrailRange reply carries.
const maxTrailReply = 4 << 20

// ErrNoTrailSource is returned to a peer asking a node that keeps no trail.
var ErrNoTrailSource = errors.New("cluster: this node serves no trail records")

func (n *Node) handleTrailRange(a TrailRangeArgs, r *TrailRangeReply) error {
	if n.cfg.TrailSource == nil {
		return ErrNoTrailSource
	}
	recs, err := n.cfg.TrailSource(a.From, a.To, min(max(a.MaxBytes, 1), maxTrailReply))
	if err != nil {
		return err
	}
	for _, s := range recs {
		r.Contents = append(r.Contents, s.Content)
		r.Hashes = append(r.Hashes, s.Hash)
	}
	return nil
}

// FetchTrail asks the other members, the leader first, for the sealed trail
// records from..to (the start of that range, if a reply would be too large)
// — for a node that joined, or restored a snapshot, after the records it
// lacks had left the state. The records are checked against their hashes;
// whether they link into the chain is the caller's to check.
func (n *Node) FetchTrail(ctx context.Context, from, to uint64) ([]trail.Sealed, error) {
	members, err := n.Members()
	if err != nil {
		return nil, err
	}
	leader, _ := n.raft.LeaderWithID()
	addrs := []string{}
	if leader != "" {
		addrs = append(addrs, string(leader))
	}
	for _, m := range members {
		if m.ID != n.cfg.NodeID && m.Addr != string(leader) {
			addrs = append(addrs, m.Addr)
		}
	}
	var last error = ErrNotLeader
	for _, addr := range addrs {
		var reply TrailRangeReply
		if err := n.peers.call(ctx, addr, "TrailRange", TrailRangeArgs{From: from, To: to, MaxBytes: maxTrailReply}, &reply); err != nil {
			last = err
			continue
		}
		if len(reply.Contents) != len(reply.Hashes) || len(reply.Contents) == 0 {
			last = fmt.Errorf("cluster: %s has no trail records from %d", addr, from)
			continue
		}
		out := make([]trail.Sealed, len(reply.Contents))
		for i, c := range reply.Contents {
			s := trail.Sealed{Content: c, Hash: reply.Hashes[i]}
			var err error
			if s.Seq, s.CommitTime, _, err = trail.PeekHeader(c); err != nil || !s.Valid() || s.Seq != from+uint64(i) {
				return nil, fmt.Errorf("cluster: %s sent a damaged trail record %d", addr, from+uint64(i))
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, last
}
