//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/raftkms/raftkms/api/client"
)

// binDir holds kmsd and kmsctl built for this test run.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "raftkms-bin-")
	if err != nil {
		panic(err)
	}
	build := exec.Command("go", "build", "-o", dir+"/", "github.com/raftkms/raftkms/cmd/kmsd", "github.com/raftkms/raftkms/cmd/kmsctl")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building kmsd and kmsctl:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns an address on a loopback IP with a port nobody listens on.
func freeAddr(t testing.TB, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer is a bytes.Buffer safe to read while a process writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// kmsd is one running kmsd process.
type kmsd struct {
	t       testing.TB
	id      string
	ip      string
	dir     string
	api     string
	raft    string
	args    []string
	cmd     *exec.Cmd
	stdout  *syncBuffer
	stderr  *syncBuffer
	exited  chan struct{}
	exitErr error
}

// startKMSD starts a single kmsd on dir (created if need be) and waits until
// it is ready.
func startKMSD(t testing.TB, dir string, extra ...string) *kmsd {
	return startNode(t, "node1", "127.0.0.1", dir, extra...)
}

// startNode starts kmsd as node id, listening on ip, and waits until it is
// ready.
func startNode(t testing.TB, id, ip, dir string, extra ...string) *kmsd {
	t.Helper()
	k := newNode(t, id, ip, dir, extra...)
	k.start()
	return k
}

// newNode prepares a kmsd without starting it.
func newNode(t testing.TB, id, ip, dir string, extra ...string) *kmsd {
	k := &kmsd{t: t, id: id, ip: ip, dir: dir, api: freeAddr(t, ip), raft: freeAddr(t, ip), args: extra}
	t.Cleanup(func() { k.kill() })
	return k
}

func (k *kmsd) start() {
	k.t.Helper()
	k.launch()
	k.waitReady(60 * time.Second)
}

// launch starts the process without waiting for it.
func (k *kmsd) launch() {
	k.t.Helper()
	args := append([]string{"--data-dir", k.dir, "--node-id", k.id, "--api-addr", k.api, "--raft-addr", k.raft}, k.args...)
	k.cmd = exec.Command(filepath.Join(binDir, "kmsd"), args...)
	k.stdout, k.stderr = &syncBuffer{}, &syncBuffer{}
	k.cmd.Stdout, k.cmd.Stderr = k.stdout, k.stderr
	if err := k.cmd.Start(); err != nil {
		k.t.Fatal(err)
	}
	k.exited = make(chan struct{})
	go func() { k.exitErr = k.cmd.Wait(); close(k.exited) }()
}

func (k *kmsd) url() string { return k.scheme() + "://" + k.api }

// scheme is https when the node serves its API over TLS.
func (k *kmsd) scheme() string {
	for _, a := range k.args {
		if a == "--api-tls-cert" {
			return "https"
		}
	}
	return "http"
}

// caFile is the CA file given to the node (for clients of an https API).
func (k *kmsd) caFile() string {
	for i, a := range k.args {
		if a == "--tls-ca" && i+1 < len(k.args) {
			return k.args[i+1]
		}
	}
	return ""
}

// httpClient reaches the node's operational endpoints.
func (k *kmsd) httpClient() *http.Client {
	c := &http.Client{Timeout: 5 * time.Second}
	if ca := k.caFile(); ca != "" {
		cfg, err := client.LoadCA(ca)
		if err != nil {
			k.t.Fatal(err)
		}
		c.Transport = &http.Transport{TLSClientConfig: cfg}
	}
	return c
}

// waitReady polls /readyz until it answers 200, the process exits, or the
// deadline passes.
func (k *kmsd) waitReady(within time.Duration) {
	k.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		select {
		case <-k.exited:
			k.t.Fatalf("kmsd exited before it was ready: %v\nstderr:\n%s", k.exitErr, k.stderr)
		default:
		}
		resp, err := k.httpClient().Get(k.url() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond) // polling interval of a condition wait, not synchronisation
	}
	k.t.Fatalf("kmsd not ready after %v\nstderr:\n%s", within, k.stderr)
}

// stop sends SIGTERM and checks kmsd exits 0.
func (k *kmsd) stop() {
	k.t.Helper()
	k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.exited:
		if k.exitErr != nil {
			k.t.Fatalf("kmsd exited with %v after SIGTERM\nstderr:\n%s", k.exitErr, k.stderr)
		}
	case <-time.After(15 * time.Second):
		k.t.Fatalf("kmsd did not exit within 15s of SIGTERM")
	}
}

// kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (k *kmsd) kill() {
	if k.cmd == nil || k.cmd.Process == nil {
		return
	}
	k.cmd.Process.Signal(syscall.SIGCONT) // a stopped process cannot die
	k.cmd.Process.Kill()
	<-k.exited
}

// signal sends sig to the process.
func (k *kmsd) signal(sig syscall.Signal) {
	k.t.Helper()
	if err := k.cmd.Process.Signal(sig); err != nil {
		k.t.Fatal(err)
	}
}

// status fetches /status; ok is false when the node does not answer.
func (k *kmsd) status() (st struct {
	Role   string `json:"role"`
	Ready  bool   `json:"ready"`
	Leader string `json:"leader"`
	Term   uint64 `json:"term"`
	FSM    uint64 `json:"fsm_index"`
	First  uint64 `json:"first_log_index"`
}, ok bool) {
	resp, err := k.httpClient().Get(k.url() + "/status")
	if err != nil {
		return st, false
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st) == nil
}

func (k *kmsd) credentialsFile() string { return filepath.Join(k.dir, "root-credentials.json") }

func (k *kmsd) credentials() client.Credentials {
	k.t.Helper()
	c, err := client.LoadCredentials(k.credentialsFile())
	if err != nil {
		k.t.Fatal(err)
	}
	return c
}

func (k *kmsd) client() *client.Client {
	k.t.Helper()
	return k.clientWith(k.credentials())
}

// clientWith returns a Go client for the node with the given credentials.
func (k *kmsd) clientWith(creds client.Credentials) *client.Client {
	k.t.Helper()
	cfg := client.Config{Endpoint: k.url(), Credentials: creds, Timeout: 15 * time.Second}
	if ca := k.caFile(); ca != "" && k.scheme() == "https" {
		var err error
		if cfg.TLS, err = client.LoadCA(ca); err != nil {
			k.t.Fatal(err)
		}
	}
	c, err := client.New(cfg)
	if err != nil {
		k.t.Fatal(err)
	}
	return c
}

// kmsctl runs the kmsctl binary against k and returns stdout, stderr and
// the exit code.
func (k *kmsd) kmsctl(env []string, args ...string) (string, string, int) {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := []string{"--endpoint", k.url()}
	if ca := k.caFile(); ca != "" && k.scheme() == "https" {
		base = append(base, "--ca-file", ca)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "kmsctl"), append(base, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		k.t.Fatal(err)
	}
	return out.String(), strings.TrimSpace(errb.String()), code
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t testing.TB, path string, i int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[i] ^= 1
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// metrics scrapes the node's /metrics.
func (k *kmsd) metrics() string {
	k.t.Helper()
	resp, err := k.httpClient().Get(k.url() + "/metrics")
	if err != nil {
		k.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		k.t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	return string(b)
}

// metricValue returns the value of an unlabelled metric in a scrape.
func metricValue(scrape, name string) float64 {
	for _, line := range strings.Split(scrape, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}
