//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func (c *testCluster) kmsctl(k *kmsd, args ...string) (string, string, int) {
	c.t.Helper()
	env := []string{"ALIBABA_CLOUD_ACCESS_KEY_ID=" + c.creds.AccessKeyID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" + c.creds.AccessKeySecret}
	return k.kmsctl(env, args...)
}

func TestClusterAdministrationWithKmsctl(t *testing.T) {
	c := startCluster(t, 3)
	out, errOut, code := c.kmsctl(c.nodes[2], "cluster", "status")
	var st struct {
		Node    struct{ Role string }
		Members struct {
			Member []struct {
				NodeID string `json:"node_id"`
				Voter  bool   `json:"voter"`
				Leader bool   `json:"leader"`
			}
		}
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st.Members.Member) != 3 {
		t.Fatalf("cluster status: exit %d %s %s", code, out, errOut)
	}
	out, _, code = c.kmsctl(c.nodes[1], "cluster", "members")
	if code != 0 || strings.Count(out, `"node_id"`) != 3 {
		t.Fatalf("cluster members: exit %d %s", code, out)
	}

	// Hand leadership to node3 through node2, then remove node1 and add it
	// back with a wiped data directory.
	if _, errOut, code := c.kmsctl(c.nodes[1], "cluster", "transfer-leadership", "--node-id", "node3"); code != 0 {
		t.Fatalf("transfer-leadership: %s", errOut)
	}
	if l := c.leader(10 * time.Second); l.id != "node3" {
		t.Fatalf("leader after transfer = %s, want node3", l.id)
	}
	if _, errOut, code := c.kmsctl(c.nodes[1], "cluster", "remove-node", "--node-id", "node9"); code != 1 || !strings.HasPrefix(errOut, "InvalidParameter.NodeNotFound") {
		t.Fatalf("remove-node of a stranger: exit %d %s", code, errOut)
	}
	if _, errOut, code := c.kmsctl(c.nodes[1], "cluster", "remove-node", "--node-id", "node1"); code != 0 {
		t.Fatalf("remove-node: %s", errOut)
	}
	rootKey := filepath.Join(t.TempDir(), "root.key")
	copyFile(t, filepath.Join(c.nodes[0].dir, "root.key"), rootKey)
	c.nodes[0].kill()
	fresh := startNode(t, "node1", nodeIP(1), filepath.Join(t.TempDir(), "node1-again"),
		"--join", c.nodes[1].url(), "--root-key-file", rootKey)
	c.nodes[0] = fresh
	ctx := context.Background()
	m, err := c.client(c.nodes[2]).CreateKey(ctx, "after re-adding node1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.client(fresh).GenerateDataKey(ctx, m.KeyID, 32, nil); err != nil {
		t.Fatalf("re-added node1: %v", err)
	}
}

func TestClusterSnapshotRestoresIntoAFreshClusterAndOldCiphertextsDecrypt(t *testing.T) {
	old := startCluster(t, 3)
	ctx := context.Background()
	type sealed struct{ blob, plaintext string }
	var blobs []sealed
	for i := range 10 {
		m, err := old.client(old.nodes[i%3]).CreateKey(ctx, "backed up")
		if err != nil {
			t.Fatal(err)
		}
		dk, err := old.client(old.nodes[(i+1)%3]).GenerateDataKey(ctx, m.KeyID, 32, map[string]string{"n": "x"})
		if err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, sealed{dk.CiphertextBlob, dk.Plaintext})
	}
	file := filepath.Join(t.TempDir(), "cluster.snapshot")
	if out, errOut, code := old.kmsctl(old.nodes[1], "cluster", "snapshot", "save", file); code != 0 {
		t.Fatalf("snapshot save: %s %s", out, errOut)
	}
	rootKey := filepath.Join(t.TempDir(), "root.key")
	copyFile(t, filepath.Join(old.nodes[0].dir, "root.key"), rootKey)
	for _, k := range old.nodes {
		k.kill() // the old cluster is gone
	}

	fresh := startCluster(t, 3, "--root-key-file", rootKey)
	if out, errOut, code := fresh.kmsctl(fresh.nodes[2], "cluster", "snapshot", "restore", file); code != 0 {
		t.Fatalf("snapshot restore: %s %s", out, errOut)
	}
	// The restored state has the old cluster's accounts and AccessKeys.
	fresh.creds = old.creds
	for _, k := range fresh.nodes {
		for i, b := range blobs {
			p, err := fresh.client(k).Decrypt(ctx, b.blob, map[string]string{"n": "x"})
			if err != nil || p.Plaintext != b.plaintext {
				t.Fatalf("node %s, blob %d after restore: %v, %v", k.id, i, p, err)
			}
		}
	}
	// A damaged file is refused and changes nothing.
	damaged := filepath.Join(t.TempDir(), "damaged.snapshot")
	copyFile(t, file, damaged)
	flipByte(t, damaged, 100)
	if _, errOut, code := fresh.kmsctl(fresh.nodes[0], "cluster", "snapshot", "restore", damaged); code != 1 || !strings.HasPrefix(errOut, "InvalidParameter") {
		t.Fatalf("restore of a damaged file: exit %d %s", code, errOut)
	}
	if _, err := fresh.client(fresh.nodes[0]).Decrypt(ctx, blobs[0].blob, map[string]string{"n": "x"}); err != nil {
		t.Fatalf("after a refused restore: %v", err)
	}
}
