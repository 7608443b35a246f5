package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkms/raftkms/trail"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

func snapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.(*snapshot).write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func restore(t testing.TB, b []byte) *FSM {
	t.Helper()
	f := New(Config{})
	if err := f.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatal(err)
	}
	return f
}

// goldenLog builds a state touching every record type and field.
func goldenLog(t testing.TB) *harness {
	h := newHarness(t)
	h.createKey(acct, "key-a")
	h.mustApply(&CreateKey{Account: acct, ID: "key-b", Description: "orders db", Spec: "Aliyun_AES_256",
		Usage: "ENCRYPT/DECRYPT", Origin: "Aliyun_KMS", Protection: "SOFTWARE", CreatorType: "User",
		RotationInterval: 30 * 86400, Tags: []Tag{{"env", "prod"}, {"team", "payments"}},
		VersionID: "11111111-2222-4333-8444-555555555555", Material: []byte("wrapped-b")})
	h.createKey(other, "key-c")
	h.mustApply(NewCreateAlias(acct, "alias/orders", "key-b"))
	h.mustApply(NewDisableKey(acct, "key-a"))
	h.mustApply(&SetDeletionProtection{Account: acct, KeyRef: "key-b", Enable: true, Description: "prod"})
	h.mustApply(&ScheduleKeyDeletion{Account: other, KeyRef: "key-c", PendingDays: 7})
	h.now += int64(time.Minute)
	hd := h.header()
	hd.NonceFP, hd.NonceMinute = 0xabcdef, h.now/minuteNS
	h.applyWith(hd, &UpdateKeyDescription{Account: acct, KeyRef: "alias/orders", Description: "orders"})
	h.now += 30 * 86400 * int64(time.Second)
	h.mustApply(&RotateKey{Account: acct, KeyID: "key-b", VersionID: "22222222-2222-4333-8444-555555555555",
		Material: []byte("wrapped-b2"), Reason: RotateScheduled})
	h.mustApply(&ReserveSeals{Account: acct, KeyID: "key-b", VersionID: "22222222-2222-4333-8444-555555555555", Count: 1 << 20})
	h.mustApply(&CreateUser{Account: acct, Name: "alice"})
	h.mustApply(&CreateAccessKey{Account: acct, Kind: PrincipalUser, Principal: "alice", AccessKeyID: "AKALICE", Secret: []byte("w-alice")})
	h.mustApply(&PutUserPolicy{Account: acct, User: "alice", Name: "encrypt-only", Document: `{"Statement":[]}`})
	h.mustApply(&CreateServicePrincipal{Account: acct, Product: "ecs", AccessKeyID: "AKECS", Secret: []byte("w-ecs")})
	h.mustApply(&CreateServiceKey{Account: acct, Product: "ecs", KeyID: "key-svc", VersionID: "33333333-2222-4333-8444-555555555555", Material: []byte("w-svc")})
	h.mustApply(&PutRegoModule{Name: "tags", Source: "package kms.custom\n"})
	h.mustApply(&TouchAccessKeys{IDs: []string{"AKALICE"}, Times: []int64{h.now}})
	ret := Retention{MaxRecords: 2, MaxAge: int64(time.Hour)}
	h.mustApply(&TrailAppend{Retention: ret, Events: [][]byte{
		testEvent("GenerateDataKey", "00000000-0000-4000-8000-000000000001", h.now),
		testEvent("Decrypt", "00000000-0000-4000-8000-000000000002", h.now)}})
	h.mustApply(&Audited{Retention: ret, Event: testEvent("CreateUser", "00000000-0000-4000-8000-000000000003", h.now),
		Cmd: &CreateUser{Account: acct, Name: "bob"}})
	h.mustApply(&TrailShip{Retention: ret, Journal: goldenJournal, First: 1, Events: [][]byte{
		testEvent("Encrypt", "00000000-0000-4000-8000-000000000004", h.now)}})
	return h
}

