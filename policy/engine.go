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
)

//go:embed builtin/*.rego
var builtinFS embed.FS

// ErrEvaluation is returned (wrapped) when a policy fails to evaluate; the
// request is then denied.
var ErrEvaluation = errors.New("policy: evaluation failed")

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
	Creator         string            `json:"creator"`
}

// RequestContext is input.context.
type RequestContext struct {
	EncryptionContext map[string]string `json:"encryption_context"`
	SourceIP          string            `json:"source_ip"`
	SecureTransport   bool              `json:"secure_transport"`
	Time              string            `json:"time"` // RFC 3339
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

// Config configures an Engine.
type Config struct {
	// CacheSize bounds the decision cache (entries); default 100000.
	CacheSize int
}

// Engine evaluates the policies. It is safe for concurrent use.
type Engine struct {
	cfg      Config
	prepared atomic.Pointer[compiled]
	mu       sync.RWMutex
	cache    map[cacheKey]Decision
	hits     atomic.Uint64
	misses   atomic.Uint64
}

type compiled struct {
	version uint64
	query   rego.PreparedEvalQuery
}

// Request names a decision: the principal's AccessKey, the action and the
// resource. Every input field the built-in rules read follows from these
// (the principal from its AccessKey, the key's account from its id), so
// they, with the policy version, key the decision cache. (When policies
// can read more — tags, context, time — the key grows with them.)
type Request struct {
	AccessKeyID string
	Action      string // e.g. kms:GenerateDataKey
	Account     string // the resource's account; "" for account-level actions
	KeyID       string // the resource key; "" for account-level actions
}

// InputBuilder fills the full Input of a request. Decide calls it only when
// the decision is not cached, so the fast path never builds an Input.
type InputBuilder interface {
	BuildInput(in *Input)
}

type cacheKey struct {
	version uint64
	Request
}

// New compiles the built-in modules and returns an Engine.
func New(cfg Config) (*Engine, error) {
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 100000
	}
	e := &Engine{cfg: cfg, cache: make(map[cacheKey]Decision)}
	modules, err := builtinModules()
	if err != nil {
		return nil, err
	}
	if err := e.load(context.Background(), 1, modules); err != nil {
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

// load compiles modules and, only if that succeeds, makes them current.
func (e *Engine) load(ctx context.Context, version uint64, modules map[string]string) error {
	opts := []func(*rego.Rego){rego.Query("data.kms.authz.decision")}
	names := make([]string, 0, len(modules))
	for n := range modules {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		opts = append(opts, rego.Module(n, modules[n]))
	}
	q, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return fmt.Errorf("policy: compile: %w", err)
	}
	e.prepared.Store(&compiled{version: version, query: q})
	e.mu.Lock()
	clear(e.cache)
	e.mu.Unlock()
	return nil
}

// Decide returns the decision for r, from the cache when r was decided under
// the current policies, else by evaluating the Input b builds. The strings
// of r may alias buffers the caller reuses: Decide copies what it keeps.
func (e *Engine) Decide(ctx context.Context, r Request, b InputBuilder) (Decision, error) {
	c := e.prepared.Load()
	k := cacheKey{version: c.version, Request: r}
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
	k.Request = Request{strings.Clone(r.AccessKeyID), strings.Clone(r.Action), strings.Clone(r.Account), strings.Clone(r.KeyID)}
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
