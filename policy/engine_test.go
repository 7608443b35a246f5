package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

type golden struct {
	Modules      map[string]string
	UserPolicies []struct{ Account, User, Name, Document string } `json:"user_policies"`
	Cases        []struct {
		Name    string
		Modules []string
		Input   Input
		Allow   bool
		Reasons []string
	}
}

func loadGolden(t testing.TB) golden {
	t.Helper()
	b, err := os.ReadFile("testdata/decisions.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// fixed is an InputBuilder over a prepared Input.
type fixed struct {
	in     *Input
	digest uint64
}

func (f fixed) BuildInput(in *Input)  { *in = *f.in }
func (f fixed) ContextDigest() uint64 { return f.digest }

func request(in *Input) Request {
	r := Request{AccessKeyID: "AK-" + in.Principal.Account + "-" + in.Principal.Name, Action: in.Action}
	if in.Principal.Type == "user" {
		r.User = in.Principal.Account + "/" + in.Principal.Name
	}
	if in.Resource != nil {
		r.Account, r.KeyID, r.Alias = in.Resource.Account, in.Resource.ARN, in.Resource.Alias
		if in.Resource.Class == "service" {
			r.ServiceProduct = in.Resource.Creator
		}
	}
	return r
}

// TestGoldenDecisions runs the decisions in testdata/decisions.json, with
// and without the cache.
func TestGoldenDecisions(t *testing.T) {
	g := loadGolden(t)
	var users []UserPolicy
	for _, p := range g.UserPolicies {
		users = append(users, UserPolicy{p.Account, p.User, p.Name, p.Document})
	}
	for i, c := range g.Cases {
		t.Run(c.Name, func(t *testing.T) {
			var mods []Module
			for _, m := range c.Modules {
				mods = append(mods, Module{Name: m, Source: g.Modules[m]})
			}
			e, err := New(Config{})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Update(context.Background(), uint64(i+1), mods, users); err != nil {
				t.Fatal(err)
			}
			want := c.Reasons
			if want == nil {
				want = []string{}
			}
			for _, decide := range []string{"evaluate", "decide", "decide again (cached)"} {
				var d Decision
				var err error
				if decide == "evaluate" {
					d, err = e.Evaluate(context.Background(), &c.Input)
				} else {
					d, err = e.Decide(context.Background(), request(&c.Input), fixed{in: &c.Input})
				}
				if err != nil {
					t.Fatal(err)
				}
				got := d.Reasons
				if got == nil {
					got = []string{}
				}
				if d.Allow != c.Allow || !slices.Equal(got, want) {
					t.Fatalf("%s: allow=%v reasons=%q, want allow=%v reasons=%q", decide, d.Allow, got, c.Allow, want)
				}
			}
		})
	}
}

// TestDecisionsThatDoNotReadTheKeyAreSharedAcrossKeys: with only the
// built-in rules, a root's decision is the same for every customer key of
// its account, so a node using a million keys evaluates Rego once, not a
// million times — but never shares one across accounts, service keys, or
// for users whose documents match ARNs and tags, or once a module is
// published.
func TestDecisionsThatDoNotReadTheKeyAreSharedAcrossKeys(t *testing.T) {
	ctx := context.Background()
	e, _ := New(Config{})
	if err := e.Update(ctx, 1, nil, []UserPolicy{{"111", "alice", "p", `{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"acs:kms:*:*:key/key-1"}]}`}}); err != nil {
		t.Fatal(err)
	}
	decide := func(typ, name, keyID, class string) (Decision, bool) {
		in := Input{Action: "kms:Decrypt", Principal: Principal{Account: "111", Type: typ, Name: name},
			Resource: &Resource{Account: "111", ARN: "acs:kms:cn-hangzhou:111:key/" + keyID, KeyID: keyID, Class: class, Creator: "111"}}
		if class == "service" {
			in.Resource.Creator = "ecs"
		}
		h0, _ := e.Stats()
		d, err := e.Decide(ctx, request(&in), fixed{&in, 1})
		if err != nil {
			t.Fatal(err)
		}
		h1, _ := e.Stats()
		return d, h1 > h0
	}
	if d, hit := decide("root", "", "key-1", "customer"); !d.Allow || hit {
		t.Fatalf("first decision: allow %v hit %v", d.Allow, hit)
	}
	if d, hit := decide("root", "", "key-2", "customer"); !d.Allow || !hit {
		t.Fatalf("another key of the account: allow %v, from the cache %v; want one shared decision", d.Allow, hit)
	}
	if d, _ := decide("root", "", "key-3", "service"); d.Allow {
		t.Fatal("a root's decision on a customer key was served for a service key")
	}
	if d, _ := decide("user", "alice", "key-1", "customer"); !d.Allow {
		t.Fatal("alice's document allows key-1")
	}
	if d, _ := decide("user", "alice", "key-2", "customer"); d.Allow {
		t.Fatal("alice's decision on key-1 was served for key-2: documents match ARNs")
	}
	if err := e.Update(ctx, 2, []Module{{"m", "package kms.custom\n\ndeny contains \"no key-2\" if input.resource.key_id == \"key-2\"\n"}}, nil); err != nil {
		t.Fatal(err)
	}
	decide("root", "", "key-1", "customer")
	if d, _ := decide("root", "", "key-2", "customer"); d.Allow {
		t.Fatal("with a module published, a decision on key-1 was served for key-2")
	}
}

func TestContextDependentDecisionsAreCachedPerContext(t *testing.T) {
	g := loadGolden(t)
	var users []UserPolicy
	for _, p := range g.UserPolicies {
		users = append(users, UserPolicy{p.Account, p.User, p.Name, p.Document})
	}
	e, _ := New(Config{})
	if err := e.Update(context.Background(), 7, nil, users); err != nil {
		t.Fatal(err)
	}
	in := Input{Action: "kms:Decrypt", Principal: Principal{Account: "111", Type: "user", Name: "bob"},
		Resource: &Resource{Account: "111", ARN: "acs:kms:cn-hangzhou:111:key/key-1", Class: "customer", Creator: "111"}}
	orders, users2 := in, in
	orders.Context.EncryptionContext = map[string]string{"table": "orders"}
	users2.Context.EncryptionContext = map[string]string{"table": "users"}
	r := request(&in)
	if d, _ := e.Decide(context.Background(), r, fixed{&orders, 1}); !d.Allow {
		t.Fatal("orders context denied")
	}
	if d, _ := e.Decide(context.Background(), r, fixed{&users2, 2}); d.Allow {
		t.Fatal("a cached allow leaked to another encryption context")
	}
	// Alice's documents do not read the context: one entry serves all.
	alice := Input{Action: "kms:Encrypt", Principal: Principal{Account: "111", Type: "user", Name: "alice"},
		Resource: &Resource{Account: "111", ARN: "acs:kms:cn-hangzhou:111:key/key-1", Class: "customer", Creator: "111"}}
	e.Decide(context.Background(), request(&alice), fixed{&alice, 1})
	h0, _ := e.Stats()
	e.Decide(context.Background(), request(&alice), fixed{&alice, 99})
	if h1, _ := e.Stats(); h1 != h0+1 {
		t.Fatal("a context-independent decision was not served from the cache for another context")
	}
}

func TestUpdateRefusesBadModulesAndKeepsTheCurrentPolicies(t *testing.T) {
	e, _ := New(Config{})
	cases := map[string]Module{
		"does not compile":    {Name: "bad", Source: "package kms.custom\nallow contains x if {"},
		"outside kms.custom":  {Name: "sneaky", Source: "package kms.authz\nallowed := true\n"},
		"conflicts with base": {Name: "dup", Source: "package kms.custom\nallow := true\n"},
		"reads the clock":     {Name: "clock", Source: "package kms.custom\ndeny contains \"late\" if time.now_ns() > 0\n"},
		"calls out":           {Name: "net", Source: "package kms.custom\ndeny contains \"x\" if http.send({\"method\": \"get\", \"url\": \"http://x\"}).status_code != 200\n"},
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			if err := Check(context.Background(), []Module{m}); !errors.Is(err, ErrModule) {
				t.Fatalf("Check err = %v, want ErrModule", err)
			}
			if err := e.Update(context.Background(), 5, []Module{m}, nil); err == nil {
				t.Fatal("Update accepted a bad module")
			}
			if e.Version() != 0 {
				t.Fatalf("a failed Update moved the version to %d", e.Version())
			}
		})
	}
	if err := e.Update(context.Background(), 6, nil, []UserPolicy{{"1", "u", "p", `{"Statement":[{"Effect":"Maybe","Action":"kms:*"}]}`}}); !errors.Is(err, ErrDocument) {
		t.Fatalf("Update with a bad document err = %v, want ErrDocument", err)
	}
}