var goldenJournal = [16]byte{0x6a, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

// testEvent is the encoding of a trail event of a request.
func testEvent(action, requestID string, at int64) []byte {
	return trail.AppendEvent(nil, &trail.Event{EventID: "ev-" + requestID, Time: at, EventName: action,
		Account: acct, PrincipalType: "root", AccessKeyID: "AKROOT", SourceIP: "127.0.0.1", RequestID: requestID,
		Node: "node1", KeyID: "key-b", Outcome: trail.Success, Params: []trail.Param{{Name: "KeyId", Value: "key-b"}}})
}

// TestGoldenSnapshot guards the snapshot format: a change that alters the
// bytes must come with a new format version (and -update).
func TestGoldenSnapshot(t *testing.T) {
	got := snapshotBytes(t, goldenLog(t).f)
	path := filepath.Join("testdata", fmt.Sprintf("snapshot-v%d.golden", snapshotVersion))
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./fsm -run TestGoldenSnapshot -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("snapshot bytes differ from %s (%d vs %d bytes): the format changed", path, len(got), len(want))
	}
	// Restoring the golden file and snapshotting again gives the same bytes,
	// and the restored state answers like the original.
	f := restore(t, want)
	if again := snapshotBytes(t, f); !bytes.Equal(again, want) {
		t.Fatal("restore+snapshot of the golden file changed its bytes")
	}
	st := f.State()
	k, err := st.ResolveKey(acct, "alias/orders")
	if err != nil || k.Description != "orders" || !k.DeletionProtection || len(k.Versions) != 2 || len(k.Tags) != 2 || k.Revision == 0 {
		t.Fatalf("restored key = %+v, %v", k, err)
	}
	if sk, err := st.ResolveKey(acct, "alias/acs/ecs"); err != nil || !sk.IsServiceKey() || sk.Product != "ecs" {
		t.Fatalf("restored service key = %+v, %v", sk, err)
	}
	var aks []*AccessKey
	st.PrincipalAccessKeys(acct, PrincipalUser, "alice", func(ak *AccessKey) bool { aks = append(aks, ak); return true })
	if len(aks) != 1 || aks[0].LastUsed == 0 || st.PolicyVersion() == 0 {
		t.Fatalf("restored alice's keys %+v, policy version %d", aks, st.PolicyVersion())
	}
}

// TestRestoresFormatVersion2 keeps snapshots taken before journal marks
// (format version 2) readable: they restore with none.
func TestRestoresFormatVersion2(t *testing.T) {
	old, err := os.ReadFile(filepath.Join("testdata", "snapshot-v2.golden"))
	if err != nil {
		t.Fatal(err)
	}
	f := restore(t, old)
	if k, err := f.State().ResolveKey(acct, "alias/orders"); err != nil || k.Description != "orders" {
		t.Fatalf("restored key = %+v, %v", k, err)
	}
	if len(f.dd.journals) != 0 {
		t.Fatalf("journal marks = %v", f.dd.journals)
	}
	if b := snapshotBytes(t, f); b[len(snapshotMagic)] != snapshotVersion {
		t.Fatalf("a restored state snapshots as version %d", b[len(snapshotMagic)])
	}
}

func TestRestoreKeepsDuplicateFilters(t *testing.T) {
	h := goldenLog(t)
	f := restore(t, snapshotBytes(t, h.f))
	h.f = f
	hd := h.header()
	hd.NonceFP, hd.NonceMinute = 0xabcdef, (h.now-30*86400*int64(time.Second))/minuteNS
	// The minute has long expired by now, so the replay is refused as expired;
	// a fresh replay within the window must be refused as reused.
	hd.NonceMinute = h.now / minuteNS
	if r := h.applyWith(hd, NewEnableKey(acct, "key-a")); r.Err != nil {
		t.Fatal(r.Err)
	}
	f2 := restore(t, snapshotBytes(t, h.f))
	h.f = f2
	replay := h.header()
	replay.NonceFP, replay.NonceMinute = hd.NonceFP, hd.NonceMinute
	if r := h.applyWith(replay, NewDisableKey(acct, "key-a")); !errors.Is(r.Err, ErrNonceReused) {
		t.Fatalf("replay after restore err = %v, want ErrNonceReused", r.Err)
	}
}

