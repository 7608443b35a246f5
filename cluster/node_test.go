package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/raftkms/raftkms/fsm"
)

var testAuthKey = []byte("0123456789abcdef0123456789abcdef")

func startNode(t *testing.T, dir string) (*Node, *fsm.FSM) {
	t.Helper()
	f := fsm.New(fsm.Config{})
	n, err := New(Config{NodeID: "n1", DataDir: dir, RaftAddr: "127.0.0.1:0", Bootstrap: true, AuthKey: testAuthKey}, f)
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
