package cluster

import "github.com/hashicorp/raft"

// Status is a node's view of the cluster, as /status shows it.
type Status struct {
	NodeID       string `json:"node_id"`
	RaftAddr     string `json:"raft_addr"`
	Role         string `json:"role"` // leader, follower, candidate or shutdown
	Voter        bool   `json:"voter"`
	Ready        bool   `json:"ready"`
	Leader       string `json:"leader"`
	LeaderAddr   string `json:"leader_addr"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"applied_index"`
	CommitIndex  uint64 `json:"commit_index"`
	FirstIndex   uint64 `json:"first_log_index"` // older entries are in the snapshot only
	LastIndex    uint64 `json:"last_log_index"`
	FSMIndex     uint64 `json:"fsm_index"`
	LogStore     string `json:"log_store"` // wal or boltdb
	// SnapshotThreshold is the log entries that trigger the next snapshot
	// (Config.SnapshotThreshold, raised for a large state).
	SnapshotThreshold uint64      `json:"snapshot_threshold"`
	Lease             LeaseStatus `json:"lease"`
	// ForwardedWrites counts the writes this node sent to the leader.
	ForwardedWrites uint64 `json:"forwarded_writes"`
}

// Status returns the node's current status.
func (n *Node) Status() Status {
	addr, id := n.raft.LeaderWithID()
	voter := false
	if ms, err := n.Members(); err == nil {
		for _, m := range ms {
			if m.ID == n.cfg.NodeID {
				voter = m.Voter
			}
		}
	}
	first, _ := n.logs.FirstIndex()
	return Status{
		NodeID: n.cfg.NodeID, RaftAddr: n.Addr(), Role: n.Role(), Voter: voter, Ready: n.Ready(),
		Leader: string(id), LeaderAddr: string(addr),
		Term: n.raft.CurrentTerm(), AppliedIndex: n.raft.AppliedIndex(),
		CommitIndex: n.raft.CommitIndex(), FirstIndex: first, LastIndex: n.raft.LastIndex(),
		FSMIndex: n.fsm.State().Index(), LogStore: n.cfg.LogStore,
		SnapshotThreshold: n.raft.ReloadableConfig().SnapshotThreshold, Lease: n.leaseStatus(), ForwardedWrites: n.forwarded.Load(),
	}
}

// Role returns leader, follower, candidate or shutdown, cheaply.
func (n *Node) Role() string {
	switch n.raft.State() {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	}
	return "shutdown"
}
