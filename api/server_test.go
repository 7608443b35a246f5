package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/raftkms/raftkms/api/client"
	"github.com/raftkms/raftkms/cluster"
	"github.com/raftkms/raftkms/crypto"
	"github.com/raftkms/raftkms/fsm"
	"github.com/raftkms/raftkms/policy"
)

// fakeClock is the real clock plus an offset tests move forward.
type fakeClock struct{ offset atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *fakeClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// testNode is a complete single-node raftkms in process: real Raft on disk,
// real policies, real root key, a real HTTP listener.
type testNode struct {
	srv      *Server
	node     *cluster.Node
	archiver *cluster.Archiver
	fsm      *fsm.FSM
	url      string
	creds    client.Credentials
	clock    *fakeClock
	cli      *client.Client
}

// startTestNode starts a single-node cluster and its API server; opts
// change the server's configuration and dependencies before it starts.
func startTestNode(t testing.TB, opts ...func(*Config, *Deps)) *testNode {
	t.Helper()
	dir := t.TempDir()
	root, err := crypto.NewRootKey(bytes.Repeat([]byte{42}, 32))
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNode{clock: &fakeClock{}}
	keyring := crypto.NewKeyring(root, 0)
	tn.archiver, err = cluster.NewArchiver(filepath.Join(dir, "trail"), 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tn.archiver.Close() })
	tn.fsm = fsm.New(fsm.Config{OnDestroy: func(ids []string) { keyring.Forget(ids...) },
		OnRestore: func() { keyring.Clear(); tn.archiver.OnRestore() }, OnTrail: tn.archiver.OnTrail, BeforePersist: tn.archiver.Sync})
	tn.archiver.SetFSM(tn.fsm)
	authKey, _ := root.Derive("cluster-auth")
	tn.node, err = cluster.New(cluster.Config{NodeID: "n1", DataDir: filepath.Join(dir, "data"), RaftAddr: "127.0.0.1:0",
		Bootstrap: true, AuthKey: authKey, Clock: tn.clock.Now, Lease: 200 * time.Millisecond, TrailSource: tn.archiver.Source}, tn.fsm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tn.node.Close() })
	engine, err := policy.New(policy.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Clock: tn.clock.Now, SpoolDir: dir, NodeID: "n1"}
	deps := Deps{State: tn.fsm, Snapshots: tn.fsm, Proposer: tn.node, Node: tn.node,
		Authorizer: engine, Wrapper: root, Keyring: keyring, Trail: tn.archiver}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	tn.srv, err = New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tn.node.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tn.srv.EnsureRootAccount(ctx, "root", func(id, secret string) error {
		tn.creds = client.Credentials{AccessKeyID: id, AccessKeySecret: secret}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tn.srv.Open()
	go tn.srv.Serve(ln)
	t.Cleanup(func() { tn.srv.Shutdown(context.Background()) })
	tn.url = "http://" + ln.Addr().String()
	tn.cli = tn.client(t, tn.creds)
	return tn
}

func (tn *testNode) client(t testing.TB, creds client.Credentials) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Endpoint: tn.url, Credentials: creds, Clock: tn.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// call runs an action and fails the test on error.
func (tn *testNode) call(t testing.TB, action string, params map[string]string, out any) {
	t.Helper()
	if err := tn.cli.Do(context.Background(), action, params, out); err != nil {
		t.Fatalf("%s(%v): %v", action, params, err)
	}
}

// wantCode runs an action and checks the service answered with code and status.
func (tn *testNode) wantCode(t testing.TB, action string, params map[string]string, status int, code string) {
	t.Helper()
	_, err := tn.cli.Call(context.Background(), action, params)
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Code != code || ae.StatusCode != status {
		t.Fatalf("%s(%v) err = %v, want %d %s", action, params, err, status, code)
	}
}

func (tn *testNode) createKey(t testing.TB) string {
	t.Helper()
	m, err := tn.cli.CreateKey(context.Background(), "test key")
	if err != nil {
		t.Fatal(err)
	}
	return m.KeyID
}

// panicAuthorizer stands in for a policy engine with a bug.
type panicAuthorizer struct{ Authorizer }

func (panicAuthorizer) Decide(context.Context, policy.Request, policy.InputBuilder) (policy.Decision, error) {
	panic("bug in a dependency")
}

func TestAPanickingRequestIsAnswered500AndTheNodeKeepsServing(t *testing.T) {
	tn := startTestNode(t)
	real := tn.srv.deps.Authorizer
	tn.srv.deps.Authorizer = panicAuthorizer{real}
	tn.wantCode(t, "ListKeys", nil, 500, "InternalFailure")
	tn.srv.deps.Authorizer = real
	tn.call(t, "ListKeys", nil, nil)
}

func TestOperationalEndpoints(t *testing.T) {
	tn := startTestNode(t)
	get := func(path string) (int, []byte) {
		st, body, err := fasthttp.Get(nil, tn.url+path)
		if err != nil {
			t.Fatal(err)
		}
		return st, body
	}
	if st, body := get("/healthz"); st != 200 || string(body) != "ok\n" {
		t.Fatalf("/healthz = %d %q", st, body)
	}
	if st, body := get("/readyz"); st != 200 || string(body) != "ready\n" {
		t.Fatalf("/readyz = %d %q", st, body)
	}
	st, body := get("/status")
	var s struct {
		Role    string `json:"role"`
		Term    uint64 `json:"term"`
		Applied uint64 `json:"applied_index"`
		Commit  uint64 `json:"commit_index"`
	}
	if err := json.Unmarshal(body, &s); st != 200 || err != nil || s.Role != "leader" || s.Term == 0 || s.Applied == 0 || s.Commit < s.Applied {
		t.Fatalf("/status = %d %s (%v)", st, body, err)
	}
	if st, _ := get("/nope"); st != 404 {
		t.Fatalf("/nope = %d, want 404", st)
	}
}

func TestMetricsCountRequestsByActionAndCode(t *testing.T) {
	tn := startTestNode(t)
	id := tn.createKey(t)
	for range 3 {
		if _, err := tn.cli.GenerateDataKey(context.Background(), id, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	tn.wantCode(t, "Decrypt", map[string]string{"CiphertextBlob": "eA=="}, 400, "InvalidParameter")
	tn.wantCode(t, "NoSuchAction", nil, 404, "InvalidAction.NotFound")
	st, body, err := fasthttp.Get(nil, tn.url+"/metrics")
	if err != nil || st != 200 {
		t.Fatalf("/metrics = %d, %v", st, err)
	}
	for _, want := range []string{
		`raftkms_requests_total{action="GenerateDataKey",code="OK"} 3`,
		`raftkms_requests_total{action="CreateKey",code="OK"} 1`,
		`raftkms_requests_total{action="Decrypt",code="InvalidParameter"} 1`,
		`raftkms_requests_total{action="unknown",code="InvalidAction.NotFound"} 1`,
		`raftkms_request_duration_seconds_count{action="GenerateDataKey"} 3`,
		`raftkms_requests_local_total 3`,
		`raftkms_writes_total 1`,
		`raftkms_raft_leader 1`,
		`raftkms_ready 1`,
		`raftkms_lease_held 1`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