// TestDocumentChangesTakeEffectUserByUser: each Update makes exactly the
// documents it is given effective — added, changed, removed, a whole
// account gone — and one that fails leaves the previous ones in force,
// while decisions run concurrently.
func TestDocumentChangesTakeEffectUserByUser(t *testing.T) {
	ctx := context.Background()
	e, _ := New(Config{})
	allow := func(action string) string {
		return `{"Statement":[{"Effect":"Allow","Action":"` + action + `","Resource":"*"}]}`
	}
	may := func(account, user, action string) bool {
		in := &Input{Action: action, Principal: Principal{Account: account, Type: "user", Name: user},
			Resource: &Resource{Account: account, ARN: "acs:kms:r:" + account + ":key/k", Class: "customer", Creator: account}}
		d, err := e.Evaluate(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		return d.Allow
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // decisions while the documents change, for the race detector
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				may("1", "a", "kms:Encrypt")
			}
		}
	}()
	defer func() { close(stop); <-done }()

	steps := []struct {
		users []UserPolicy
		want  map[[3]string]bool
	}{
		{[]UserPolicy{{"1", "a", "p", allow("kms:Encrypt")}, {"1", "b", "p", allow("kms:Decrypt")}, {"2", "c", "p", allow("kms:Encrypt")}},
			map[[3]string]bool{{"1", "a", "kms:Encrypt"}: true, {"1", "b", "kms:Decrypt"}: true, {"1", "b", "kms:Encrypt"}: false, {"2", "c", "kms:Encrypt"}: true}},
		// b's document changes, a gains a second one, account 2 goes.
		{[]UserPolicy{{"1", "a", "p", allow("kms:Encrypt")}, {"1", "a", "q", allow("kms:Decrypt")}, {"1", "b", "p", allow("kms:Encrypt")}},
			map[[3]string]bool{{"1", "a", "kms:Decrypt"}: true, {"1", "b", "kms:Decrypt"}: false, {"1", "b", "kms:Encrypt"}: true, {"2", "c", "kms:Encrypt"}: false}},
		// b's documents are all removed.
		{[]UserPolicy{{"1", "a", "p", allow("kms:Encrypt")}, {"1", "a", "q", allow("kms:Decrypt")}},
			map[[3]string]bool{{"1", "a", "kms:Encrypt"}: true, {"1", "b", "kms:Encrypt"}: false}},
	}
	for i, st := range steps {
		if err := e.Update(ctx, uint64(i+1), nil, st.users); err != nil {
			t.Fatal(err)
		}
		for q, want := range st.want {
			if got := may(q[0], q[1], q[2]); got != want {
				t.Errorf("step %d: %s/%s %s allowed = %v, want %v", i+1, q[0], q[1], q[2], got, want)
			}
		}
	}
	bad := []UserPolicy{{"1", "a", "p", allow("kms:GenerateDataKey")}, {"1", "z", "p", `{"Statement":[]}`}}
	if err := e.Update(ctx, 9, nil, bad); !errors.Is(err, ErrDocument) {
		t.Fatalf("Update with a bad document: %v", err)
	}
	if e.Version() != 3 || !may("1", "a", "kms:Encrypt") || may("1", "a", "kms:GenerateDataKey") {
		t.Fatal("a failed Update changed the documents in force")
	}
}

