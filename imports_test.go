package raftkms

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/raftkms/raftkms"

// allowedImports lists, for each of our packages, the packages of ours it
// may depend on (directly or not): the table of docs/ARCHITECTURE.md.
// A package missing from the table may import nothing of ours.
var allowedImports = map[string][]string{
	"crypto":       {},
	"hsm":          {"crypto"},
	"policy":       {"crypto"},
	"trail":        {"crypto"},
	"fsm":          {"crypto", "trail"},
	"cluster":      {"fsm", "crypto", "trail"},
	"api/sign":     {},
	"api/replay":   {},
	"api/client":   {"api/sign"},
	"api":          {"api/sign", "api/replay", "cluster", "fsm", "crypto", "policy", "trail"},
	"cmd/kmsd":     {"api", "api/sign", "api/replay", "cluster", "fsm", "crypto", "policy", "trail", "hsm"},
	"cmd/kmsctl":   {"api/client", "api/sign", "policy", "trail"}, // policy: kmsctl policy eval/test run the engine offline
	"bench":        {"api/client", "api/sign"},
	"cmd/kmsbench": {"bench", "api/client", "api/sign"},
	"jepsen":       {"api/client", "api/sign"},
}

func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for dec.More() {
		var p struct {
			ImportPath string
			Deps       []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		if rel == "" || rel == "integration" {
			continue // documentation and end-to-end tests
		}
		allowed, ok := allowedImports[rel]
		if !ok {
			t.Errorf("package %s is not in the import table: add it to allowedImports and docs/ARCHITECTURE.md", rel)
			continue
		}
		checked++
		for _, d := range p.Deps {
			dep, ours := strings.CutPrefix(d, module+"/")
			if !ours {
				continue
			}
			if !contains(allowed, dep) {
				t.Errorf("%s depends on %s, which the architecture does not allow", rel, dep)
			}
		}
	}
	if checked < 8 {
		t.Fatalf("checked only %d packages", checked)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
