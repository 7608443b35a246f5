package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raftkms/raftkms/api"
)

func TestKebab(t *testing.T) {
	cases := map[string]string{
		"GenerateDataKey":                 "generate-data-key",
		"GenerateDataKeyWithoutPlaintext": "generate-data-key-without-plaintext",
		"ListAliasesByKeyId":              "list-aliases-by-key-id",
		"DKMSInstanceId":                  "dkms-instance-id",
		"ReEncrypt":                       "re-encrypt",
		"KeyId":                           "key-id",
		"NumberOfBytes":                   "number-of-bytes",
		"PendingWindowInDays":             "pending-window-in-days",
	}
	for in, want := range cases {
		if got := kebab(in); got != want {
			t.Errorf("kebab(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestEveryActionHasASubcommand keeps kmsctl and the server's route table
// in step.
func TestEveryActionHasASubcommand(t *testing.T) {
	have := map[string]bool{}
	for _, a := range actions {
		if a.version == kmsVersion {
			have[a.name] = true
		}
	}
	for _, name := range api.Actions(api.KMSVersion) {
		if !have[name] {
			t.Errorf("the server serves %s but kmsctl has no %s subcommand", name, kebab(name))
		}
		delete(have, name)
	}
	for name := range have {
		t.Errorf("kmsctl has %s, which the server does not serve", kebab(name))
	}
}

func TestUsageErrorsExitTwoWithoutCallingTheServer(t *testing.T) {
	for _, args := range [][]string{
		{"decrypt"},                            // required flag missing
		{"no-such-command"},                    // unknown command
		{"describe-key", "--key-id"},           // flag without value
		{"list-keys", "--page-size", "many"},   // not an integer
		{"describe-key", "--key-id", "k", "x"}, // stray argument
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), append([]string{"--endpoint", "http://127.0.0.1:1"}, args...), &out, &errb); code != exitUsage {
			t.Errorf("kmsctl %s: exit %d (%s), want %d", strings.Join(args, " "), code, errb.String(), exitUsage)
		}
	}
}

// TestEveryOwnActionIsReachable: each raftkms action has a generated
// subcommand or a hand-written command that names it (cluster.go, trail.go…).
func TestEveryOwnActionIsReachable(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	var src []byte
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src = append(src, b...)
	}
	generated := map[string]bool{}
	for _, a := range actions {
		if a.version == ownVersion {
			generated[a.name] = true
		}
	}
	for _, name := range api.Actions(api.OwnVersion) {
		if !generated[name] && !strings.Contains(string(src), `"`+name+`"`) {
			t.Errorf("the server serves %s but no kmsctl command calls it", name)
		}
	}
	if ownVersion != api.OwnVersion {
		t.Fatalf("kmsctl calls version %s, the server serves %s", ownVersion, api.OwnVersion)
	}
}
