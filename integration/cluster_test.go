//go:build integration

package integration

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestClusterKeyCreatedOnOneNodeIsUsableOnTheOthersAtOnce: once CreateKey
// returns, every serving node knows the key.
func TestClusterKeyCreatedOnOneNodeIsUsableOnTheOthersAtOnce(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	for i, k := range c.nodes {
		m, err := c.client(k).CreateKey(ctx, fmt.Sprint("made on ", k.id))
		if err != nil {
			t.Fatal(err)
		}
		for _, other := range c.nodes {
			if other == k {
				continue
			}
			dk, err := c.client(other).GenerateDataKey(ctx, m.KeyID, 32, map[string]string{"i": fmt.Sprint(i)})
			if err != nil {
				t.Fatalf("key made on %s, GenerateDataKey on %s right after: %v", k.id, other.id, err)
			}
			p, err := c.client(c.nodes[(i+2)%3]).Decrypt(ctx, dk.CiphertextBlob, map[string]string{"i": fmt.Sprint(i)})
			if err != nil || p.Plaintext != dk.Plaintext {
				t.Fatalf("Decrypt on a third node = %v, %v", p, err)
			}
		}
	}
	// Every node exports its Raft and lease state and its request counts;
	// the followers forwarded their CreateKey to the leader.
	leader := c.leader(5 * time.Second)
	for _, k := range c.nodes {
		m := k.metrics()
		for _, want := range []string{"raftkms_ready 1", "raftkms_lease_held 1", `raftkms_requests_total{action="GenerateDataKey",code="OK"}`} {
			if !strings.Contains(m, want) {
				t.Fatalf("%s /metrics lacks %q", k.id, want)
			}
		}
		forwarded := metricValue(m, "raftkms_writes_forwarded_total")
		if k == leader && forwarded != 0 || k != leader && forwarded < 1 {
			t.Fatalf("%s (leader %v) forwarded %v writes", k.id, k == leader, forwarded)
		}
	}
}

// TestClusterDisableThroughAFollowerIsRefusedEverywhereAtOnce: once
// DisableKey returns, no node encrypts with the key.
func TestClusterDisableThroughAFollowerIsRefusedEverywhereAtOnce(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	leader := c.leader(10 * time.Second)
	follower := c.followers(leader)[0]
	for round := range 5 {
		m, err := c.client(leader).CreateKey(ctx, "to disable")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.client(follower).Call(ctx, "DisableKey", map[string]string{"KeyId": m.KeyID}); err != nil {
			t.Fatalf("DisableKey through follower %s: %v", follower.id, err)
		}
		for _, k := range c.nodes {
			_, err := c.client(k).GenerateDataKey(ctx, m.KeyID, 32, nil)
			if code := errorCode(err); code != "Rejected.Disabled" {
				t.Fatalf("round %d: GenerateDataKey on %s right after DisableKey returned: %v, want Rejected.Disabled", round, k.id, err)
			}
		}
	}
}

func TestClusterKillingTheLeaderKeepsServingAndItCatchesUpOnRestart(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	before, err := c.client(c.nodes[0]).CreateKey(ctx, "before the crash")
	if err != nil {
		t.Fatal(err)
	}
	ct, err := c.client(c.nodes[1]).Encrypt(ctx, before.KeyID, "survives", nil)
	if err != nil {
		t.Fatal(err)
	}
	old := c.leader(10 * time.Second)
	old.kill() // kill -9
	start := time.Now()
	survivors := c.followers(old)
	var during string
	eventually(t, 15*time.Second, "the two survivors serve writes", func() error {
		m, err := c.client(survivors[0]).CreateKey(ctx, "during the outage")
		if err == nil {
			during = m.KeyID
		}
		return err
	})
	t.Logf("writes served again %v after the leader was killed", time.Since(start).Round(time.Millisecond))
	for _, k := range survivors {
		if p, err := c.client(k).Decrypt(ctx, ct.CiphertextBlob, nil); err != nil || p.Plaintext != "survives" {
			t.Fatalf("Decrypt on survivor %s = %v, %v", k.id, p, err)
		}
		if _, err := c.client(k).GenerateDataKey(ctx, during, 32, nil); err != nil {
			t.Fatalf("survivor %s does not know the key made during the outage: %v", k.id, err)
		}
	}
	old.start() // same data directory: it rejoins and catches up
	if _, err := c.client(old).GenerateDataKey(ctx, during, 32, nil); err != nil {
		t.Fatalf("restarted %s does not serve the key made while it was down: %v", old.id, err)
	}
}

