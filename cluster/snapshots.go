package cluster

import "time"

// maxSnapshotSpacing bounds how far paceSnapshots moves snapshots apart, as
// a multiple of Config.SnapshotThreshold: the entries a restart replays
// after loading the newest snapshot.
const maxSnapshotSpacing = 64

// paceSnapshots keeps the log between two snapshots about as large as a
// snapshot. A snapshot writes the whole state — with a million keys,
// hundreds of MB and seconds of CPU — while a fixed threshold of entries
// takes one every few seconds of load; Raft's threshold is raised (never
// below the configured one) to the entries that add up to the newest
// snapshot's size, so the cost of snapshots stays a fixed share of the cost
// of the writes, whatever the state's size.
func (n *Node) paceSnapshots() {
	t := time.NewTicker(n.cfg.SnapshotInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			n.repaceSnapshots()
		}
	}
}

// repaceSnapshots sets Raft's snapshot threshold from the newest snapshot.
func (n *Node) repaceSnapshots() {
	metas, err := n.snaps.List()
	if err != nil || len(metas) == 0 {
		return
	}
	want := snapshotThreshold(n.cfg.SnapshotThreshold, uint64(metas[0].Size), n.fsm.EntrySize())
	rc := n.raft.ReloadableConfig()
	if cur := rc.SnapshotThreshold; want == cur || (want > cur-cur/8 && want < cur+cur/8 && want != n.cfg.SnapshotThreshold) {
		return // within an eighth: the average entry size drifts with the load
	}
	rc.SnapshotThreshold = want
	if err := n.raft.ReloadConfig(rc); err != nil {
		n.log.Warn("cannot change the snapshot threshold", "threshold", want, "err", err)
		return
	}
	n.log.Info("snapshot threshold", "entries", want, "snapshot_bytes", metas[0].Size)
}

// snapshotThreshold is the number of log entries between snapshots: as many
// entries of entryBytes as add up to a snapshot of snapshotBytes, at least
// base and at most maxSnapshotSpacing×base.
func snapshotThreshold(base, snapshotBytes, entryBytes uint64) uint64 {
	if entryBytes == 0 {
		return base
	}
	return min(max(snapshotBytes/entryBytes, base), maxSnapshotSpacing*base)
}