func TestParseDocument(t *testing.T) {
	good := []string{
		`{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}`,
		`{"Statement":[{"Effect":"Deny","Action":["kms:Decrypt"],"Condition":{"NotIpAddress":{"acs:SourceIp":["10.0.0.0/8","::1"]}}}]}`,
	}
	for _, d := range good {
		if _, _, err := ParseDocument(d); err != nil {
			t.Errorf("ParseDocument(%s): %v", d, err)
		}
	}
	bad := []string{
		`not json`, `{}`, `{"Statement":[]}`, `{"Version":"2","Statement":[{"Effect":"Allow","Action":"kms:*"}]}`,
		`{"Statement":[{"Effect":"allow","Action":"kms:*"}]}`,
		`{"Statement":[{"Effect":"Allow","Action":[]}]}`,
		`{"Statement":[{"Effect":"Allow","Action":"Encrypt"}]}`,
		`{"Statement":[{"Effect":"Allow","Action":"kms:*","Condition":{"NumericEquals":{"acs:SourceIp":"1"}}}]}`,
		`{"Statement":[{"Effect":"Allow","Action":"kms:*","Condition":{"IpAddress":{"acs:SourceIp":"not-an-ip"}}}]}`,
		`{"Statement":[{"Effect":"Allow","Action":"kms:*","Condition":{"StringEquals":{"acs:UserAgent":"x"}}}]}`,
		`{"Statement":[{"Effect":"Allow","Action":"kms:*","Principal":"*"}]}`,
	}
	for _, d := range bad {
		if _, _, err := ParseDocument(d); !errors.Is(err, ErrDocument) {
			t.Errorf("ParseDocument(%s) err = %v, want ErrDocument", d, err)
		}
	}
}