func TestRestoreRejectsDamagedSnapshotAndKeepsState(t *testing.T) {
	good := snapshotBytes(t, goldenLog(t).f)
	h := newHarness(t)
	h.createKey(acct, "key-keep")
	cases := map[string][]byte{
		"empty":         nil,
		"foreign":       []byte("not a snapshot at all"),
		"truncated":     good[:len(good)-10],
		"flipped byte":  flip(good, len(good)/2),
		"bad checksum":  flip(good, len(good)-1),
		"trailing data": append(bytes.Clone(good), 0),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if err := h.f.Restore(io.NopCloser(bytes.NewReader(b))); err == nil {
				t.Fatal("Restore accepted a damaged snapshot")
			}
			if _, ok := h.f.State().Key(acct, "key-keep"); !ok {
				t.Fatal("failed Restore changed the state")
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

// TestDeterminism applies one random log to two FSMs — one entry at a time,
// and in random batches with a snapshot/restore half way — and compares
// their snapshot bytes.
func TestDeterminism(t *testing.T) {
	for seed := range uint64(5) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			logs := randomLog(seed, 3000)
			a := New(Config{})
			for _, l := range logs {
				a.Apply(l)
			}
			b := New(Config{})
			rng := rand.New(rand.NewPCG(seed, 99))
			for i := 0; i < len(logs); {
				n := min(1+rng.IntN(64), len(logs)-i)
				b.ApplyBatch(logs[i : i+n])
				i += n
				if i > len(logs)/2 && i-n <= len(logs)/2 {
					b = restore(t, snapshotBytes(t, b))
				}
			}
			sa, sb := snapshotBytes(t, a), snapshotBytes(t, b)
			if !bytes.Equal(sa, sb) {
				t.Fatalf("replicas diverged: %d vs %d snapshot bytes", len(sa), len(sb))
			}
			if a.State().keys.Len() == 0 {
				t.Fatal("random log created no keys; the test exercises nothing")
			}
		})
	}
}

