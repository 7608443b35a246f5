package api

import (
	"context"
	"testing"
	"time"

	"github.com/raftkms/raftkms/crypto"
	"github.com/raftkms/raftkms/fsm"
)

func TestDueDeletionDestroysTheKeyMaterial(t *testing.T) {
	tn := startTestNode(t)
	id := tn.createKey(t)
	tn.call(t, "CreateAlias", map[string]string{"AliasName": "alias/doomed", "KeyId": id}, nil)
	versionID := tn.describe(t, id)["PrimaryKeyVersion"]
	if _, err := tn.cli.GenerateDataKey(context.Background(), id, 0, nil); err != nil {
		t.Fatal(err) // puts the version in the keyring
	}
	tn.call(t, "ScheduleKeyDeletion", map[string]string{"KeyId": id, "PendingWindowInDays": "7"}, nil)

	tn.srv.maintain(context.Background()) // not due yet
	if _, ok := tn.fsm.State().Version(versionID); !ok {
		t.Fatal("key destroyed before its DeleteDate")
	}
	tn.clock.Advance(7*24*time.Hour + time.Second)
	// Due: it reads as not found at once, before the leader destroys it.
	tn.wantCode(t, "DescribeKey", map[string]string{"KeyId": id}, 404, "Forbidden.KeyNotFound")
	tn.wantCode(t, "CancelKeyDeletion", map[string]string{"KeyId": id}, 404, "Forbidden.KeyNotFound")

	tn.srv.maintain(context.Background())
	st := tn.fsm.State()
	if _, ok := st.Key(tn.account(t), id); ok {
		t.Fatal("key still present after maintenance")
	}
	if _, ok := st.Version(versionID); ok {
		t.Fatal("key version still present after maintenance")
	}
	if n := tn.srv.deps.Keyring.Len(); n != 0 {
		t.Fatalf("keyring still holds %d versions of destroyed keys", n)
	}
	tn.wantCode(t, "DescribeKey", map[string]string{"KeyId": "alias/doomed"}, 404, "Forbidden.AliasNotFound")
}

func TestAutomaticRotationAddsAPrimaryVersionAndOldBlobsStillDecrypt(t *testing.T) {
	tn := startTestNode(t)
	var out describeKeyOut
	tn.call(t, "CreateKey", map[string]string{"EnableAutomaticRotation": "true", "RotationInterval": "7d"}, &out)
	id, v1 := out.KeyMetadata["KeyId"], out.KeyMetadata["PrimaryKeyVersion"]
	ctx := context.Background()
	old, err := tn.cli.Encrypt(ctx, id, "before rotation", nil)
	if err != nil {
		t.Fatal(err)
	}
	tn.clock.Advance(7*24*time.Hour + time.Second)
	tn.srv.maintain(ctx)
	tn.srv.maintain(ctx) // a second pass in the same interval rotates nothing
	m := tn.describe(t, id)
	v2 := m["PrimaryKeyVersion"]
	if v2 == v1 || m["LastRotationDate"] == m["CreationDate"] {
		t.Fatalf("after rotation: %v", m)
	}
	if n := len(tn.fsmKey(t, id).Versions); n != 2 {
		t.Fatalf("key has %d versions after one interval, want 2", n)
	}
	ct, err := tn.cli.Encrypt(ctx, id, "after rotation", nil)
	if err != nil || ct.KeyVersionID != v2 {
		t.Fatalf("Encrypt after rotation used %s (%v), want the new primary %s", ct.KeyVersionID, err, v2)
	}
	p, err := tn.cli.Decrypt(ctx, old.CiphertextBlob, nil)
	if err != nil || p.Plaintext != "before rotation" || p.KeyVersionID != v1 {
		t.Fatalf("Decrypt of a pre-rotation blob = %+v, %v", p, err)
	}
}

// account returns the root account's id.
func (tn *testNode) account(t testing.TB) string {
	ak, ok := tn.fsm.State().AccessKey(tn.creds.AccessKeyID)
	if !ok {
		t.Fatal("root access key not in state")
	}
	return ak.Account
}

func (tn *testNode) fsmKey(t testing.TB, id string) *fsm.Key {
	k, ok := tn.fsm.State().Key(tn.account(t), id)
	if !ok {
		t.Fatalf("key %s not in state", id)
	}
	return k
}

func TestEncryptionBudgetIsReservedAndExhaustionRotates(t *testing.T) {
	tn := startTestNode(t)
	id := tn.createKey(t)
	ctx := context.Background()
	dk, err := tn.cli.GenerateDataKey(ctx, id, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The first encryption reserved this node's first grant through Raft.
	deadline := time.Now().Add(5 * time.Second)
	for tn.fsmKey(t, id).PrimarySeals != crypto.SealGrant {
		if time.Now().After(deadline) {
			t.Fatalf("PrimarySeals = %d, want one grant (%d)", tn.fsmKey(t, id).PrimarySeals, crypto.SealGrant)
		}
		time.Sleep(5 * time.Millisecond) // condition poll
	}
	// Other nodes reserve the rest up to the rotation threshold.
	k := tn.fsmKey(t, id)
	if err := tn.srv.proposeSystem(ctx, &fsm.ReserveSeals{Account: k.Account, KeyID: id, VersionID: k.PrimaryVersion, Count: fsm.RotateAtSeals}); err != nil {
		t.Fatal(err)
	}
	tn.srv.maintain(ctx)
	if nk := tn.fsmKey(t, id); nk.PrimaryVersion == k.PrimaryVersion || nk.PrimarySeals != 0 {
		t.Fatalf("after exhaustion maintenance: primary %s seals %d, want a new primary", nk.PrimaryVersion, nk.PrimarySeals)
	}
	dk2, err := tn.cli.GenerateDataKey(ctx, id, 0, nil)
	if err != nil || dk2.KeyVersionID == dk.KeyVersionID {
		t.Fatalf("GenerateDataKey after rotation used %s (%v), want a new version", dk2.KeyVersionID, err)
	}
	if p, err := tn.cli.Decrypt(ctx, dk.CiphertextBlob, nil); err != nil || p.Plaintext != dk.Plaintext {
		t.Fatalf("Decrypt of a blob from the exhausted version = %v, %v", p, err)
	}
}
