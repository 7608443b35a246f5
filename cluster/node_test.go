package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftkms/raftkms/fsm"
)

var testAuthKey = []byte("0123456789abcdef0123456789abcdef")

func startNode(t *testing.T, dir string) (*Node, *fsm.FSM) {
	t.Helper()
	return startNodeWithLog(t, dir, "")
}

// openNode opens a one-node cluster in dir with the given log store.
func openNode(dir, logStore string) (*Node, *fsm.FSM, error) {
	f := fsm.New(fsm.Config{})
	n, err := New(Config{NodeID: "n1", DataDir: dir, RaftAddr: "127.0.0.1:0", Bootstrap: true, AuthKey: testAuthKey, LogStore: logStore}, f)
	return n, f, err
}

func startNodeWithLog(t *testing.T, dir, logStore string) (*Node, *fsm.FSM) {
	t.Helper()
	n, f, err := openNode(dir, logStore)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.WaitReady(ctx); err != nil {
		n.Close()
		t.Fatalf("node not ready: %v", err)
	}
	return n, f
}

func TestSingleNodeBootstrapsCommitsAndRecoversAfterRestart(t *testing.T) {
	dir := t.TempDir()
	n, f := startNode(t, dir)
	cmd := fsm.Encode(fsm.Header{RequestID: [16]byte{1}}, &fsm.CreateAccount{ID: "1", Name: "root", AccessKeyID: "AK", Secret: []byte{1}})
	before := time.Now().UnixNano()
	r, err := n.Propose(context.Background(), cmd)
	if err != nil || r.Err != nil {
		t.Fatalf("Propose = %v, %v", r.Err, err)
	}
	if r.Account.Created < before {
		t.Fatalf("command time %d was not stamped by the leader (now %d)", r.Account.Created, before)
	}
	st := n.Status()
	if st.Role != "leader" || !st.Ready || st.AppliedIndex < 2 || st.Term == 0 || st.CommitIndex < st.FSMIndex {
		t.Fatalf("Status = %+v", st)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Propose(context.Background(), cmd); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Propose after Close err = %v, want ErrShutdown", err)
	}

	n2, f2 := startNode(t, dir)
	defer n2.Close()
	if _, ok := f2.State().Account("1"); !ok {
		t.Fatal("account lost across restart")
	}
	if f == f2 {
		t.Fatal("restart reused the old state machine")
	}
}

func TestLogStoreDefaultsToWALForANewDirectoryAndADirectoryKeepsItsStore(t *testing.T) {
	createAccount := func(t *testing.T, n *Node, id string) {
		t.Helper()
		cmd := fsm.Encode(fsm.Header{RequestID: [16]byte{byte(len(id))}}, &fsm.CreateAccount{ID: id, Name: "acct" + id, AccessKeyID: "AK" + id, Secret: []byte{1}})
		if r, err := n.Propose(context.Background(), cmd); err != nil || r.Err != nil {
			t.Fatalf("Propose = %v, %v", r.Err, err)
		}
	}
	walDir := t.TempDir()
	n, _ := startNodeWithLog(t, walDir, "") // the default
	if got := n.Status().LogStore; got != LogStoreWAL {
		t.Fatalf("a new directory's log store = %q, want %s", got, LogStoreWAL)
	}
	createAccount(t, n, "1")
	files, _ := os.ReadDir(filepath.Join(walDir, "raft", "wal"))
	if len(files) < 2 {
		t.Fatalf("the WAL directory holds %d files, want a segment and wal-meta.db", len(files))
	}
	for _, f := range files { // as private as raft.db
		if fi, err := f.Info(); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v (%v), want 0600", f.Name(), fi.Mode().Perm(), err)
		}
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _, err := openNode(walDir, LogStoreBoltDB); err == nil || !strings.Contains(err.Error(), "log_store: wal") {
		if n != nil {
			n.Close()
		}
		t.Fatalf("a WAL directory opened as BoltDB: err = %v", err)
	}
	for _, kind := range []string{LogStoreWAL, ""} {
		n, f := startNodeWithLog(t, walDir, kind)
		if _, ok := f.State().Account("1"); !ok {
			t.Fatalf("account lost across a restart with the WAL (log store %q)", kind)
		}
		n.Close()
	}

	boltDir := t.TempDir()
	n, _ = startNodeWithLog(t, boltDir, LogStoreBoltDB)
	createAccount(t, n, "22")
	n.Close()
	if n, _, err := openNode(boltDir, LogStoreWAL); err == nil || !strings.Contains(err.Error(), "log_store: boltdb") {
		if n != nil {
			n.Close()
		}
		t.Fatalf("a BoltDB directory opened as WAL: err = %v", err)
	}
	n, f := startNodeWithLog(t, boltDir, "") // the default keeps BoltDB here
	if _, ok := f.State().Account("22"); !ok || n.Status().LogStore != LogStoreBoltDB {
		t.Fatalf("a BoltDB directory restarted with the default: account kept %v, log store %q", ok, n.Status().LogStore)
	}
	n.Close()
	if _, _, err := openNode(t.TempDir(), "rocksdb"); err == nil {
		t.Fatal("an unknown log store was accepted")
	}
}

func TestSnapshotTruncatesAndRestoreServesState(t *testing.T) {
	dir := t.TempDir()
	n, _ := startNode(t, dir)
	for i := range 50 {
		cmd := fsm.Encode(fsm.Header{RequestID: [16]byte{byte(i + 1)}},
			&fsm.CreateAccount{ID: fmt.Sprint(i), AccessKeyID: fmt.Sprint("AK", i), Secret: []byte{1}})
		if r, err := n.Propose(context.Background(), cmd); err != nil || r.Err != nil {
			t.Fatalf("Propose %d = %v, %v", i, r.Err, err)
		}
	}
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	n.Close()
	n2, f2 := startNode(t, dir)
	defer n2.Close()
	count := 0
	f2.State().Accounts(func(*fsm.Account) bool { count++; return true })
	if count != 50 {
		t.Fatalf("after snapshot and restart: %d accounts, want 50", count)
	}
}
