package policy

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
)

//go:embed builtin/*.rego
var builtinFS embed.FS

// Errors of the engine.
var (
	// ErrEvaluation is returned (wrapped) when a policy fails to evaluate;
	// the request is then denied.
	ErrEvaluation = errors.New("policy: evaluation failed")
	// ErrModule is returned (wrapped, with the compiler's message) for a
	// module that does not compile or is not in package kms.custom.
	ErrModule = errors.New("policy: invalid Rego module")
)

// CustomPackage is the package (or package prefix) of policy authors' modules.
const CustomPackage = "kms.custom"

// Principal is input.principal.
type Principal struct {
	Account     string `json:"account"`
	Type        string `json:"type"` // root, user or service
	Name        string `json:"name,omitempty"`
	AccessKeyID string `json:"access_key_id"`
	ProductCode string `json:"product_code,omitempty"`
	System      bool   `json:"system"` // the principal belongs to the system account
}

// Resource is input.resource: the key a request acts on.
type Resource struct {
	Account         string            `json:"account"`
	ARN             string            `json:"arn"`
	KeyID           string            `json:"key_id"`
	Alias           string            `json:"alias,omitempty"`
	Tags            map[string]string `json:"tags"`
	Class           string            `json:"class"` // customer or service
	Instance        string            `json:"instance,omitempty"`
	ProtectionLevel string            `json:"protection_level"`
	State           string            `json:"state"`
	Creator         string            `json:"creator"` // the account, or a service key's product code
}

// RequestContext is input.context.
type RequestContext struct {
	EncryptionContext map[string]string `json:"encryption_context"`
	SourceIP          string            `json:"source_ip"`
	SecureTransport   bool              `json:"secure_transport"`
	Time              string            `json:"time"` // RFC 3339
	Region            string            `json:"region"`
}

// Input is the document every decision is made over.
type Input struct {
	Action    string         `json:"action"` // e.g. kms:GenerateDataKey
	Principal Principal      `json:"principal"`
	Resource  *Resource      `json:"resource,omitempty"`
	Context   RequestContext `json:"context"`
}

// Decision is the outcome of one evaluation.
type Decision struct {
	Allow   bool
	Reasons []string // why not, when denied
}

// Request names a decision for the cache: who (the AccessKey), what (the
// action) and on what (the key and its revision, which changes with any of
// the key's attributes). With the policy version, this fixes every input
// field except the request context; a decision that may depend on the
// context (see Engine) is cached per context as well.
type Request struct {
	AccessKeyID string
	User        string // "account/user" when the principal is a user, else ""
	Action      string // e.g. kms:GenerateDataKey
	Account     string // the resource's account; "" for account-level actions
	KeyID       string // the resource key; "" for account-level actions
	Alias       string // the alias the request named the key by, if it did
	KeyRevision uint64
	// ServiceProduct is the product of a service key ("" for a customer
	// key): what a decision that does not depend on the key itself (see
	// Engine.Decide) still depends on.
	ServiceProduct string
}

// InputBuilder gives what a decision needs beyond its Request, on demand:
// Decide builds the full Input only on a cache miss, and asks for a digest
// of the request context only when the policies read it.
type InputBuilder interface {
	BuildInput(in *Input)
	// ContextDigest summarises input.context (source IP, TLS, encryption
	// context, time to the second).
	ContextDigest() uint64
}

// Module is a policy author's Rego module.
type Module struct{ Name, Source string }

// UserPolicy is a RAM-style document attached to a user.
type UserPolicy struct{ Account, User, Name, Document string }

// Config configures an Engine.
type Config struct {
	// CacheSize bounds the decision cache (entries); default 100000.
	CacheSize int
}

// Engine evaluates the policies. It is safe for concurrent use.
//
// Rego modules are compiled into a prepared query when they change; the
// users' policy documents are data (data.raftkms.user_policies) in an
// in-memory store the query reads at evaluation, rewritten one account at
// a time, so a change to one user's documents costs that account, not the
// whole policy set.
type Engine struct {
	cfg      Config
	prepared atomic.Pointer[compiled]
	mu       sync.RWMutex
	cache    map[cacheKey]Decision
	hits     atomic.Uint64
	misses   atomic.Uint64

	loading sync.Mutex // serialises Update; guards the fields below
	store   storage.Store
	modules []Module  // what prepared's query was compiled from
	docs    documents // what store holds
}

// compiled is one version of the policies, ready to evaluate.
type compiled struct {
	version uint64
	query   rego.PreparedEvalQuery
	// contextAll: a custom module reads input.context, so every decision
	// may depend on it. contextUsers: users ("account/user") whose
	// documents have context conditions.
	contextAll   bool
	contextUsers map[string]bool
	// custom: authors' modules are published (they may read anything).
	// docUsers: users ("account/user") with policy documents, which match
	// key ARNs and tags.
	custom   bool
	docUsers map[string]bool
}

type cacheKey struct {
	version uint64
	Request
	context uint64 // ContextDigest, when the decision may depend on it
}

