package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// t0 is a fixed command time, so tests (and golden files) are reproducible.
var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC).UnixNano()

const (
	acct  = "1234567890123456"
	other = "6543210987654321"
)

// harness applies commands to an FSM the way Raft does, one index at a time.
type harness struct {
	t     testing.TB
	f     *FSM
	index uint64
	seq   uint64
	now   int64
}

func newHarness(t testing.TB) *harness {
	h := &harness{t: t, f: New(Config{}), now: t0}
	h.mustApply(&CreateAccount{ID: acct, Name: "root", AccessKeyID: "AK1", Secret: []byte("wrapped-secret-1"), System: true})
	h.mustApply(&CreateAccount{ID: other, Name: "other", AccessKeyID: "AK2", Secret: []byte("wrapped-secret-2")})
	return h
}

func (h *harness) header() Header {
	h.seq++
	var id [16]byte
	binary.BigEndian.PutUint64(id[8:], h.seq)
	return Header{Time: h.now, RequestID: id}
}

func (h *harness) entry(hd Header, c Command) *raft.Log {
	h.index++
	return &raft.Log{Index: h.index, Term: 1, Type: raft.LogCommand, Data: Encode(hd, c)}
}

func (h *harness) applyWith(hd Header, c Command) Result {
	return h.f.Apply(h.entry(hd, c)).(Result)
}

func (h *harness) apply(c Command) Result { return h.applyWith(h.header(), c) }

func (h *harness) mustApply(c Command) Result {
	h.t.Helper()
	r := h.apply(c)
	if r.Err != nil {
		h.t.Fatalf("apply %T: %v", c, r.Err)
	}
	return r
}

func (h *harness) createKey(account, id string) *Key {
	h.t.Helper()
	return h.mustApply(&CreateKey{Account: account, ID: id, Spec: "Aliyun_AES_256", Usage: "ENCRYPT/DECRYPT",
		Origin: "Aliyun_KMS", Protection: "SOFTWARE", CreatorType: "User",
		VersionID: fmt.Sprintf("00000000-0000-4000-8000-%012d", h.seq+1), Material: []byte("wrapped-" + id)}).Key
}

func (h *harness) key(account, id string) *Key {
	k, ok := h.f.State().Key(account, id)
	if !ok {
		h.t.Fatalf("key %s/%s not found", account, id)
	}
	return k
}

func TestCreateKeyIsVisibleWithItsFirstVersion(t *testing.T) {
	h := newHarness(t)
	k := h.createKey(acct, "key-a")
	if k.State != KeyEnabled || k.Created != t0 || len(k.Versions) != 1 || k.PrimaryVersion != k.Versions[0] {
		t.Fatalf("created key = %+v", k)
	}
	v, ok := h.f.State().Version(k.PrimaryVersion)
	if !ok || v.KeyID != "key-a" || v.Account != acct || string(v.Material) != "wrapped-key-a" {
		t.Fatalf("version = %+v, %v", v, ok)
	}
	if _, ok := h.f.State().Key(other, "key-a"); ok {
		t.Fatal("key is visible from another account")
	}
}

func TestCreateKeyRefusesDuplicatesAndUnknownAccount(t *testing.T) {
	h := newHarness(t)
	k := h.createKey(acct, "key-a")
	cases := []struct {
		name string
		c    *CreateKey
		want error
	}{
		{"same id", &CreateKey{Account: acct, ID: "key-a", VersionID: "v-new", Material: []byte("m")}, ErrKeyExists},
		{"same version id", &CreateKey{Account: acct, ID: "key-b", VersionID: k.PrimaryVersion, Material: []byte("m")}, ErrVersionExists},
		{"unknown account", &CreateKey{Account: "999", ID: "key-c", VersionID: "v-c", Material: []byte("m")}, ErrAccountNotFound},
		{"no material", &CreateKey{Account: acct, ID: "key-d", VersionID: "v-d"}, ErrInvalidCommand},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if r := h.apply(c.c); !errors.Is(r.Err, c.want) {
				t.Fatalf("CreateKey err = %v, want %v", r.Err, c.want)
			}
		})
	}
}