func TestDecisionCacheIsBounded(t *testing.T) {
	e, _ := New(Config{CacheSize: 2})
	in := Input{Action: "kms:Encrypt", Principal: Principal{Account: "1", Type: "root", AccessKeyID: "AK"}}
	for _, a := range []string{"kms:A", "kms:B", "kms:C", "kms:D"} {
		in.Action = a
		e.Decide(context.Background(), request(&in), fixed{in: &in})
	}
	if n := len(e.cache); n > 2 {
		t.Fatalf("cache holds %d entries, bound is 2", n)
	}
}

func benchInput() *Input {
	return &Input{Action: "kms:GenerateDataKey", Principal: Principal{Account: "111", Type: "root", AccessKeyID: "AK1"},
		Resource: &Resource{Account: "111", ARN: "acs:kms:cn-hangzhou:111:key/key-1", KeyID: "key-1", Class: "customer", Creator: "111"}}
}

// BenchmarkDecideCached is the fast-path cost of a decision.
func BenchmarkDecideCached(b *testing.B) {
	e, _ := New(Config{})
	in := benchInput()
	r := request(in)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if d, _ := e.Decide(context.Background(), r, fixed{in: in}); !d.Allow {
				b.Fatal("denied")
			}
		}
	})
}

// BenchmarkEvaluateUncached is one full Rego evaluation (root principal).
func BenchmarkEvaluateUncached(b *testing.B) {
	e, _ := New(Config{})
	in := benchInput()
	b.ReportAllocs()
	for b.Loop() {
		if d, _ := e.Evaluate(context.Background(), in); !d.Allow {
			b.Fatal("denied")
		}
	}
}