// TestClusterPartitionedNodeRefusesTheFastPathWhileTheOthersServe cuts a
// follower off with iptables: its lease runs out and it answers 503
// instead of stale data, while the majority goes on.
func TestClusterPartitionedNodeRefusesTheFastPathWhileTheOthersServe(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	leader := c.leader(10 * time.Second)
	cut := c.followers(leader)[0]
	m, err := c.client(leader).CreateKey(ctx, "partition")
	if err != nil {
		t.Fatal(err)
	}
	heal := c.partition(cut)
	// A write during the partition waits at most for the cut node's lease.
	start := time.Now()
	if _, err := c.client(leader).Call(ctx, "DisableKey", map[string]string{"KeyId": m.KeyID}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("DisableKey took %v with one node partitioned, want at most about the lease (2s)", d)
	}
	t.Logf("DisableKey with a partitioned follower took %v", time.Since(start).Round(time.Millisecond))
	_, err = c.client(cut).GenerateDataKey(ctx, m.KeyID, 32, nil)
	if code := errorCode(err); code != "ServiceUnavailableTemporary" {
		t.Fatalf("partitioned node answered %v, want 503 ServiceUnavailableTemporary (never the stale Enabled state)", err)
	}
	for _, k := range c.followers(cut) {
		if _, err := c.client(k).GenerateDataKey(ctx, m.KeyID, 32, nil); errorCode(err) != "Rejected.Disabled" {
			t.Fatalf("majority node %s: %v, want Rejected.Disabled", k.id, err)
		}
		if _, err := c.client(k).CreateKey(ctx, "majority write"); err != nil {
			t.Fatalf("majority node %s cannot write: %v", k.id, err)
		}
	}
	heal()
	eventually(t, 15*time.Second, "the healed node serves again", func() error {
		_, err := c.client(cut).GenerateDataKey(ctx, m.KeyID, 32, nil)
		if code := errorCode(err); code != "Rejected.Disabled" {
			return fmt.Errorf("got %v", err)
		}
		return nil
	})
}

// TestClusterStoppedNodeNeverServesStaleStateWhenItWakes: SIGSTOP a
// follower, change a key, SIGCONT it and ask it at once.
func TestClusterStoppedNodeNeverServesStaleStateWhenItWakes(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	leader := c.leader(10 * time.Second)
	sleeper := c.followers(leader)[0]
	m, err := c.client(leader).CreateKey(ctx, "sigstop")
	if err != nil {
		t.Fatal(err)
	}
	sleeper.signal(syscall.SIGSTOP)
	if _, err := c.client(leader).Call(ctx, "DisableKey", map[string]string{"KeyId": m.KeyID}); err != nil {
		t.Fatal(err)
	}
	sleeper.signal(syscall.SIGCONT)
	_, err = c.client(sleeper).GenerateDataKey(ctx, m.KeyID, 32, nil)
	if code := errorCode(err); code != "ServiceUnavailableTemporary" && code != "Rejected.Disabled" {
		t.Fatalf("woken node answered %v: it served the stale Enabled state", err)
	}
}

// TestClusterRestartedNodeRejoinsFromItsDataDirAlone: a node that joined
// with --join and --root-key-file restarts with neither.
func TestClusterRestartedNodeRejoinsFromItsDataDirAlone(t *testing.T) {
	c := startCluster(t, 3)
	k := c.nodes[2]
	k.stop() // SIGTERM
	ctx := context.Background()
	m, err := c.client(c.nodes[0]).CreateKey(ctx, "while node3 was down")
	if err != nil {
		t.Fatal(err)
	}
	k.args = nil // no --join, no --root-key-file
	k.start()
	if _, err := c.client(k).GenerateDataKey(ctx, m.KeyID, 32, nil); err != nil {
		t.Fatalf("restarted node: %v", err)
	}
}