// TestKeyStateMatrix follows Alibaba's "impact of CMK states on API calls"
// for the state changes the FSM decides.
func TestKeyStateMatrix(t *testing.T) {
	states := []KeyState{KeyEnabled, KeyDisabled, KeyPendingDeletion}
	cases := []struct {
		name string
		cmd  func(ref string) Command
		want map[KeyState]error
		then map[KeyState]KeyState
	}{
		{"EnableKey", func(r string) Command { return NewEnableKey(acct, r) },
			map[KeyState]error{KeyPendingDeletion: ErrStateConflict},
			map[KeyState]KeyState{KeyEnabled: KeyEnabled, KeyDisabled: KeyEnabled}},
		{"DisableKey", func(r string) Command { return NewDisableKey(acct, r) },
			map[KeyState]error{KeyPendingDeletion: ErrStateConflict},
			map[KeyState]KeyState{KeyEnabled: KeyDisabled, KeyDisabled: KeyDisabled}},
		{"ScheduleKeyDeletion", func(r string) Command { return &ScheduleKeyDeletion{Account: acct, KeyRef: r, PendingDays: 7} },
			map[KeyState]error{KeyPendingDeletion: ErrStateConflict},
			map[KeyState]KeyState{KeyEnabled: KeyPendingDeletion, KeyDisabled: KeyPendingDeletion}},
		{"CancelKeyDeletion", func(r string) Command { return NewCancelKeyDeletion(acct, r) },
			map[KeyState]error{KeyEnabled: ErrStateConflict, KeyDisabled: ErrStateConflict},
			map[KeyState]KeyState{KeyPendingDeletion: KeyEnabled}},
		{"CreateAlias", func(r string) Command { return NewCreateAlias(acct, "alias/new", r) },
			map[KeyState]error{KeyPendingDeletion: ErrStateConflict}, nil},
		{"SetDeletionProtection", func(r string) Command { return &SetDeletionProtection{Account: acct, KeyRef: r, Enable: true} },
			map[KeyState]error{KeyPendingDeletion: ErrStateConflict}, nil},
		{"UpdateKeyDescription", func(r string) Command { return &UpdateKeyDescription{Account: acct, KeyRef: r, Description: "d"} },
			nil, nil},
	}
	for _, c := range cases {
		for _, from := range states {
			t.Run(c.name+"/"+from.String(), func(t *testing.T) {
				h := newHarness(t)
				h.createKey(acct, "key-a")
				switch from {
				case KeyDisabled:
					h.mustApply(NewDisableKey(acct, "key-a"))
				case KeyPendingDeletion:
					h.mustApply(&ScheduleKeyDeletion{Account: acct, KeyRef: "key-a", PendingDays: 30})
				}
				r := h.apply(c.cmd("key-a"))
				if want := c.want[from]; !errors.Is(r.Err, want) || (want == nil && r.Err != nil) {
					t.Fatalf("%s on %s: err = %v, want %v", c.name, from, r.Err, want)
				}
				if to, ok := c.then[from]; ok {
					if got := h.key(acct, "key-a").State; got != to {
						t.Fatalf("%s on %s: state = %s, want %s", c.name, from, got, to)
					}
				}
			})
		}
	}
}

func TestScheduleKeyDeletionRespectsWindowAndProtection(t *testing.T) {
	h := newHarness(t)
	h.createKey(acct, "key-a")
	for _, days := range []int64{0, 6, 367} {
		if r := h.apply(&ScheduleKeyDeletion{Account: acct, KeyRef: "key-a", PendingDays: days}); !errors.Is(r.Err, ErrInvalidCommand) {
			t.Fatalf("ScheduleKeyDeletion(%d days) err = %v, want ErrInvalidCommand", days, r.Err)
		}
	}
	h.mustApply(&SetDeletionProtection{Account: acct, KeyRef: "key-a", Enable: true, Description: "used by orders"})
	if r := h.apply(&ScheduleKeyDeletion{Account: acct, KeyRef: "key-a", PendingDays: 7}); !errors.Is(r.Err, ErrDeletionProtect) {
		t.Fatalf("ScheduleKeyDeletion on protected key err = %v, want ErrDeletionProtect", r.Err)
	}
	h.mustApply(&SetDeletionProtection{Account: acct, KeyRef: "key-a", Enable: false})
	k := h.mustApply(&ScheduleKeyDeletion{Account: acct, KeyRef: "key-a", PendingDays: 7}).Key
	if want := t0 + 7*int64(24*time.Hour); k.DeleteDate != want {
		t.Fatalf("DeleteDate = %d, want %d", k.DeleteDate, want)
	}
}

