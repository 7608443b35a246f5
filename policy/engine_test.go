package policy

import (
	"context"
	"slices"
	"testing"
)

func newEngine(t testing.TB) *Engine {
	t.Helper()
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func keyIn(account string) *Resource {
	return &Resource{Account: account, ARN: "acs:kms:cn-hangzhou:" + account + ":key/key-1", KeyID: "key-1",
		Class: "customer", ProtectionLevel: "SOFTWARE", State: "Enabled", Creator: account}
}

func TestBuiltinDecisions(t *testing.T) {
	root := Principal{Account: "111", Type: "root", AccessKeyID: "AK1"}
	cases := []struct {
		name    string
		in      Input
		allow   bool
		reasons []string
	}{
		{"root acts on its own key", Input{Action: "kms:GenerateDataKey", Principal: root, Resource: keyIn("111")}, true, nil},
		{"root acts on its account", Input{Action: "kms:CreateKey", Principal: root}, true, nil},
		{"root of another account", Input{Action: "kms:Decrypt", Principal: root, Resource: keyIn("222")}, false,
			[]string{"no policy allows kms:Decrypt for a root principal", "the resource belongs to another account"}},
		{"system root administers the cluster", Input{Action: "cluster:RemoveClusterNode", Principal: Principal{Account: "111", Type: "root", AccessKeyID: "AK1", System: true}}, true, nil},
		{"another account's root cannot", Input{Action: "cluster:SaveClusterSnapshot", Principal: root}, false,
			[]string{"cluster administration is reserved to the system account's root", "no policy allows cluster:SaveClusterSnapshot for a root principal"}},
		{"user without policies", Input{Action: "kms:Encrypt", Principal: Principal{Account: "111", Type: "user", Name: "alice", AccessKeyID: "AK2"}, Resource: keyIn("111")}, false,
			[]string{"no policy allows kms:Encrypt for a user principal"}},
	}
	e := newEngine(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cached := func(ctx context.Context, in *Input) (Decision, error) { return e.Decide(ctx, request(in), fixed{in}) }
			for _, decide := range []func(context.Context, *Input) (Decision, error){cached, e.Evaluate, cached} {
				d, err := decide(context.Background(), &c.in)
				if err != nil {
					t.Fatal(err)
				}
				if d.Allow != c.allow || !slices.Equal(d.Reasons, c.reasons) {
					t.Fatalf("decision = %+v, want allow=%v reasons=%q", d, c.allow, c.reasons)
				}
			}
		})
	}
}

// fixed is an InputBuilder that hands out a prepared Input.
type fixed struct{ in *Input }

func (f fixed) BuildInput(in *Input) { *in = *f.in }

func request(in *Input) Request {
	r := Request{AccessKeyID: in.Principal.AccessKeyID, Action: in.Action}
	if in.Resource != nil {
		r.Account, r.KeyID = in.Resource.Account, in.Resource.KeyID
	}
	return r
}

func TestDecisionCacheServesRepeatsAndIsBounded(t *testing.T) {
	e, err := New(Config{CacheSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	in := Input{Action: "kms:Encrypt", Principal: Principal{Account: "1", Type: "root", AccessKeyID: "AK"}, Resource: keyIn("1")}
	for range 3 {
		e.Decide(context.Background(), request(&in), fixed{&in})
	}
	if h, m := e.Stats(); h != 2 || m != 1 {
		t.Fatalf("hits, misses = %d, %d; want 2, 1", h, m)
	}
	for _, a := range []string{"kms:A", "kms:B", "kms:C"} {
		in.Action = a
		e.Decide(context.Background(), request(&in), fixed{&in})
	}
	if n := len(e.cache); n > 2 {
		t.Fatalf("cache holds %d entries, bound is 2", n)
	}
}

func TestFailedCompileKeepsCurrentPolicies(t *testing.T) {
	e := newEngine(t)
	before := e.prepared.Load()
	if err := e.load(context.Background(), 2, map[string]string{"bad.rego": "package kms.authz\nallow if {"}); err == nil {
		t.Fatal("load accepted a module that does not compile")
	}
	if e.prepared.Load() != before {
		t.Fatal("a failed compile replaced the policies")
	}
}

func benchInput() *Input {
	return &Input{Action: "kms:GenerateDataKey", Principal: Principal{Account: "111", Type: "root", AccessKeyID: "AK1"}, Resource: keyIn("111")}
}

// BenchmarkDecideCached is the fast-path cost of a decision.
func BenchmarkDecideCached(b *testing.B) {
	e := newEngine(b)
	in := benchInput()
	r := request(in)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if d, _ := e.Decide(context.Background(), r, fixed{in}); !d.Allow {
				b.Fatal("denied")
			}
		}
	})
}

// BenchmarkEvaluateUncached is one full Rego evaluation.
func BenchmarkEvaluateUncached(b *testing.B) {
	e := newEngine(b)
	in := benchInput()
	b.ReportAllocs()
	for b.Loop() {
		if d, _ := e.Evaluate(context.Background(), in); !d.Allow {
			b.Fatal("denied")
		}
	}
}