// New compiles the built-in modules and returns an Engine at version 0.
func New(cfg Config) (*Engine, error) {
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 100000
	}
	e := &Engine{cfg: cfg, cache: make(map[cacheKey]Decision), store: newDocumentStore(), docs: documents{}}
	if err := e.Update(context.Background(), 0, nil, nil); err != nil {
		return nil, err
	}
	return e, nil
}

func builtinModules() (map[string]string, error) {
	out := map[string]string{}
	err := fs.WalkDir(builtinFS, "builtin", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := builtinFS.ReadFile(path)
		out[path] = string(b)
		return err
	})
	return out, err
}

// Version returns the policy version the engine decides under.
func (e *Engine) Version() uint64 { return e.prepared.Load().version }

// Update makes a version of the policies current — the built-in modules,
// the authors' modules and the users' documents — unless the engine
// already has that version. Modules are recompiled only when they changed,
// documents re-read only for the users whose documents changed. If the
// modules do not compile or a document does not parse, the current
// policies stay and the error is returned.
func (e *Engine) Update(ctx context.Context, version uint64, modules []Module, users []UserPolicy) error {
	e.loading.Lock()
	defer e.loading.Unlock()
	cur := e.prepared.Load()
	if cur != nil && cur.version == version {
		return nil
	}
	next := &compiled{version: version}
	if cur != nil && slices.Equal(e.modules, modules) {
		next.query, next.contextAll = cur.query, cur.contextAll
	} else {
		var err error
		if next.query, next.contextAll, err = compile(ctx, modules, e.store); err != nil {
			return err
		}
	}
	docs, changed, err := e.docs.update(users)
	if err != nil {
		return err
	}
	if err := writeDocuments(ctx, e.store, docs, changed); err != nil {
		return err
	}
	e.docs, e.modules = docs, slices.Clone(modules)
	next.contextUsers, next.docUsers = docs.users()
	next.custom = len(modules) > 0
	e.prepared.Store(next)
	e.mu.Lock()
	clear(e.cache)
	e.mu.Unlock()
	return nil
}

// Check compiles modules with the built-in ones, as Update would, without
// changing the engine: publishing a module that does not compile is
// refused before it reaches the cluster.
func Check(ctx context.Context, modules []Module) error {
	_, _, err := compile(ctx, modules, newDocumentStore())
	return err
}

func packageName(m *ast.Module) string {
	return strings.TrimPrefix(m.Package.Path.String(), "data.")
}

func inCustomPackage(m *ast.Module) bool {
	pkg := packageName(m)
	return pkg == CustomPackage || strings.HasPrefix(pkg, CustomPackage+".")
}

func ruleName(r *ast.Rule) string {
	if len(r.Head.Reference) > 0 {
		return r.Head.Reference[len(r.Head.Reference)-1].String()
	}
	return r.Head.Name.String()
}

// refusedBuiltins are Rego built-ins an author module may not call: a
// decision must depend on its input alone (it is cached, and every node
// must reach the same one), and must not reach the network.
var refusedBuiltins = map[string]string{
	"http.send":            "a decision never leaves the node",
	"net.lookup_ip_addr":   "a decision never leaves the node",
	"time.now_ns":          "decisions are cached; read input.context.time",
	"rand.intn":            "a decision depends on its input alone",
	"uuid.rfc4122":         "a decision depends on its input alone",
	"opa.runtime":          "a decision depends on its input alone",
	"io.jwt.decode_verify": "it reads the clock; decode with io.jwt.decode and compare input.context.time",
}

// checkCustomModule enforces the contract of an author module: allow and
// deny are sets of reasons, and tests live outside package kms.custom
// (the decision reads every rule under it, so a test there that reads the
// decision would depend on itself).
func checkCustomModule(name string, m *ast.Module) error {
	var refused error
	ast.WalkRefs(m, func(r ast.Ref) bool {
		if why, ok := refusedBuiltins[r.String()]; ok && refused == nil {
			refused = fmt.Errorf("%w %s: line %d: %s is not available to policies: %s", ErrModule, name, r[0].Location.Row, r, why)
		}
		return refused != nil
	})
	if refused != nil {
		return refused
	}
	for _, r := range m.Rules {
		rn := ruleName(r)
		if (rn == "allow" || rn == "deny") && r.Head.RuleKind() != ast.MultiValue {
			return fmt.Errorf("%w %s: line %d: %s must be a set of reasons: write `%s contains \"why\" if { … }`",
				ErrModule, name, r.Location.Row, rn, rn)
		}
		if strings.HasPrefix(rn, "test_") {
			return fmt.Errorf("%w %s: line %d: tests belong in their own package outside %s (for example package tests.%s)",
				ErrModule, name, r.Location.Row, CustomPackage, strings.TrimPrefix(strings.TrimPrefix(packageName(m), CustomPackage), "."))
		}
	}
	return nil
}

