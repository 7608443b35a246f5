package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// A large state is snapshotted less often: the threshold of entries rises
// until the log between snapshots is about a snapshot's size, so a node with
// a million keys does not rewrite hundreds of MB every few seconds of load.
func TestSnapshotsMoveApartAsTheStateGrows(t *testing.T) {
	n := newTestNodeIn(t, "n1", t.TempDir(), "127.0.0.1:0", true, testAuthKey, func(c *Config) {
		c.SnapshotThreshold, c.SnapshotInterval = 16, 20*time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if got := n.Status().SnapshotThreshold; got != 16 {
		t.Fatalf("threshold before any snapshot = %d, want the configured 16", got)
	}
	for i := range 300 {
		if r, err := n.Propose(ctx, account(fmt.Sprint("snapshot-acct-", i))); err != nil || r.Err != nil {
			t.Fatalf("write %d: %v %v", i, err, r.Err)
		}
	}
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	metas, err := n.snaps.List()
	if err != nil || len(metas) == 0 {
		t.Fatalf("no snapshot: %v", err)
	}
	want := uint64(metas[0].Size) / n.fsm.EntrySize()
	if want <= 16 || want >= 16*maxSnapshotSpacing {
		t.Fatalf("test state too small or large: %d-byte snapshot, %d-byte entries", metas[0].Size, n.fsm.EntrySize())
	}
	// The pacer keeps a threshold that is within an eighth of the one it
	// would set (an earlier, smaller snapshot may have set it).
	within(t, 5*time.Second, fmt.Sprintf("threshold within an eighth of %d (snapshot %d bytes / entries of %d)", want, metas[0].Size, n.fsm.EntrySize()),
		func() bool {
			got := n.Status().SnapshotThreshold
			return got > want-want/8 && got < want+want/8
		})
}

func TestSnapshotThresholdStaysWithinItsBounds(t *testing.T) {
	for _, c := range []struct{ base, snap, entry, want uint64 }{
		{8192, 1 << 30, 0, 8192},                        // nothing applied yet
		{8192, 1 << 20, 1 << 10, 8192},                  // small state: the configured threshold
		{8192, 400 << 20, 3 << 10, 136533},              // 400 MB of state, 3 KB entries
		{8192, 1 << 40, 100, 8192 * maxSnapshotSpacing}, // bounded replay after a restart
	} {
		if got := snapshotThreshold(c.base, c.snap, c.entry); got != c.want {
			t.Errorf("snapshotThreshold(%d, %d, %d) = %d, want %d", c.base, c.snap, c.entry, got, c.want)
		}
	}
}
