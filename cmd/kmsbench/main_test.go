package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raftkms/raftkms/bench"
)

func TestRunAgainstTheBaselineWritesReportsAndOneTableHeader(t *testing.T) {
	b, err := bench.NewBaseline()
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go b.Serve(ln)
	defer b.Shutdown()
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds.json")
	os.WriteFile(creds, []byte(`{"AccessKeyId":"AK","AccessKeySecret":"s"}`), 0o600)
	keys := filepath.Join(dir, "keys.txt")
	os.WriteFile(keys, []byte("key-a\nkey-b\n"), 0o600)
	md := filepath.Join(dir, "t.md")
	for i := range 2 {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"run", "--endpoints", "http://" + ln.Addr().String(), "--credentials", creds,
			"--keys-file", keys, "--duration", "300ms", "--warmup", "0s", "--concurrency", "4", "--quiet",
			"--markdown", md, "--label", "row", "--json", filepath.Join(dir, "r.json"), "--html", filepath.Join(dir, "r.html"),
			"--fail-on-errors"}, &out, &errb)
		if code != 0 || !strings.Contains(out.String(), "requests/s") {
			t.Fatalf("run %d: exit %d\n%s%s", i, code, out.String(), errb.String())
		}
	}
	b2, _ := os.ReadFile(md)
	if n := strings.Count(string(b2), "| run |"); n != 1 || strings.Count(string(b2), "| row |") != 2 {
		t.Fatalf("markdown after two runs:\n%s", b2)
	}
	for _, f := range []string{"r.json", "r.html"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
			t.Fatalf("%s not written: %v", f, err)
		}
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	creds := filepath.Join(t.TempDir(), "creds.json")
	os.WriteFile(creds, []byte(`{"AccessKeyId":"AK","AccessKeySecret":"s"}`), 0o600)
	for _, args := range [][]string{
		{"run", "--concurrency", "many"},
		{"teleport"},
		{"run", "--workload", "mixed", "--mix", "decrypt", "--credentials", creds},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("kmsbench %v: exit %d (%s), want 2", args, code, errb.String())
		}
	}
}
