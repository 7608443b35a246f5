package api

import (
	"context"
	"encoding/base64"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftkms/raftkms/crypto"
	"github.com/raftkms/raftkms/fsm"
)

func TestGenerateDataKeyBlobDecryptsToThePlaintext(t *testing.T) {
	tn := startTestNode(t)
	id := tn.createKey(t)
	ctx := context.Background()
	for _, n := range []int{0, 1, 16, 1024} {
		dk, err := tn.cli.GenerateDataKey(ctx, id, n, map[string]string{"table": "orders", "app": "shop"})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.StdEncoding.DecodeString(dk.Plaintext)
		want := n
		if n == 0 {
			want = 32
		}
		if err != nil || len(raw) != want {
			t.Fatalf("data key of %d bytes: Plaintext decodes to %d bytes (%v)", want, len(raw), err)
		}
		if dk.KeyID != id || !crypto.IsUUID([]byte(dk.KeyVersionID)) {
			t.Fatalf("GenerateDataKey = %+v", dk)
		}
		// The context is matched as a map: another key order decrypts.
		p, err := tn.cli.Decrypt(ctx, dk.CiphertextBlob, map[string]string{"app": "shop", "table": "orders"})
		if err != nil || p.Plaintext != dk.Plaintext || p.KeyID != id || p.KeyVersionID != dk.KeyVersionID {
			t.Fatalf("Decrypt = %+v, %v; want Plaintext %q", p, err, dk.Plaintext)
		}
	}
}

func TestEncryptRoundTripsTheExactText(t *testing.T) {
	tn := startTestNode(t)
	id := tn.createKey(t)
	ctx := context.Background()
	for _, pt := range []string{"hello world+*~", "SGVsbG8=", "日本語 ✓ \u2028 \"quoted\" \\ back", strings.Repeat("x", 6144), "a&b=c%20d"} {
		ct, err := tn.cli.Encrypt(ctx, id, pt, nil)
		if err != nil {
			t.Fatalf("Encrypt(%.20q): %v", pt, err)
		}
		raw, _ := base64.StdEncoding.DecodeString(ct.CiphertextBlob)
		if string(raw[:36]) != ct.KeyVersionID {
			t.Fatalf("blob starts with %q, want the KeyVersionId %q", raw[:36], ct.KeyVersionID)
		}
		p, err := tn.cli.Decrypt(ctx, ct.CiphertextBlob, nil)
		if err != nil || p.Plaintext != pt {
			t.Fatalf("Decrypt = %.30q, %v; want %.30q", p.Plaintext, err, pt)
		}
	}
}

