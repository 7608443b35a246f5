//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"

	"github.com/raftkms/raftkms/crypto"
	"github.com/raftkms/raftkms/fsm"
)

// logStores runs test once per Raft log store: the default (a WAL for a
// new data directory) and BoltDB, named in a config file.
func logStores(t *testing.T, test func(t *testing.T, dir string, args ...string)) {
	t.Run("wal", func(t *testing.T) { test(t, t.TempDir()) })
	t.Run("boltdb", func(t *testing.T) {
		conf := filepath.Join(t.TempDir(), "kmsd.yaml")
		if err := os.WriteFile(conf, []byte("version: v1\nraft:\n  log_store: boltdb\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		test(t, t.TempDir(), "--config", conf)
	})
}

func TestAcknowledgedWritesSurviveKill9(t *testing.T) {
	logStores(t, acknowledgedWritesSurviveKill9)
}

func acknowledgedWritesSurviveKill9(t *testing.T, dir string, args ...string) {
	k := startKMSD(t, dir, args...)
	c := k.client()
	ctx := context.Background()
	type written struct {
		id, blob, plaintext string
	}
	var acked []written
	for i := range 20 {
		m, err := c.CreateKey(ctx, fmt.Sprint("key ", i))
		if err != nil {
			t.Fatal(err)
		}
		ct, err := c.Encrypt(ctx, m.KeyID, fmt.Sprint("secret ", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, written{m.KeyID, ct.CiphertextBlob, fmt.Sprint("secret ", i)})
	}
	if _, err := c.Call(ctx, "DisableKey", map[string]string{"KeyId": acked[0].id}); err != nil {
		t.Fatal(err)
	}
	creds := k.credentials()
	k.kill() // kill -9: no chance to flush anything

	k.start()
	if k.credentials() != creds {
		t.Fatal("restart replaced the root credentials")
	}
	c = k.client()
	for i, w := range acked {
		m, err := c.DescribeKey(ctx, w.id)
		if err != nil {
			t.Fatalf("key %d lost after kill -9: %v", i, err)
		}
		if want := map[bool]string{true: "Disabled", false: "Enabled"}[i == 0]; m.KeyState != want {
			t.Fatalf("key %d state %s after restart, want %s", i, m.KeyState, want)
		}
		if i == 0 {
			continue
		}
		p, err := c.Decrypt(ctx, w.blob, nil)
		if err != nil || p.Plaintext != w.plaintext {
			t.Fatalf("Decrypt after restart = %v, %v", p, err)
		}
	}
	k.stop() // SIGTERM exits 0
}

// TestKill9DuringWritesLosesNoAcknowledgedWrite kills the node while
// clients are creating keys, so appends are cut off part-way (a torn tail
// in the log), restarts it on the same directory and checks that every
// CreateKey that was answered is still there — three times over.
func TestKill9DuringWritesLosesNoAcknowledgedWrite(t *testing.T) {
	logStores(t, kill9DuringWrites)
}

func kill9DuringWrites(t *testing.T, dir string, args ...string) {
	k := startKMSD(t, dir, args...)
	ctx := context.Background()
	var (
		mu    sync.Mutex
		acked []string
	)
	for round := range 3 {
		c := k.client()
		var wg sync.WaitGroup
		stop := make(chan struct{})
		want := 200 * (round + 1)
		reached := make(chan struct{}) // closed once want writes were answered
		var once sync.Once
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 2000 { // bounded: the kill ends it long before
					select {
					case <-stop:
						return
					default:
					}
					m, err := c.CreateKey(ctx, "kill -9 round")
					if err != nil {
						return // the node is gone
					}
					mu.Lock()
					acked = append(acked, m.KeyID)
					if len(acked) >= want {
						once.Do(func() { close(reached) })
					}
					mu.Unlock()
				}
			}()
		}
		select {
		case <-reached:
		case <-time.After(30 * time.Second):
		}
		k.kill() // mid-append: 16 writers are in flight
		close(stop)
		wg.Wait()
		k.start()
		c = k.client()
		mu.Lock()
		ids := append([]string(nil), acked...)
		mu.Unlock()
		if len(ids) < want {
			t.Fatalf("round %d: only %d writes were answered before the deadline", round, len(ids))
		}
		for _, id := range ids {
			if _, err := c.DescribeKey(ctx, id); err != nil {
				t.Fatalf("round %d: key %s was acknowledged and is gone after kill -9: %v", round, id, err)
			}
		}
	}
	k.stop()
}

// TestNoPlaintextSecretsOnDisk unwraps every secret in the Raft log with the
// root key and checks that none of them, nor any plaintext or data key the
// test saw, appears in the data directory or the logs.
func TestNoPlaintextSecretsOnDisk(t *testing.T) {
	logStores(t, noPlaintextSecretsOnDisk)
}

func noPlaintextSecretsOnDisk(t *testing.T, dir string, args ...string) {
	k := startKMSD(t, dir, args...)
	c := k.client()
	ctx := context.Background()
	var secrets [][]byte
	secrets = append(secrets, []byte(k.credentials().AccessKeySecret))
	for range 5 {
		m, err := c.CreateKey(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		dk, err := c.GenerateDataKey(ctx, m.KeyID, 32, nil)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := base64.StdEncoding.DecodeString(dk.Plaintext)
		secrets = append(secrets, raw, []byte(dk.Plaintext))
		if _, err := c.Encrypt(ctx, m.KeyID, "very secret plaintext 12345", nil); err != nil {
			t.Fatal(err)
		}
	}
	secrets = append(secrets, []byte("very secret plaintext 12345"))
	k.stop()

	root, err := crypto.LoadRootKeyFile(filepath.Join(dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	material := keyMaterial(t, root, filepath.Join(dir, "raft"))
	if len(material) != 5 {
		t.Fatalf("found %d wrapped key versions in the log, want 5", len(material))
	}
	secrets = append(secrets, material...)
	files := filesUnder(t, dir)
	files["stderr"], files["stdout"] = []byte(k.stderr.String()), []byte(k.stdout.String())
	named := map[string][]byte{}
	for i, s := range secrets {
		named[fmt.Sprintf("secret %d (%d bytes)", i, len(s))] = s
	}
	assertNoSecrets(t, files, named)
}

// filesUnder reads every file below dir but root-credentials.json, the one
// place the root AccessKey is meant to be handed over in clear (mode 0600).
func filesUnder(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != "root-credentials.json" {
			files[path], err = os.ReadFile(path)
		}
		return err
	})
	return files
}

// assertNoSecrets fails for every file that holds one of the secrets.
func assertNoSecrets(t *testing.T, files, secrets map[string][]byte) {
	t.Helper()
	for name, content := range files {
		for what, s := range secrets {
			if bytes.Contains(content, s) {
				t.Errorf("%s holds %s", name, what)
			}
		}
	}
}

// keyMaterial reads the Raft log in dir (segment files or raft.db) and
// returns the unwrapped material of every key version created in it.
func keyMaterial(t *testing.T, root *crypto.RootKey, dir string) [][]byte {
	bolt, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	var store raft.LogStore = bolt
	if _, err := os.Stat(filepath.Join(dir, "wal")); err == nil {
		w, err := wal.Open(filepath.Join(dir, "wal"))
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		store = w
	}
	first, _ := store.FirstIndex()
	last, _ := store.LastIndex()
	var out [][]byte
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := store.GetLog(i, &l); err != nil || l.Type != raft.LogCommand {
			continue
		}
		_, cmd, err := fsm.Decode(l.Data)
		if err != nil {
			t.Fatalf("log entry %d: %v", i, err)
		}
		if a, ok := cmd.(*fsm.Audited); ok { // a change with its trail record
			cmd = a.Cmd
		}
		if ck, ok := cmd.(*fsm.CreateKey); ok {
			m, err := root.Unwrap(crypto.PurposeKeyMaterial, ck.VersionID, ck.Material)
			if err != nil {
				t.Fatalf("unwrap %s: %v", ck.VersionID, err)
			}
			out = append(out, m)
		}
	}
	return out
}