func TestDestroyKeyOnlyWhenDueThenKeyIsGone(t *testing.T) {
	var destroyed []string
	h := newHarness(t)
	h.f.cfg.OnDestroy = func(ids []string) { destroyed = append(destroyed, ids...) }
	k := h.createKey(acct, "key-a")
	h.mustApply(NewCreateAlias(acct, "alias/orders", "key-a"))
	h.mustApply(&ScheduleKeyDeletion{Account: acct, KeyRef: "key-a", PendingDays: 7})
	if r := h.apply(&DestroyKey{Account: acct, KeyID: "key-a"}); !errors.Is(r.Err, ErrNotDue) {
		t.Fatalf("early DestroyKey err = %v, want ErrNotDue", r.Err)
	}
	h.now += 7 * int64(24*time.Hour)
	// Due but not destroyed yet: every command already treats it as gone.
	if r := h.apply(NewCancelKeyDeletion(acct, "key-a")); !errors.Is(r.Err, ErrKeyNotFound) {
		t.Fatalf("CancelKeyDeletion after DeleteDate err = %v, want ErrKeyNotFound", r.Err)
	}
	h.mustApply(&DestroyKey{Account: acct, KeyID: "key-a"})
	st := h.f.State()
	if _, ok := st.Key(acct, "key-a"); ok {
		t.Fatal("destroyed key still present")
	}
	if _, ok := st.Version(k.PrimaryVersion); ok {
		t.Fatal("destroyed key's version still present")
	}
	if _, ok := st.Alias(acct, "alias/orders"); ok {
		t.Fatal("destroyed key's alias still present")
	}
	if len(destroyed) != 1 || destroyed[0] != k.PrimaryVersion {
		t.Fatalf("OnDestroy got %v, want [%s]", destroyed, k.PrimaryVersion)
	}
}

func TestAliases(t *testing.T) {
	h := newHarness(t)
	h.createKey(acct, "key-a")
	h.createKey(acct, "key-b")
	h.mustApply(NewCreateAlias(acct, "alias/app", "key-a"))
	if r := h.apply(NewCreateAlias(acct, "alias/app", "key-b")); !errors.Is(r.Err, ErrAliasExists) {
		t.Fatalf("duplicate CreateAlias err = %v, want ErrAliasExists", r.Err)
	}
	if r := h.apply(NewCreateAlias(other, "alias/app", "key-a")); !errors.Is(r.Err, ErrKeyNotFound) {
		t.Fatalf("CreateAlias for another account's key err = %v, want ErrKeyNotFound", r.Err)
	}
	if k, err := h.f.State().ResolveKey(acct, "alias/app"); err != nil || k.ID != "key-a" {
		t.Fatalf("ResolveKey(alias/app) = %v, %v", k, err)
	}
	h.mustApply(NewUpdateAlias(acct, "alias/app", "key-b"))
	if k, _ := h.f.State().ResolveKey(acct, "alias/app"); k.ID != "key-b" {
		t.Fatalf("after UpdateAlias alias/app -> %s, want key-b", k.ID)
	}
	var of []string
	h.f.State().KeyAliases(acct, "key-a", func(a *Alias) bool { of = append(of, a.Name); return true })
	if len(of) != 0 {
		t.Fatalf("key-a still has aliases %v", of)
	}
	h.mustApply(&ScheduleKeyDeletion{Account: acct, KeyRef: "key-a", PendingDays: 7})
	if r := h.apply(NewUpdateAlias(acct, "alias/app", "key-a")); !errors.Is(r.Err, ErrPendingDeletion) {
		t.Fatalf("UpdateAlias to a key pending deletion err = %v, want ErrPendingDeletion", r.Err)
	}
	h.mustApply(&DeleteAlias{Account: acct, Name: "alias/app"})
	if r := h.apply(&DeleteAlias{Account: acct, Name: "alias/app"}); !errors.Is(r.Err, ErrAliasNotFound) {
		t.Fatalf("second DeleteAlias err = %v, want ErrAliasNotFound", r.Err)
	}
	for i := range MaxAliasesPerKey {
		h.mustApply(NewCreateAlias(acct, fmt.Sprintf("alias/n%d", i), "key-b"))
	}
	if r := h.apply(NewCreateAlias(acct, "alias/one-too-many", "key-b")); !errors.Is(r.Err, ErrAliasLimit) {
		t.Fatalf("CreateAlias beyond the limit err = %v, want ErrAliasLimit", r.Err)
	}
}