func TestDecryptWithWrongContextFails(t *testing.T) {
	tn := startTestNode(t)
	id := tn.createKey(t)
	ct, err := tn.cli.Encrypt(context.Background(), id, "secret", map[string]string{"a": "1", "b": "2"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ec := range []string{"", `{}`, `{"a":"1"}`, `{"a":"1","b":"3"}`, `{"a":"1&b=2"}`, `{"a":"1","b":"2","c":"3"}`} {
		p := map[string]string{"CiphertextBlob": ct.CiphertextBlob}
		if ec != "" {
			p["EncryptionContext"] = ec
		}
		tn.wantCode(t, "Decrypt", p, 400, "InvalidCiphertext")
	}
}

func TestReEncryptMovesCiphertextToAnotherKeyAndContext(t *testing.T) {
	tn := startTestNode(t)
	src, dst := tn.createKey(t), tn.createKey(t)
	ctx := context.Background()
	ct, err := tn.cli.Encrypt(ctx, src, "payload", map[string]string{"v": "1"})
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ CiphertextBlob, KeyId, KeyVersionId string }
	tn.call(t, "ReEncrypt", map[string]string{"CiphertextBlob": ct.CiphertextBlob, "DestinationKeyId": dst,
		"SourceEncryptionContext": `{"v":"1"}`, "DestinationEncryptionContext": `{"v":"2"}`}, &out)
	if out.KeyId != dst {
		t.Fatalf("ReEncrypt KeyId = %s, want %s", out.KeyId, dst)
	}
	p, err := tn.cli.Decrypt(ctx, out.CiphertextBlob, map[string]string{"v": "2"})
	if err != nil || p.Plaintext != "payload" || p.KeyID != dst {
		t.Fatalf("Decrypt(re-encrypted) = %+v, %v", p, err)
	}
	tn.wantCode(t, "ReEncrypt", map[string]string{"CiphertextBlob": ct.CiphertextBlob, "DestinationKeyId": dst}, 400, "InvalidCiphertext")
	// The source key's state decides, not the destination's (each is read
	// into a buffer of its own).
	tn.call(t, "DisableKey", map[string]string{"KeyId": src}, nil)
	tn.wantCode(t, "ReEncrypt", map[string]string{"CiphertextBlob": ct.CiphertextBlob, "DestinationKeyId": dst,
		"SourceEncryptionContext": `{"v":"1"}`}, 409, "Rejected.Disabled")
}

func TestCryptographyFollowsTheKeyState(t *testing.T) {
	tn := startTestNode(t)
	id := tn.createKey(t)
	ctx := context.Background()
	ct, err := tn.cli.Encrypt(ctx, id, "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	gdk := map[string]string{"KeyId": id}
	dec := map[string]string{"CiphertextBlob": ct.CiphertextBlob}
	tn.call(t, "DisableKey", map[string]string{"KeyId": id}, nil)
	tn.wantCode(t, "GenerateDataKey", gdk, 409, "Rejected.Disabled")
	tn.wantCode(t, "Decrypt", dec, 409, "Rejected.Disabled")
	tn.wantCode(t, "Encrypt", map[string]string{"KeyId": id, "Plaintext": "x"}, 409, "Rejected.Disabled")
	tn.call(t, "ScheduleKeyDeletion", map[string]string{"KeyId": id, "PendingWindowInDays": "7"}, nil)
	tn.wantCode(t, "GenerateDataKey", gdk, 409, "Rejected.PendingDeletion")
	tn.wantCode(t, "Decrypt", dec, 409, "Rejected.PendingDeletion")
	tn.wantCode(t, "EnableKey", map[string]string{"KeyId": id}, 409, "Rejected.StateModifiedFailed")
	tn.call(t, "CancelKeyDeletion", map[string]string{"KeyId": id}, nil)
	if _, err := tn.cli.Decrypt(ctx, ct.CiphertextBlob, nil); err != nil {
		t.Fatalf("Decrypt after CancelKeyDeletion: %v", err)
	}
}

func TestDryRunChecksEverythingAndChangesNothing(t *testing.T) {
	tn := startTestNode(t)
	id := tn.createKey(t)
	ct, _ := tn.cli.Encrypt(context.Background(), id, "x", nil)
	tn.wantCode(t, "GenerateDataKey", map[string]string{"KeyId": id, "DryRun": "true"}, 412, "DryRunOperationError")
	tn.wantCode(t, "Encrypt", map[string]string{"KeyId": id, "Plaintext": "x", "DryRun": "true"}, 412, "DryRunOperationError")
	tn.wantCode(t, "Decrypt", map[string]string{"CiphertextBlob": ct.CiphertextBlob, "DryRun": "true"}, 412, "DryRunOperationError")
	tn.wantCode(t, "GenerateDataKey", map[string]string{"KeyId": "key-doesnotexist0000000", "DryRun": "true"}, 404, "Forbidden.KeyNotFound")
	tn.call(t, "DisableKey", map[string]string{"KeyId": id}, nil)
	tn.wantCode(t, "GenerateDataKey", map[string]string{"KeyId": id, "DryRun": "true"}, 409, "Rejected.Disabled")
}

// countingProposer counts the commands a node proposes (n) and the
// trail batches it commits (commits).
type countingProposer struct {
	Proposer
	n, commits atomic.Int64
}

func (p *countingProposer) Propose(ctx context.Context, cmd []byte) (fsm.Result, error) {
	p.n.Add(1)
	return p.Proposer.Propose(ctx, cmd)
}

func (p *countingProposer) Commit(ctx context.Context, cmd []byte) (fsm.Result, error) {
	p.commits.Add(1)
	return p.Proposer.Commit(ctx, cmd)
}

// TestFastPathMakesNoRaftRoundTrip: after a key version's first use (which
// reserves its encryption budget once), GenerateDataKey, Encrypt and
// Decrypt propose nothing.
func TestFastPathMakesNoRaftRoundTrip(t *testing.T) {
	tn := startTestNode(t)
	id := tn.createKey(t)
	ctx := context.Background()
	cp := &countingProposer{Proposer: tn.srv.deps.Proposer}
	tn.srv.deps.Proposer = cp
	dk, err := tn.cli.GenerateDataKey(ctx, id, 0, nil) // first use: one reservation
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for cp.n.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // condition poll: the reservation runs in the background
	}
	before := cp.n.Load()
	for range 200 {
		if _, err := tn.cli.GenerateDataKey(ctx, id, 0, map[string]string{"k": "v"}); err != nil {
			t.Fatal(err)
		}
		if _, err := tn.cli.Encrypt(ctx, id, "x", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := tn.cli.Decrypt(ctx, dk.CiphertextBlob, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := cp.n.Load() - before; n != 0 {
		t.Fatalf("600 fast-path calls proposed %d commands, want 0", n)
	}
}

// TestACallsSecretsAreClearedWhenItEnds: the pooled buffers that held a
// data key, its base64 or a reply carrying them are zero once the call is
// back in the pool, as the handlers write them (a prefix each).
func TestACallsSecretsAreClearedWhenItEnds(t *testing.T) {
	c := callPool.Get().(*call)
	c.plain = c.plain[:maxDataKeyLen]
	crypto.Fill(c.plain)
	c.plainText = base64.StdEncoding.AppendEncode(c.plainText[:0], c.plain)
	c.out = append(c.out[:0], `{"Plaintext":"`...)
	c.out = append(append(c.out, c.plainText...), `"}`...)
	held := [][]byte{c.plain[:cap(c.plain)], c.plainText[:cap(c.plainText)], c.out[:cap(c.out)]}
	putCall(c)
	for i, b := range held {
		for j, x := range b {
			if x != 0 {
				t.Fatalf("buffer %d: byte %d is %#x after the call ended", i, j, x)
			}
		}
	}
}
