package fsm

import (
	"errors"
	"testing"
)

func TestUsersOwnTheirAccessKeysAndPolicies(t *testing.T) {
	h := newHarness(t)
	h.mustApply(&CreateUser{Account: acct, Name: "alice"})
	if r := h.apply(&CreateUser{Account: acct, Name: "alice"}); !errors.Is(r.Err, ErrUserExists) {
		t.Fatalf("duplicate CreateUser err = %v", r.Err)
	}
	if r := h.apply(&CreateAccessKey{Account: acct, Kind: PrincipalUser, Principal: "bob", AccessKeyID: "AKB", Secret: []byte{1}}); !errors.Is(r.Err, ErrUserNotFound) {
		t.Fatalf("AccessKey for a missing user err = %v", r.Err)
	}
	for i := range MaxAccessKeysPerPrincipal {
		h.mustApply(&CreateAccessKey{Account: acct, Kind: PrincipalUser, Principal: "alice", AccessKeyID: string(rune('A' + i)), Secret: []byte{1}})
	}
	if r := h.apply(&CreateAccessKey{Account: acct, Kind: PrincipalUser, Principal: "alice", AccessKeyID: "AKX", Secret: []byte{1}}); !errors.Is(r.Err, ErrAccessKeyLimit) {
		t.Fatalf("one AccessKey too many err = %v", r.Err)
	}
	h.mustApply(&PutUserPolicy{Account: acct, User: "alice", Name: "p", Document: "{}"})
	h.mustApply(&SetAccessKeyStatus{Account: acct, AccessKeyID: "A", Active: false})
	if ak, _ := h.f.State().AccessKey("A"); ak.Active {
		t.Fatal("disabled AccessKey is active")
	}
	if r := h.apply(&SetAccessKeyStatus{Account: other, AccessKeyID: "B", Active: false}); !errors.Is(r.Err, ErrAccessKeyNotFound) {
		t.Fatalf("another account changed alice's key: %v", r.Err)
	}
	h.mustApply(&DeleteUser{Account: acct, Name: "alice"})
	st := h.f.State()
	if _, ok := st.AccessKey("B"); ok {
		t.Fatal("a deleted user's AccessKey survived")
	}
	n := 0
	st.UserPolicies(acct, "alice", func(*UserPolicy) bool { n++; return true })
	if n != 0 {
		t.Fatal("a deleted user's policy survived")
	}
}

func TestAnAccountKeepsAnActiveRootAccessKey(t *testing.T) {
	h := newHarness(t)
	if r := h.apply(&DeleteAccessKey{Account: acct, AccessKeyID: "AK1"}); !errors.Is(r.Err, ErrLastRootAccessKey) {
		t.Fatalf("deleting the last root AccessKey err = %v", r.Err)
	}
	if r := h.apply(&SetAccessKeyStatus{Account: acct, AccessKeyID: "AK1", Active: false}); !errors.Is(r.Err, ErrLastRootAccessKey) {
		t.Fatalf("disabling the last root AccessKey err = %v", r.Err)
	}
	h.mustApply(&CreateAccessKey{Account: acct, Kind: PrincipalRoot, AccessKeyID: "AK1b", Secret: []byte{1}})
	h.mustApply(&DeleteAccessKey{Account: acct, AccessKeyID: "AK1"})
}

func TestDeleteAccount(t *testing.T) {
	h := newHarness(t)
	if r := h.apply(&DeleteAccount{ID: acct}); !errors.Is(r.Err, ErrSystemAccount) {
		t.Fatalf("deleting the system account err = %v", r.Err)
	}
	h.createKey(other, "key-o")
	if r := h.apply(&DeleteAccount{ID: other}); !errors.Is(r.Err, ErrAccountNotEmpty) {
		t.Fatalf("deleting an account with keys err = %v", r.Err)
	}
	h.mustApply(&CreateAccount{ID: "555", Name: "empty", AccessKeyID: "AK5", Secret: []byte{1}})
	h.mustApply(&CreateUser{Account: "555", Name: "u"})
	h.mustApply(&DeleteAccount{ID: "555"})
	st := h.f.State()
	if _, ok := st.Account("555"); ok {
		t.Fatal("account survived")
	}
	if _, ok := st.AccessKey("AK5"); ok {
		t.Fatal("the account's AccessKey survived")
	}
	if _, ok := st.User("555", "u"); ok {
		t.Fatal("the account's user survived")
	}
}

