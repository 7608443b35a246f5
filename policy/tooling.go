package policy

import (
	"cmp"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestResult is the outcome of one Rego unit test.
type TestResult struct {
	Package  string        `json:"package"`
	Name     string        `json:"name"`
	Pass     bool          `json:"pass"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// RunTests runs the Rego unit tests (rules named test_*) of every .rego
// file under dir, with raftkms's built-in modules loaded, as `opa test`
// would: authors test their modules against the real decision,
// data.kms.authz.decision. Tests can supply user policy documents with
// `with data.raftkms.user_policies as {...}`.
func RunTests(ctx context.Context, dir string) ([]TestResult, error) {
	src, err := builtinModules()
	if err != nil {
		return nil, err
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".rego") {
			return err
		}
		b, err := os.ReadFile(path)
		src[path] = string(b)
		return err
	})
	if err != nil {
		return nil, err
	}
	modules := map[string]*ast.Module{}
	for name, s := range src {
		m, err := ast.ParseModuleWithOpts(name, s, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, fmt.Errorf("%w %s: %v", ErrModule, name, err)
		}
		if inCustomPackage(m) {
			if err := checkCustomModule(name, m); err != nil {
				return nil, err
			}
		}
		modules[name] = m
	}
	store := inmem.NewFromObject(map[string]any{"raftkms": map[string]any{"user_policies": map[string]any{}}})
	ch, err := tester.NewRunner().SetStore(store).SetTimeout(time.Minute).Run(ctx, modules)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrModule, err)
	}
	var out []TestResult
	for r := range ch {
		tr := TestResult{Package: strings.TrimPrefix(r.Package, "data."), Name: r.Name, Pass: r.Pass(), Duration: r.Duration}
		if r.Error != nil {
			tr.Error = r.Error.Error()
		} else if r.Fail {
			tr.Error = "failed"
			if r.FailedAt != nil {
				tr.Error = "failed at " + r.FailedAt.String()
			}
		}
		out = append(out, tr)
	}
	slices.SortFunc(out, func(a, b TestResult) int {
		return cmp.Or(cmp.Compare(a.Package, b.Package), cmp.Compare(a.Name, b.Name))
	})
	return out, nil
}

// EvaluateFiles decides input under the built-in modules, the given author
// modules and user policy documents, offline (kmsctl policy eval).
func EvaluateFiles(ctx context.Context, in *Input, modules []Module, users []UserPolicy) (Decision, error) {
	e, err := New(Config{})
	if err != nil {
		return Decision{}, err
	}
	if err := e.Update(ctx, 1, modules, users); err != nil {
		return Decision{}, err
	}
	return e.Evaluate(ctx, in)
}
