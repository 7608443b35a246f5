package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kmsd.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigIsDecodedStrictly(t *testing.T) {
	cases := []struct {
		name, body, wantErr string
	}{
		{"unknown field", "version: v1\nnode:\n  idd: n1\n", "field idd not found"},
		{"other version", "version: v2\n", "version"},
		{"bad duration", "version: v1\napi:\n  write_timeout: soon\n", "time.Duration"},
		{"bad log format", "version: v1\nlog:\n  format: xml\n", "log.format"},
		{"empty keyring", "version: v1\nkeyring:\n  versions: -1\n", "keyring.versions"},
		{"unknown log store", "version: v1\nraft:\n  log_store: rocksdb\n", "raft.log_store"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadConfig(writeConfig(t, c.body))
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("loadConfig err = %v, want it to mention %q", err, c.wantErr)
			}
		})
	}
	c, err := loadConfig(writeConfig(t, "version: v1\nregion: eu-central-1\napi:\n  write_timeout: 3s\nraft:\n  snapshot_threshold: 100\nkeyring:\n  versions: 5000\nmemory_limit_bytes: 1073741824\n"))
	if err != nil || c.Region != "eu-central-1" || c.API.WriteTimeout != 3*time.Second || c.Raft.SnapshotThreshold != 100 || c.Node.ID != "node1" ||
		c.Keyring.Versions != 5000 || c.MemoryLimit != 1<<30 || c.HugePages {
		t.Fatalf("loadConfig = %+v, %v", c, err)
	}
	if c, err := loadConfig(writeConfig(t, "version: v1\nhuge_pages: true\n")); err != nil || !c.HugePages {
		t.Fatalf("huge_pages: true gives %v, %v", c.HugePages, err)
	}
}

func TestRunRefusesBadFlagsAndMissingRootKey(t *testing.T) {
	ctx := context.Background()
	if err := run(ctx, []string{"--no-such-flag"}, io.Discard, io.Discard); err == nil {
		t.Fatal("run accepted an unknown flag")
	}
	if err := run(ctx, []string{"stray"}, io.Discard, io.Discard); err == nil {
		t.Fatal("run accepted a stray argument")
	}
	// A data directory with Raft state but without its root key must not get
	// a fresh root key: that would make every stored key undecryptable.
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "raft"), 0o700)
	os.WriteFile(filepath.Join(dir, "raft", "raft.db"), nil, 0o600)
	err := run(ctx, []string{"--data-dir", dir, "--api-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "root key") {
		t.Fatalf("run on a data dir without its root key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "root.key")); err == nil {
		t.Fatal("run created a new root key next to existing Raft state")
	}
}

func TestExampleConfigLoadsAndMatchesTheDefaults(t *testing.T) {
	c, err := loadConfig("../../examples/kmsd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The example spells out the defaults the code falls back to.
	want := defaultConfig()
	if c.Node != want.Node || c.Region != want.Region || c.Log != want.Log || c.Maintenance != want.Maintenance {
		t.Fatalf("example config = %+v\ndefaults = %+v", c, want)
	}
	if c.API.TimestampWindow != 15*time.Minute || c.Raft.SnapshotThreshold != 8192 || c.Policy.CacheSize != 100000 {
		t.Fatalf("example config api/raft/policy = %+v %+v %+v", c.API, c.Raft, c.Policy)
	}
}
