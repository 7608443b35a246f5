//go:build integration

package integration

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftkms/raftkms/api/client"
)

// testCluster is n real kmsd processes, node i on loopback IP 127.0.0.1i
// (so iptables can partition one node from the others by address).
type testCluster struct {
	t     *testing.T
	nodes []*kmsd
	creds client.Credentials
}

func nodeIP(i int) string { return fmt.Sprintf("127.0.0.%d", 10+i) }

func startCluster(t *testing.T, n int, extra ...string) *testCluster {
	return startClusterWith(t, n, func(int) []string { return extra })
}

// startClusterWith starts n nodes; node i (from 1) gets the flags extra(i).
func startClusterWith(t *testing.T, n int, extra func(i int) []string) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	first := startNode(t, "node1", nodeIP(1), filepath.Join(t.TempDir(), "node1"), extra(1)...)
	c.nodes = append(c.nodes, first)
	c.creds = first.credentials()
	for i := 2; i <= n; i++ {
		c.nodes = append(c.nodes, newNode(t, fmt.Sprint("node", i), nodeIP(i), filepath.Join(t.TempDir(), fmt.Sprint("node", i)),
			append([]string{"--join", first.url(), "--root-key-file", filepath.Join(first.dir, "root.key")}, extra(i)...)...))
	}
	for _, k := range c.nodes[1:] {
		k.launch()
	}
	for _, k := range c.nodes[1:] {
		k.waitReady(60 * time.Second)
	}
	return c
}

// client returns a Go client for node k with the root credentials.
func (c *testCluster) client(k *kmsd) *client.Client {
	c.t.Helper()
	return k.clientWith(c.creds)
}

// leader returns the node that leads, waiting up to d for one.
func (c *testCluster) leader(d time.Duration) *kmsd {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, k := range c.nodes {
			if st, ok := k.status(); ok && st.Role == "leader" && st.Ready {
				return k
			}
		}
		time.Sleep(20 * time.Millisecond) // condition poll
	}
	c.t.Fatalf("no ready leader within %v", d)
	return nil
}

func (c *testCluster) followers(leader *kmsd) []*kmsd {
	var out []*kmsd
	for _, k := range c.nodes {
		if k != leader {
			out = append(out, k)
		}
	}
	return out
}

// eventually retries f until it succeeds or d passes.
func eventually(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond) // condition poll
	}
	t.Fatalf("%s: still failing after %v: %v", what, d, err)
}

// errorCode returns the Alibaba code of err ("" for nil, "?" for others).
func errorCode(err error) string {
	if err == nil {
		return ""
	}
	var ae *client.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return "?"
}

// partition cuts node k off from the other nodes (not from the test) with
// iptables rules on the nodes' loopback IPs, in a chain of its own.
func (c *testCluster) partition(k *kmsd) (heal func()) {
	c.t.Helper()
	chain := "RAFTKMS-TEST"
	ipt := func(args ...string) error {
		out, err := exec.Command("iptables", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	ipt("-D", "INPUT", "-j", chain) // leftovers of an aborted run
	ipt("-F", chain)
	ipt("-X", chain)
	if err := ipt("-N", chain); err != nil {
		c.t.Fatalf("partitioning needs iptables (make test installs it): %v", err)
	}
	for _, other := range c.nodes {
		if other == k {
			continue
		}
		for _, rule := range [][]string{{"-s", k.ip, "-d", other.ip}, {"-s", other.ip, "-d", k.ip}} {
			if err := ipt(append(append([]string{"-A", chain}, rule...), "-j", "DROP")...); err != nil {
				c.t.Fatal(err)
			}
		}
	}
	if err := ipt("-I", "INPUT", "-j", chain); err != nil {
		c.t.Fatal(err)
	}
	healed := false
	heal = func() {
		if healed {
			return
		}
		healed = true
		ipt("-D", "INPUT", "-j", chain)
		ipt("-F", chain)
		ipt("-X", chain)
	}
	c.t.Cleanup(heal)
	return heal
}