// compile prepares the decision query over the built-in and the authors'
// modules, reading data from store. It reports whether a module reads
// input.context.
func compile(ctx context.Context, modules []Module, store storage.Store) (rego.PreparedEvalQuery, bool, error) {
	var q rego.PreparedEvalQuery
	src, err := builtinModules()
	if err != nil {
		return q, false, err
	}
	contextAll := false
	for _, m := range modules {
		parsed, err := ast.ParseModuleWithOpts(m.Name, m.Source, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return q, false, fmt.Errorf("%w %s: %v", ErrModule, m.Name, err)
		}
		if !inCustomPackage(parsed) {
			return q, false, fmt.Errorf("%w %s: package %s: author modules live in package %s or below it",
				ErrModule, m.Name, packageName(parsed), CustomPackage)
		}
		if err := checkCustomModule(m.Name, parsed); err != nil {
			return q, false, err
		}
		contextAll = contextAll || readsContext(parsed)
		src["custom/"+m.Name+".rego"] = m.Source
	}
	opts := []func(*rego.Rego){rego.Query("data.kms.authz.decision"), rego.Store(store)}
	names := make([]string, 0, len(src))
	for n := range src {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		opts = append(opts, rego.Module(n, src[n]))
	}
	q, err = rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return q, false, fmt.Errorf("%w: %v", ErrModule, err)
	}
	return q, contextAll, nil
}

// readsContext reports whether a module refers to input.context.
func readsContext(m *ast.Module) bool {
	found := false
	ast.WalkRefs(m, func(r ast.Ref) bool {
		if len(r) >= 2 && r[0].Equal(ast.InputRootDocument) {
			if s, ok := r[1].Value.(ast.String); ok && s == "context" {
				found = true
			}
		} else if len(r) == 1 && r[0].Equal(ast.InputRootDocument) {
			found = true // all of input, context included
		}
		return found
	})
	return found
}

// Decide returns the decision for r, from the cache when r was decided
// under the current policies (and, if they read it, the same request
// context), else by evaluating the Input b builds. The strings of r may
// alias buffers the caller reuses: Decide copies what it keeps.
func (e *Engine) Decide(ctx context.Context, r Request, b InputBuilder) (Decision, error) {
	c := e.prepared.Load()
	k := cacheKey{version: c.version, Request: r}
	if !c.custom && (r.User == "" || !c.docUsers[r.User]) {
		// Only the built-in rules decide, and for this principal they read
		// of the key only its account and whether it is a service key (and
		// whose): one decision serves every key alike.
		k.KeyID, k.Alias, k.KeyRevision = "", "", 0
	}
	if c.contextAll || (r.User != "" && c.contextUsers[r.User]) {
		k.context = b.ContextDigest()
	}
	e.mu.RLock()
	d, ok := e.cache[k]
	e.mu.RUnlock()
	if ok {
		e.hits.Add(1)
		return d, nil
	}
	e.misses.Add(1)
	var in Input
	b.BuildInput(&in)
	d, err := evaluate(ctx, c.query, &in)
	if err != nil {
		return Decision{Reasons: []string{"policy evaluation failed"}}, err
	}
	k.Request = Request{strings.Clone(k.AccessKeyID), strings.Clone(k.User), strings.Clone(k.Action),
		strings.Clone(k.Account), strings.Clone(k.KeyID), strings.Clone(k.Alias), k.KeyRevision, strings.Clone(k.ServiceProduct)}
	e.mu.Lock()
	if len(e.cache) >= e.cfg.CacheSize {
		clear(e.cache) // crude but bounded; decisions are cheap to recompute
	}
	e.cache[k] = d
	e.mu.Unlock()
	return d, nil
}

// Evaluate decides without the cache (for policy tooling and benchmarks).
func (e *Engine) Evaluate(ctx context.Context, in *Input) (Decision, error) {
	return evaluate(ctx, e.prepared.Load().query, in)
}

func evaluate(ctx context.Context, q rego.PreparedEvalQuery, in *Input) (Decision, error) {
	v, err := ast.InterfaceToValue(in)
	if err != nil {
		return Decision{}, fmt.Errorf("%w: input: %v", ErrEvaluation, err)
	}
	rs, err := q.Eval(ctx, rego.EvalParsedInput(v))
	if err != nil {
		return Decision{}, fmt.Errorf("%w: %v", ErrEvaluation, err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return Decision{}, fmt.Errorf("%w: no decision document", ErrEvaluation)
	}
	doc, ok := rs[0].Expressions[0].Value.(map[string]any)
	if !ok {
		return Decision{}, fmt.Errorf("%w: decision is %T, not an object", ErrEvaluation, rs[0].Expressions[0].Value)
	}
	var d Decision
	d.Allow, _ = doc["allow"].(bool)
	if rs, ok := doc["reasons"].([]any); ok {
		for _, r := range rs {
			if s, ok := r.(string); ok {
				d.Reasons = append(d.Reasons, s)
			}
		}
	}
	slices.Sort(d.Reasons)
	return d, nil
}

// Stats returns decision cache hits and misses since start.
func (e *Engine) Stats() (hits, misses uint64) { return e.hits.Load(), e.misses.Load() }