func TestAutomaticRotationHappensOncePerInterval(t *testing.T) {
	h := newHarness(t)
	h.mustApply(&CreateKey{Account: acct, ID: "key-r", VersionID: "v1", Material: []byte("m1"), RotationInterval: 7 * 86400})
	rot := func(v string) Result {
		return h.apply(&RotateKey{Account: acct, KeyID: "key-r", VersionID: v, Material: []byte("m-" + v), Reason: RotateScheduled})
	}
	if r := rot("v2"); !errors.Is(r.Err, ErrNotDue) {
		t.Fatalf("early rotation err = %v, want ErrNotDue", r.Err)
	}
	h.now += 7 * 86400 * int64(time.Second)
	k := rot("v2").Key
	if k == nil || k.PrimaryVersion != "v2" || len(k.Versions) != 2 || k.LastRotation != h.now {
		t.Fatalf("after rotation key = %+v", k)
	}
	if r := rot("v3"); !errors.Is(r.Err, ErrNotDue) {
		t.Fatalf("second rotation in the same interval err = %v, want ErrNotDue", r.Err)
	}
	if _, ok := h.f.State().Version("v1"); !ok {
		t.Fatal("old version dropped by rotation")
	}
}

func TestRetriedRequestIDReturnsFirstResultAndAppliesOnce(t *testing.T) {
	h := newHarness(t)
	h.createKey(acct, "key-a")
	hd := h.header()
	first := h.applyWith(hd, NewDisableKey(acct, "key-a"))
	h.mustApply(NewEnableKey(acct, "key-a"))
	again := h.applyWith(hd, NewDisableKey(acct, "key-a"))
	if first.Err != nil || again.Err != nil {
		t.Fatalf("errs = %v, %v", first.Err, again.Err)
	}
	if got := h.key(acct, "key-a").State; got != KeyEnabled {
		t.Fatalf("retried DisableKey applied again: state = %s", got)
	}
	// Past the window the id is forgotten.
	h.now += int64(RequestWindow) + 1
	hd.Time = h.now // the leader stamps the retry's time
	h.applyWith(hd, NewDisableKey(acct, "key-a"))
	if got := h.key(acct, "key-a").State; got != KeyDisabled {
		t.Fatalf("request id remembered past the window: state = %s", got)
	}
}

func TestABurstOfRequestIDsGivesBackItsMemoryOnceExpired(t *testing.T) {
	h := newHarness(t)
	h.createKey(acct, "key-a")
	for range 2 * minShrink {
		h.mustApply(NewEnableKey(acct, "key-a"))
	}
	h.now += int64(RequestWindow) / 2
	hd := h.header()
	hd.Time = h.now
	if r := h.applyWith(hd, NewDisableKey(acct, "key-a")); r.Err != nil {
		t.Fatal(r.Err)
	}
	h.mustApply(NewEnableKey(acct, "key-a"))
	h.now += int64(RequestWindow)/2 + 1 // the burst expires, the retried id not
	h.mustApply(NewEnableKey(acct, "key-a"))
	if live, peak, chunks := len(h.f.dd.reqs), h.f.dd.peak, len(h.f.dd.chunks); live > 3 || peak > 3 || chunks > 2 {
		t.Fatalf("after the burst expired: %d ids live, peak %d, %d chunks of entries; want the memory given back", live, peak, chunks)
	}
	hd.Time = h.now
	h.applyWith(hd, NewDisableKey(acct, "key-a"))
	if got := h.key(acct, "key-a").State; got != KeyEnabled {
		t.Fatalf("an id still in the window was forgotten when the filter shrank: state = %s", got)
	}
}

func TestReplayedNonceIsRefusedClusterWide(t *testing.T) {
	h := newHarness(t)
	h.createKey(acct, "key-a")
	minute := h.now / minuteNS
	hd := h.header()
	hd.NonceFP, hd.NonceMinute = 0xfeed, minute
	if r := h.applyWith(hd, NewDisableKey(acct, "key-a")); r.Err != nil {
		t.Fatal(r.Err)
	}
	replay := h.header() // another node: another request id, same signed nonce
	replay.NonceFP, replay.NonceMinute = 0xfeed, minute
	if r := h.applyWith(replay, NewEnableKey(acct, "key-a")); !errors.Is(r.Err, ErrNonceReused) {
		t.Fatalf("replayed nonce err = %v, want ErrNonceReused", r.Err)
	}
	late := h.header()
	late.NonceFP, late.NonceMinute = 0xbeef, minute-16
	if r := h.applyWith(late, NewEnableKey(acct, "key-a")); !errors.Is(r.Err, ErrNonceExpired) {
		t.Fatalf("nonce outside the window err = %v, want ErrNonceExpired", r.Err)
	}
	if got := h.key(acct, "key-a").State; got != KeyDisabled {
		t.Fatalf("refused commands changed state to %s", got)
	}
}