// BenchmarkEvaluateUserPolicy is one evaluation of a user with a policy
// document of 10 statements.
func BenchmarkEvaluateUserPolicy(b *testing.B) {
	e, _ := New(Config{})
	doc := `{"Statement":[`
	for i := range 9 {
		doc += `{"Effect":"Allow","Action":"kms:Describe` + string(rune('A'+i)) + `","Resource":"*"},`
	}
	doc += `{"Effect":"Allow","Action":"kms:GenerateDataKey","Resource":"acs:kms:*:*:key/*","Condition":{"StringEquals":{"kms:tag/env":"dev"}}}]}`
	if err := e.Update(context.Background(), 1, nil, []UserPolicy{{"111", "u", "p", doc}}); err != nil {
		b.Fatal(err)
	}
	in := benchInput()
	in.Principal.Type, in.Principal.Name = "user", "u"
	in.Resource.Tags = map[string]string{"env": "dev"}
	b.ReportAllocs()
	for b.Loop() {
		if d, _ := e.Evaluate(context.Background(), in); !d.Allow {
			b.Fatal("denied", d.Reasons)
		}
	}
}

// BenchmarkUpdate is the cost, on every node, of one change to the
// policies while N users have documents: a change to one user's documents,
// and a change to the Rego modules (which recompiles them).
func BenchmarkUpdate(b *testing.B) {
	g := loadGolden(b)
	var mods []Module
	for name, src := range g.Modules {
		mods = append(mods, Module{name, src})
	}
	for _, n := range []int{1000, 10000} {
		var users []UserPolicy
		for i := range n {
			users = append(users, UserPolicy{"111", fmt.Sprint("user", i), "p",
				`{"Statement":[{"Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt"],"Resource":"acs:kms:*:*:key/*","Condition":{"StringEquals":{"kms:tag/team":"t` + fmt.Sprint(i%10) + `"}}}]}`})
		}
		e, _ := New(Config{})
		if err := e.Update(context.Background(), 1, mods, users); err != nil {
			b.Fatal(err)
		}
		v := uint64(1)
		b.Run(fmt.Sprintf("one-user-of-%d", n), func(b *testing.B) {
			for b.Loop() {
				v++
				users[0].Document = fmt.Sprintf(`{"Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"acs:kms:*:*:key/k%d"}]}`, v)
				if err := e.Update(context.Background(), v, mods, users); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("modules-with-%d", n), func(b *testing.B) {
			for b.Loop() {
				v++
				m := append(slices.Clone(mods), Module{"extra", fmt.Sprintf("package kms.custom.extra\n\ndeny contains \"no\" if input.action == \"kms:X%d\"\n", v)})
				if err := e.Update(context.Background(), v, m, users); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestExamplePoliciesPassTheirTests runs examples/policies' Rego tests and
// checks the example documents parse.
func TestExamplePoliciesPassTheirTests(t *testing.T) {
	results, err := RunTests(context.Background(), "../examples/policies")
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 8 {
		t.Fatalf("ran %d example tests, want at least 8", len(results))
	}
	for _, r := range results {
		if !r.Pass {
			t.Errorf("%s.%s: %s", r.Package, r.Name, r.Error)
		}
	}
	docs, _ := filepath.Glob("../examples/policies/documents/*.json")
	if len(docs) == 0 {
		t.Fatal("no example documents")
	}
	for _, d := range docs {
		b, _ := os.ReadFile(d)
		if _, _, err := ParseDocument(string(b)); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
}

func TestRunTestsReportsFailures(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x_test.rego"), []byte("package tests.x\n\ntest_fails if { 1 == 2 }\n"), 0o644)
	results, err := RunTests(context.Background(), dir)
	if err != nil || len(results) != 1 || results[0].Pass {
		t.Fatalf("RunTests = %+v, %v", results, err)
	}
}

func TestTestsInsideKmsCustomAreRejectedWithAHint(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x_test.rego"), []byte("package kms.custom.x\n\ntest_ok if { true }\n"), 0o644)
	_, err := RunTests(context.Background(), dir)
	if !errors.Is(err, ErrModule) || !strings.Contains(err.Error(), "package tests.x") {
		t.Fatalf("RunTests error = %v, want a hint to use package tests.x", err)
	}
}