func randomLog(seed uint64, n int) []*raft.Log {
	rng := rand.New(rand.NewPCG(seed, 1))
	accounts := []string{"100", "200"}
	now := t0
	var logs []*raft.Log
	add := func(c Command, nonce bool) {
		var h Header
		h.Time = now
		binary.BigEndian.PutUint64(h.RequestID[:], uint64(len(logs)+1))
		if rng.IntN(20) == 0 && len(logs) > 0 { // a retried request id
			binary.BigEndian.PutUint64(h.RequestID[:], uint64(rng.IntN(len(logs))+1))
		}
		if nonce {
			h.NonceFP, h.NonceMinute = uint64(rng.IntN(500)+1), now/minuteNS
		}
		logs = append(logs, &raft.Log{Index: uint64(len(logs) + 1), Term: 1, Type: raft.LogCommand, Data: Encode(h, c)})
	}
	for i, a := range accounts {
		add(&CreateAccount{ID: a, Name: a, AccessKeyID: fmt.Sprint("AK", i), Secret: []byte{1}}, false)
	}
	type keyVersion struct{ id, version string }
	lastKey := map[string]keyVersion{} // account+key id -> last version proposed for it
	key := func() (string, string) {
		return accounts[rng.IntN(2)], fmt.Sprintf("key-%d", rng.IntN(40))
	}
	for len(logs) < n {
		now += int64(rng.IntN(int(2 * time.Hour)))
		a, k := key()
		alias := fmt.Sprintf("alias/%d", rng.IntN(10))
		switch rng.IntN(21) {
		case 19:
			var evs [][]byte
			for i := range 1 + rng.IntN(3) {
				evs = append(evs, testEvent("Encrypt", fmt.Sprintf("00000000-0000-4000-8000-%012d", 10*len(logs)+i), now))
			}
			add(&TrailAppend{Retention: Retention{MaxRecords: uint64(1 + rng.IntN(20)), MaxAge: int64(rng.IntN(3)) * int64(time.Hour)}, Events: evs}, false)
		case 20:
			add(&Audited{Retention: Retention{MaxRecords: 10}, Event: testEvent("CreateUser", fmt.Sprintf("00000000-0000-4000-9000-%012d", len(logs)), now),
				Cmd: &CreateUser{Account: a, Name: fmt.Sprint("u", rng.IntN(5))}}, true)
		case 13:
			add(&CreateUser{Account: a, Name: fmt.Sprint("u", rng.IntN(5))}, true)
		case 14:
			add(&DeleteUser{Account: a, Name: fmt.Sprint("u", rng.IntN(5))}, true)
		case 15:
			add(&CreateAccessKey{Account: a, Kind: PrincipalUser, Principal: fmt.Sprint("u", rng.IntN(5)),
				AccessKeyID: fmt.Sprint("AK-", len(logs)), Secret: []byte{3}}, true)
		case 16:
			add(&PutUserPolicy{Account: a, User: fmt.Sprint("u", rng.IntN(5)), Name: "p", Document: fmt.Sprint(rng.IntN(9))}, true)
		case 17:
			p := []string{"ecs", "oss"}[rng.IntN(2)]
			add(&CreateServicePrincipal{Account: a, Product: p, AccessKeyID: fmt.Sprint("AK-", len(logs)), Secret: []byte{5}}, true)
			add(&CreateServiceKey{Account: a, Product: p, KeyID: fmt.Sprint("key-s", len(logs)), VersionID: fmt.Sprint("vs", len(logs)), Material: []byte{4}}, false)
		case 18:
			add(&TouchAccessKeys{IDs: []string{fmt.Sprint("AK", rng.IntN(2))}, Times: []int64{now}}, false)
		case 0, 1:
			v := fmt.Sprint("v", len(logs))
			lastKey[a+k] = keyVersion{k, v}
			add(&CreateKey{Account: a, ID: k, Spec: "Aliyun_AES_256", VersionID: v,
				Material: []byte{byte(len(logs))}, RotationInterval: int64(rng.IntN(2)) * 7 * 86400}, rng.IntN(2) == 0)
		case 2:
			add(NewEnableKey(a, k), true)
		case 3:
			add(NewDisableKey(a, k), true)
		case 4:
			add(&ScheduleKeyDeletion{Account: a, KeyRef: k, PendingDays: int64(5 + rng.IntN(5))}, true)
		case 5:
			add(NewCancelKeyDeletion(a, k), true)
		case 6:
			add(&DestroyKey{Account: a, KeyID: k}, false)
		case 7:
			add(NewCreateAlias(a, alias, k), true)
		case 8:
			add(NewUpdateAlias(a, alias, k), true)
		case 9:
			add(&DeleteAlias{Account: a, Name: alias}, true)
		case 10:
			v := fmt.Sprint("r", len(logs))
			lastKey[a+k] = keyVersion{k, v}
			add(&RotateKey{Account: a, KeyID: k, VersionID: v, Material: []byte{2}, Reason: RotateReason(rng.IntN(3))}, false)
		case 12:
			if k, ok := lastKey[a+k]; ok {
				add(&ReserveSeals{Account: a, KeyID: k.id, VersionID: k.version, Count: uint64(1+rng.IntN(3)) << 30}, false)
			}
		case 11:
			add(&SetDeletionProtection{Account: a, KeyRef: k, Enable: rng.IntN(2) == 0, Description: "p"}, true)
		}
	}
	return logs
}

func TestEveryKeyKnowsItsPrimaryVersionAppliedOrRestored(t *testing.T) {
	h := goldenLog(t)
	for name, f := range map[string]*FSM{"applied": h.f, "restored": restore(t, snapshotBytes(t, h.f))} {
		st, n := f.State(), 0
		for _, a := range []string{acct, other} {
			st.Keys(a, "", func(k *Key) bool {
				n++
				if v, ok := st.Version(k.PrimaryVersion); !ok || !reflect.DeepEqual(k.Primary(), v) {
					t.Errorf("%s: key %s: Primary() = %+v, the state's version %s = %+v", name, k.ID, k.Primary(), k.PrimaryVersion, v)
				}
				return true
			})
		}
		if n < 3 {
			t.Fatalf("%s: only %d keys looked at", name, n)
		}
		checkIndex(t, st) // and finds each primary through its key's record
	}
}