func TestStateTimeNeverGoesBackwards(t *testing.T) {
	h := newHarness(t)
	h.now = t0 - int64(time.Hour) // a new leader with a slow clock
	k := h.createKey(acct, "key-a")
	if k.Created != t0 {
		t.Fatalf("Created = %d, want %d (the previous state time)", k.Created, t0)
	}
}

func TestPublishedStateIsImmutable(t *testing.T) {
	h := newHarness(t)
	h.createKey(acct, "key-a")
	before := h.f.State()
	h.mustApply(NewDisableKey(acct, "key-a"))
	for i := range 200 {
		h.createKey(acct, fmt.Sprintf("key-%03d", i))
	}
	if k, _ := before.Key(acct, "key-a"); k.State != KeyEnabled {
		t.Fatal("an earlier State saw a later write")
	}
	n := 0
	before.Keys(acct, "", func(*Key) bool { n++; return true })
	if n != 1 {
		t.Fatalf("earlier State lists %d keys, want 1", n)
	}
}

func TestKeysPagesInIDOrder(t *testing.T) {
	h := newHarness(t)
	for _, id := range []string{"key-c", "key-a", "key-b"} {
		h.createKey(acct, id)
	}
	h.createKey(other, "key-z")
	var got []string
	h.f.State().Keys(acct, "key-a", func(k *Key) bool { got = append(got, k.ID); return true })
	if strings.Join(got, ",") != "key-b,key-c" {
		t.Fatalf("Keys after key-a = %v, want [key-b key-c]", got)
	}
}

func TestUndecodableCommittedEntryHaltsWithIndexAndTerm(t *testing.T) {
	f := New(Config{})
	defer func() {
		msg := fmt.Sprint(recover())
		if !strings.Contains(msg, "index 42 term 7") {
			t.Fatalf("panic = %q, want it to name index 42 term 7", msg)
		}
	}()
	f.Apply(&raft.Log{Index: 42, Term: 7, Type: raft.LogCommand, Data: []byte{codecVersion, 250, 1}})
	t.Fatal("Apply did not halt")
}

func TestDueIndexFollowsDeletionsAndRotations(t *testing.T) {
	h := newHarness(t)
	h.createKey(acct, "key-a")
	h.mustApply(&CreateKey{Account: acct, ID: "key-r", VersionID: "vr", Material: []byte("m"), RotationInterval: 7 * 86400})
	due := func(st *State, upTo int64) []string {
		var out []string
		st.Due(upTo, func(kind DueKind, account, id string) bool {
			out = append(out, fmt.Sprint(kind, ":", id))
			return true
		})
		return out
	}
	week := 7 * 24 * int64(time.Hour)
	if got := due(h.f.State(), t0+week); fmt.Sprint(got) != "[2:key-r]" {
		t.Fatalf("due in a week = %v, want rotation of key-r", got)
	}
	h.mustApply(&ScheduleKeyDeletion{Account: acct, KeyRef: "key-a", PendingDays: 7})
	h.mustApply(NewDisableKey(acct, "key-r")) // a disabled key does not rotate
	if got := due(h.f.State(), t0+week); fmt.Sprint(got) != "[1:key-a]" {
		t.Fatalf("due in a week = %v, want deletion of key-a", got)
	}
	if got := due(restore(t, snapshotBytes(t, h.f)).State(), t0+week); fmt.Sprint(got) != "[1:key-a]" {
		t.Fatalf("due after restore = %v, want deletion of key-a", got)
	}
	h.mustApply(NewCancelKeyDeletion(acct, "key-a"))
	if got := due(h.f.State(), t0+2*week); len(got) != 0 {
		t.Fatalf("due after cancel and disable = %v, want nothing", got)
	}
}