func TestServiceKeyIsCreatedOnceAndOnlyItsProductRunsItsLifecycle(t *testing.T) {
	h := newHarness(t)
	first := &CreateServiceKey{Account: acct, Product: "ecs", KeyID: "key-s1", VersionID: "vs1", Material: []byte{1}}
	if r := h.apply(first); !errors.Is(r.Err, ErrServiceNotFound) {
		t.Fatalf("service key without a service principal err = %v", r.Err)
	}
	h.mustApply(&CreateServicePrincipal{Account: acct, Product: "ecs", AccessKeyID: "AKECS", Secret: []byte("w-ecs")})
	k := h.mustApply(first).Key
	// A second node's concurrent first use proposes another id: it gets the first key.
	again := h.mustApply(&CreateServiceKey{Account: acct, Product: "ecs", KeyID: "key-s2", VersionID: "vs2", Material: []byte{2}}).Key
	if k == nil || again == nil || again.ID != k.ID || !k.IsServiceKey() || k.Product != "ecs" {
		t.Fatalf("service keys: %+v then %+v", k, again)
	}
	if _, ok := h.f.State().Key(acct, "key-s2"); ok {
		t.Fatal("a second service key was created")
	}
	for name, c := range map[string]Command{
		"DisableKey":            NewDisableKey(acct, "alias/acs/ecs"),
		"EnableKey":             NewEnableKey(acct, k.ID),
		"ScheduleKeyDeletion":   &ScheduleKeyDeletion{Account: acct, KeyRef: k.ID, PendingDays: 7},
		"SetDeletionProtection": &SetDeletionProtection{Account: acct, KeyRef: k.ID, Enable: true},
		"UpdateKeyDescription":  &UpdateKeyDescription{Account: acct, KeyRef: k.ID, Description: "x"},
		"CreateAlias":           NewCreateAlias(acct, "alias/mine", k.ID),
		"DeleteAlias":           &DeleteAlias{Account: acct, Name: "alias/acs/ecs"},
		"CreateAlias acs":       NewCreateAlias(acct, "alias/acs/oss", "key-x"),
	} {
		if r := h.apply(c); !errors.Is(r.Err, ErrServiceKey) {
			t.Errorf("%s on a service key err = %v, want ErrServiceKey", name, r.Err)
		}
	}
}

func TestServicePrincipalComesWithItsFirstAccessKeyOrNotAtAll(t *testing.T) {
	h := newHarness(t)
	h.mustApply(&CreateUser{Account: acct, Name: "u"})
	h.mustApply(&CreateAccessKey{Account: acct, Kind: PrincipalUser, Principal: "u", AccessKeyID: "AKTAKEN", Secret: []byte{1}})
	if r := h.apply(&CreateServicePrincipal{Account: acct, Product: "ecs", AccessKeyID: "AKTAKEN", Secret: []byte{2}}); !errors.Is(r.Err, ErrAccessKeyExists) {
		t.Fatalf("with a taken AccessKey id err = %v", r.Err)
	}
	if _, ok := h.f.State().ServicePrincipal(acct, "ecs"); ok {
		t.Fatal("the service principal was created without its AccessKey")
	}
	h.mustApply(&CreateServicePrincipal{Account: acct, Product: "ecs", AccessKeyID: "AKECS", Secret: []byte{2}})
	ak, ok := h.f.State().AccessKey("AKECS")
	if !ok || ak.Kind != PrincipalService || ak.Principal != "ecs" || !ak.Active {
		t.Fatalf("the service principal's AccessKey = %+v", ak)
	}
}

func TestPolicyVersionAndKeyRevision(t *testing.T) {
	h := newHarness(t)
	v0 := h.f.State().PolicyVersion()
	k := h.createKey(acct, "key-a")
	if h.f.State().PolicyVersion() != v0 {
		t.Fatal("a key change bumped the policy version")
	}
	r1 := k.Revision
	k2 := h.mustApply(&UpdateKeyDescription{Account: acct, KeyRef: "key-a", Description: "d"}).Key
	if r1 == 0 || k2.Revision <= r1 {
		t.Fatalf("revisions %d then %d", r1, k2.Revision)
	}
	h.mustApply(&CreateUser{Account: acct, Name: "u"})
	if h.f.State().PolicyVersion() <= v0 {
		t.Fatal("an identity change did not bump the policy version")
	}
}
