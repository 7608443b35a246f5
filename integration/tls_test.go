//go:build integration

package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/raftkms/raftkms/api/client"
)

// TestClusterOverTLS runs three nodes with mutual TLS between them and the
// API over TLS, certificates from `kmsd dev-certs`.
func TestClusterOverTLS(t *testing.T) {
	certs := filepath.Join(t.TempDir(), "certs")
	out, err := exec.Command(filepath.Join(binDir, "kmsd"), "dev-certs", "--out", certs,
		"--hosts", fmt.Sprintf("%s,%s,%s,localhost", nodeIP(1), nodeIP(2), nodeIP(3))).CombinedOutput()
	if err != nil {
		t.Fatalf("dev-certs: %v %s", err, out)
	}
	c := startClusterWith(t, 3, func(i int) []string {
		cert, key := filepath.Join(certs, fmt.Sprintf("node%d.pem", i)), filepath.Join(certs, fmt.Sprintf("node%d-key.pem", i))
		return []string{"--tls-cert", cert, "--tls-key", key, "--tls-ca", filepath.Join(certs, "ca.pem"),
			"--api-tls-cert", cert, "--api-tls-key", key}
	})
	ctx := context.Background()
	m, err := c.client(c.nodes[1]).CreateKey(ctx, "over TLS")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range c.nodes {
		if _, err := c.client(k).GenerateDataKey(ctx, m.KeyID, 32, nil); err != nil {
			t.Fatalf("GenerateDataKey on %s over TLS: %v", k.id, err)
		}
	}
	if out, errOut, code := c.kmsctl(c.nodes[2], "describe-key", "--key-id", m.KeyID); code != 0 {
		t.Fatalf("kmsctl --ca-file over https: %s %s", out, errOut)
	}
	// Plain HTTP to the API gets nowhere.
	if resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + c.nodes[0].api + "/readyz"); err == nil && resp.StatusCode == 200 {
		t.Fatal("the TLS API answered plain HTTP")
	}
	// The cluster channel wants a certificate from the cluster CA.
	caCfg, err := client.LoadCA(filepath.Join(certs, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", c.nodes[0].raft, caCfg)
	if err == nil {
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		_, err = conn.Write([]byte{2}) // TLS 1.3 reports a refused client certificate on first use
		if err == nil {
			_, err = conn.Read(make([]byte, 1))
		}
		conn.Close()
	}
	if err == nil {
		t.Fatal("the cluster channel accepted a TLS client without a certificate")
	}
}