func TestSealReservationsAreCappedAndExhaustionRotates(t *testing.T) {
	h := newHarness(t)
	k := h.createKey(acct, "key-a")
	reserve := func(version string, n uint64) Result {
		return h.apply(&ReserveSeals{Account: acct, KeyID: "key-a", VersionID: version, Count: n})
	}
	for range 3 { // 3 × 2^30 passes RotateAtSeals (2^31)
		if r := reserve(k.PrimaryVersion, 1<<30); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if got := h.key(acct, "key-a").PrimarySeals; got != 3<<30 {
		t.Fatalf("PrimarySeals = %d, want %d", got, uint64(3<<30))
	}
	if r := reserve(k.PrimaryVersion, MaxSeals); !errors.Is(r.Err, ErrSealLimit) {
		t.Fatalf("reservation past MaxSeals err = %v, want ErrSealLimit", r.Err)
	}
	var due []DueKind
	h.f.State().Due(t0, func(kind DueKind, _, _ string) bool { due = append(due, kind); return true })
	if fmt.Sprint(due) != fmt.Sprint([]DueKind{DueExhausted}) {
		t.Fatalf("due = %v, want an exhaustion rotation", due)
	}
	rot := &RotateKey{Account: acct, KeyID: "key-a", VersionID: "v-new", Material: []byte("m"), Reason: RotateExhausted}
	nk := h.mustApply(rot).Key
	if nk.PrimaryVersion != "v-new" || nk.PrimarySeals != 0 {
		t.Fatalf("after exhaustion rotation: %+v", nk)
	}
	rot.VersionID = "v-newer"
	if r := h.apply(rot); !errors.Is(r.Err, ErrNotDue) {
		t.Fatalf("second exhaustion rotation err = %v, want ErrNotDue", r.Err)
	}
	if r := reserve(k.PrimaryVersion, 1); !errors.Is(r.Err, ErrNotPrimary) {
		t.Fatalf("reservation for the old version err = %v, want ErrNotPrimary", r.Err)
	}
}

// BenchmarkApplyCreateKey measures Apply at a steady request-id window:
// each command expires an old id and records a new one.
func BenchmarkApplyCreateKey(b *testing.B) {
	h := newHarness(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.now += int64(time.Millisecond) // 1000 commands/s: the window holds 120k ids
		h.mustApply(&CreateKey{Account: acct, ID: fmt.Sprint("key-", i), VersionID: fmt.Sprint("v-", i), Material: []byte("m")})
	}
}

func TestThereIsOneSystemAccount(t *testing.T) {
	h := newHarness(t) // made acct the system account
	if a, _ := h.f.State().Account(acct); !a.System {
		t.Fatal("the first account is not the system account")
	}
	if r := h.apply(&CreateAccount{ID: "777", AccessKeyID: "AK7", Secret: []byte{1}, System: true}); !errors.Is(r.Err, ErrAccountExists) {
		t.Fatalf("a second system account: err = %v, want ErrAccountExists", r.Err)
	}
}

func TestReserveSealsBatchReservesEachItemAndKeepsRevisions(t *testing.T) {
	h := newHarness(t)
	a, b := h.createKey(acct, "key-a"), h.createKey(acct, "key-b")
	r := h.mustApply(&ReserveSealsBatch{Items: []ReserveSeals{
		{Account: acct, KeyID: "key-a", VersionID: a.PrimaryVersion, Count: 1 << 20},
		{Account: acct, KeyID: "key-b", VersionID: "not-primary", Count: 1 << 20},
		{Account: acct, KeyID: "key-missing", VersionID: "v", Count: 1 << 20},
		{Account: acct, KeyID: "key-b", VersionID: b.PrimaryVersion, Count: MaxSeals},
	}})
	want := []uint16{0, ErrorCode(ErrNotPrimary), ErrorCode(ErrKeyNotFound), 0}
	if fmt.Sprint(r.Codes) != fmt.Sprint(want) {
		t.Fatalf("codes %v, want %v", r.Codes, want)
	}
	ka, kb := h.key(acct, "key-a"), h.key(acct, "key-b")
	if ka.PrimarySeals != 1<<20 || kb.PrimarySeals != MaxSeals {
		t.Fatalf("seals %d, %d", ka.PrimarySeals, kb.PrimarySeals)
	}
	if ka.Revision != a.Revision || kb.Revision != b.Revision {
		t.Fatal("a reservation changed a key's revision: cached policy decisions would be dropped for nothing")
	}
	if r := h.apply(&ReserveSealsBatch{}); !errors.Is(r.Err, ErrInvalidCommand) {
		t.Fatalf("an empty batch: %v", r.Err)
	}
}
