//go:build integration

package integration

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestKmsctlEnvelopeEncryption(t *testing.T) {
	k := startKMSD(t, t.TempDir())
	creds := []string{"--credentials", k.credentialsFile()}
	out, errOut, code := k.kmsctl(nil, append(creds, "create-key", "--description", "orders db")...)
	if code != 0 {
		t.Fatalf("create-key exit %d: %s", code, errOut)
	}
	var ck struct {
		KeyMetadata struct{ KeyId, Description string }
	}
	if err := json.Unmarshal([]byte(out), &ck); err != nil || ck.KeyMetadata.Description != "orders db" {
		t.Fatalf("create-key printed %s (%v)", out, err)
	}
	id := ck.KeyMetadata.KeyId

	// Credentials from the environment, as the Alibaba SDKs read them.
	c := k.credentials()
	env := []string{"ALIBABA_CLOUD_ACCESS_KEY_ID=" + c.AccessKeyID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" + c.AccessKeySecret}
	out, errOut, code = k.kmsctl(env, "generate-data-key", "--key-id", id, "--encryption-context", `{"table":"orders"}`)
	if code != 0 {
		t.Fatalf("generate-data-key exit %d: %s", code, errOut)
	}
	var dk struct{ Plaintext, CiphertextBlob, KeyId string }
	json.Unmarshal([]byte(out), &dk)
	out, errOut, code = k.kmsctl(env, "decrypt", "--ciphertext-blob", dk.CiphertextBlob, "--encryption-context", `{"table":"orders"}`)
	var p struct{ Plaintext string }
	json.Unmarshal([]byte(out), &p)
	if code != 0 || p.Plaintext != dk.Plaintext || dk.Plaintext == "" {
		t.Fatalf("decrypt exit %d (%s): Plaintext %q, want %q", code, errOut, p.Plaintext, dk.Plaintext)
	}

	// Errors: exit 1 with the Alibaba code on stderr.
	_, errOut, code = k.kmsctl(env, "decrypt", "--ciphertext-blob", dk.CiphertextBlob, "--encryption-context", `{"table":"users"}`)
	if code != 1 || !strings.HasPrefix(errOut, "InvalidCiphertext:") {
		t.Fatalf("decrypt with another context: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = k.kmsctl(env, "describe-key", "--key-id", "alias/missing")
	if code != 1 || !strings.HasPrefix(errOut, "Forbidden.AliasNotFound:") {
		t.Fatalf("describe-key of a missing alias: exit %d, stderr %q", code, errOut)
	}
	// Usage errors: exit 2.
	if _, errOut, code = k.kmsctl(env, "decrypt"); code != 2 {
		t.Fatalf("decrypt without --ciphertext-blob: exit %d (%s), want 2", code, errOut)
	}
	if _, errOut, code = k.kmsctl(env, "schedule-key-deletion", "--key-id", id, "--pending-window-in-days", "soon"); code != 2 {
		t.Fatalf("non-numeric flag: exit %d (%s), want 2", code, errOut)
	}
	// Booleans and the other subcommands reach the server.
	if _, errOut, code = k.kmsctl(env, "set-deletion-protection", "--key-id", id, "--enable-deletion-protection"); code != 0 {
		t.Fatalf("set-deletion-protection: exit %d (%s)", code, errOut)
	}
	out, _, _ = k.kmsctl(env, "describe-key", "--key-id", id)
	if !strings.Contains(out, `"DeletionProtection": "Enabled"`) {
		t.Fatalf("describe-key after protection: %s", out)
	}
	if _, errOut, code = k.kmsctl(env, "generate-data-key", "--key-id", id, "--dry-run"); code != 1 || !strings.HasPrefix(errOut, "DryRunOperationError") {
		t.Fatalf("--dry-run: exit %d (%s)", code, errOut)
	}
}
