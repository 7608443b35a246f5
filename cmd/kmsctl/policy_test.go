package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func kmsctl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestPolicyEvalDecidesOfflineWithModulesAndDocuments(t *testing.T) {
	const ex = "../../examples/policies/"
	for _, tc := range []struct {
		name    string
		args    []string
		allow   bool
		because string
	}{
		{"no documents", nil, false, "no policy allows kms:GenerateDataKey"},
		{"a document for dev keys", []string{"--user-policy", "111/app/dev=" + ex + "documents/encrypt-dev-keys.json"}, false, "no policy allows"},
		{"a document for every key", []string{"--user-policy", "111/app/all=" + writeFile(t, `{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}`)}, true, ""},
		{"the tags module denies", []string{"--user-policy", "111/app/all=" + writeFile(t, `{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}`),
			"--module", ex + "key_tags.rego"}, false, "keys tagged env=prod are for prod-… principals"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := kmsctl(t, append([]string{"policy", "eval", "--input", ex + "input.json"}, tc.args...)...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errs)
			}
			var d struct {
				Allow   bool
				Reasons []string
			}
			if err := json.Unmarshal([]byte(out), &d); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if d.Allow != tc.allow || !strings.Contains(strings.Join(d.Reasons, "\n"), tc.because) {
				t.Fatalf("decision %+v, want allow=%v because %q", d, tc.allow, tc.because)
			}
		})
	}
}

func TestPolicyEvalRejectsBadArguments(t *testing.T) {
	in := "../../examples/policies/input.json"
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--input", in, "--user-policy", "111/app=x.json"}, exitUsage, "ACCOUNT/USER/NAME=FILE.json"},
		{[]string{"--input", in, "--remote", "--module", "x.rego"}, exitUsage, "drop --module"},
		{[]string{"--input", writeFile(t, `{"actor":"me"}`)}, exitError, "not a policy input document"},
		{[]string{"--input", in, "--module", writeFile(t, "package elsewhere\n")}, exitError, "author modules live in package kms.custom"},
	} {
		code, _, errs := kmsctl(t, append([]string{"policy", "eval"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("policy eval %v: exit %d %q, want exit %d mentioning %q", tc.args, code, errs, tc.code, tc.msg)
		}
	}
}

func TestPolicyTestPassesTheExamplesAndFailsAFailingTest(t *testing.T) {
	code, out, errs := kmsctl(t, "policy", "test", "../../examples/policies")
	if code != exitOK || strings.Contains(out, "FAIL") || !strings.HasSuffix(out, " passed\n") {
		t.Fatalf("examples: exit %d, %s %s", code, out, errs)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a_test.rego"), []byte("package tests.a\n\ntest_ok if { true }\n\ntest_broken if { 1 == 2 }\n"), 0o644)
	code, out, errs = kmsctl(t, "policy", "test", dir)
	if code != exitError || !strings.Contains(out, "FAIL tests.a.test_broken") || !strings.Contains(out, "1/2 passed") {
		t.Fatalf("failing test: exit %d, %s %s", code, out, errs)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}
