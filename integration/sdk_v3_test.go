//go:build integration

package integration

import (
	"errors"
	"testing"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	util "github.com/alibabacloud-go/tea-utils/v2/service"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/raftkms/raftkms/api/client"
)

// v3Client is the unmodified generated SDK
// (github.com/alibabacloud-go/kms-20160120/v3), which signs with V3
// (ACS3-HMAC-SHA256) — or with V1 when signatureAlgorithm is "v2" — with
// the given AccessKey.
func v3Client(t *testing.T, k *kmsd, c client.Credentials, signatureAlgorithm string) *kms.Client {
	cfg := &openapi.Config{AccessKeyId: tea.String(c.AccessKeyID), AccessKeySecret: tea.String(c.AccessKeySecret),
		RegionId: tea.String("cn-hangzhou"), Endpoint: tea.String(k.api), Protocol: tea.String("http")}
	if signatureAlgorithm != "" {
		cfg.SignatureAlgorithm = tea.String(signatureAlgorithm)
	}
	cli, err := kms.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

func wantTeaError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var se *tea.SDKError
	if !errors.As(err, &se) || tea.StringValue(se.Code) != code || tea.IntValue(se.StatusCode) != status {
		t.Fatalf("err = %v, want %d %s", err, status, code)
	}
}

// TestV3SDK drives every action through the generated SDK, signing with V3
// and, in a second pass, with V1 as SignatureAlgorithm "v2" makes it do.
func TestV3SDK(t *testing.T) {
	k := startKMSD(t, t.TempDir())
	for _, alg := range []string{"", "v2"} {
		t.Run("signature="+map[string]string{"": "v3", "v2": "v1"}[alg], func(t *testing.T) {
			runV3Scenario(t, v3Client(t, k, k.credentials(), alg))
		})
	}
}

func runV3Scenario(t *testing.T, c *kms.Client) {
	rt := &util.RuntimeOptions{Autoretry: tea.Bool(false)}
	ck, err := c.CreateKeyWithOptions(&kms.CreateKeyRequest{Description: tea.String("v3 key"), KeySpec: tea.String("Aliyun_AES_256"),
		Tags: tea.String(`[{"TagKey":"env","TagValue":"test"}]`)}, rt)
	if err != nil {
		t.Fatal(err)
	}
	md := ck.Body.KeyMetadata
	id := md.KeyId
	if tea.StringValue(md.KeyState) != "Enabled" || tea.StringValue(ck.Body.RequestId) == "" {
		t.Fatalf("CreateKey = %v", ck.Body)
	}
	other, err := c.CreateKeyWithOptions(&kms.CreateKeyRequest{}, rt)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := c.DescribeKeyWithOptions(&kms.DescribeKeyRequest{KeyId: id}, rt); err != nil || tea.StringValue(d.Body.KeyMetadata.Arn) != tea.StringValue(md.Arn) {
		t.Fatalf("DescribeKey = %v, %v", d, err)
	}
	if l, err := c.ListKeysWithOptions(&kms.ListKeysRequest{PageSize: tea.Int32(100)}, rt); err != nil || len(l.Body.Keys.Key) < 2 {
		t.Fatalf("ListKeys = %v, %v", l, err)
	}
	if _, err := c.UpdateKeyDescriptionWithOptions(&kms.UpdateKeyDescriptionRequest{KeyId: id, Description: tea.String("renamed")}, rt); err != nil {
		t.Fatal(err)
	}
	alias := tea.String("alias/v3-" + tea.StringValue(id))
	if _, err := c.CreateAliasWithOptions(&kms.CreateAliasRequest{AliasName: alias, KeyId: id}, rt); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateAliasWithOptions(&kms.UpdateAliasRequest{AliasName: alias, KeyId: other.Body.KeyMetadata.KeyId}, rt); err != nil {
		t.Fatal(err)
	}
	if r, err := c.ListAliasesByKeyIdWithOptions(&kms.ListAliasesByKeyIdRequest{KeyId: other.Body.KeyMetadata.KeyId}, rt); err != nil || tea.Int32Value(r.Body.TotalCount) != 1 {
		t.Fatalf("ListAliasesByKeyId = %v, %v", r, err)
	}
	if r, err := c.ListAliasesWithOptions(&kms.ListAliasesRequest{}, rt); err != nil || tea.Int32Value(r.Body.TotalCount) < 1 {
		t.Fatalf("ListAliases = %v, %v", r, err)
	}
	if _, err := c.DeleteAliasWithOptions(&kms.DeleteAliasRequest{AliasName: alias}, rt); err != nil {
		t.Fatal(err)
	}

	ec := map[string]interface{}{"app": "demo", "table": "orders"}
	g, err := c.GenerateDataKeyWithOptions(&kms.GenerateDataKeyRequest{KeyId: id, KeySpec: tea.String("AES_128"), EncryptionContext: ec}, rt)
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.DecryptWithOptions(&kms.DecryptRequest{CiphertextBlob: g.Body.CiphertextBlob, EncryptionContext: ec}, rt)
	if err != nil || tea.StringValue(d.Body.Plaintext) != tea.StringValue(g.Body.Plaintext) {
		t.Fatalf("Decrypt = %v, %v; want %s", d, err, tea.StringValue(g.Body.Plaintext))
	}
	if _, err := c.GenerateDataKeyWithoutPlaintextWithOptions(&kms.GenerateDataKeyWithoutPlaintextRequest{KeyId: id, NumberOfBytes: tea.Int32(1024)}, rt); err != nil {
		t.Fatal(err)
	}
	e, err := c.EncryptWithOptions(&kms.EncryptRequest{KeyId: id, Plaintext: tea.String("hello world+*~ ✓")}, rt)
	if err != nil {
		t.Fatal(err)
	}
	re, err := c.ReEncryptWithOptions(&kms.ReEncryptRequest{CiphertextBlob: e.Body.CiphertextBlob, DestinationKeyId: other.Body.KeyMetadata.KeyId,
		DestinationEncryptionContext: map[string]interface{}{"v": "2"}}, rt)
	if err != nil {
		t.Fatal(err)
	}
	d, err = c.DecryptWithOptions(&kms.DecryptRequest{CiphertextBlob: re.Body.CiphertextBlob, EncryptionContext: map[string]interface{}{"v": "2"}}, rt)
	if err != nil || tea.StringValue(d.Body.Plaintext) != "hello world+*~ ✓" {
		t.Fatalf("Decrypt(ReEncrypt) = %v, %v", d, err)
	}
	_, err = c.GenerateDataKeyWithOptions(&kms.GenerateDataKeyRequest{KeyId: id, EncryptionContext: map[string]interface{}{"n": 1}}, rt)
	wantTeaError(t, err, 400, "InvalidParameter")
	_, err = c.DecryptWithOptions(&kms.DecryptRequest{CiphertextBlob: g.Body.CiphertextBlob}, rt)
	wantTeaError(t, err, 400, "InvalidCiphertext")
	_, err = c.EncryptWithOptions(&kms.EncryptRequest{KeyId: id, Plaintext: tea.String("x"), DryRun: tea.String("true")}, rt)
	wantTeaError(t, err, 412, "DryRunOperationError")

	if _, err := c.DisableKeyWithOptions(&kms.DisableKeyRequest{KeyId: id}, rt); err != nil {
		t.Fatal(err)
	}
	_, err = c.EncryptWithOptions(&kms.EncryptRequest{KeyId: id, Plaintext: tea.String("x")}, rt)
	wantTeaError(t, err, 409, "Rejected.Disabled")
	if _, err := c.EnableKeyWithOptions(&kms.EnableKeyRequest{KeyId: id}, rt); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetDeletionProtectionWithOptions(&kms.SetDeletionProtectionRequest{ProtectedResourceArn: md.Arn,
		EnableDeletionProtection: tea.Bool(true)}, rt); err != nil {
		t.Fatal(err)
	}
	_, err = c.ScheduleKeyDeletionWithOptions(&kms.ScheduleKeyDeletionRequest{KeyId: id, PendingWindowInDays: tea.Int32(7)}, rt)
	wantTeaError(t, err, 409, "Rejected.DeletionProtection")
	if _, err := c.ScheduleKeyDeletionWithOptions(&kms.ScheduleKeyDeletionRequest{KeyId: other.Body.KeyMetadata.KeyId, PendingWindowInDays: tea.Int32(30)}, rt); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CancelKeyDeletionWithOptions(&kms.CancelKeyDeletionRequest{KeyId: other.Body.KeyMetadata.KeyId}, rt); err != nil {
		t.Fatal(err)
	}
	if r, err := c.DescribeRegionsWithOptions(rt); err != nil || tea.StringValue(r.Body.Regions.Region[0].RegionId) != "cn-hangzhou" {
		t.Fatalf("DescribeRegions = %v, %v", r, err)
	}
	if r, err := c.GetRandomPasswordWithOptions(&kms.GetRandomPasswordRequest{PasswordLength: tea.String("64")}, rt); err != nil || len(tea.StringValue(r.Body.RandomPassword)) != 64 {
		t.Fatalf("GetRandomPassword = %v, %v", r, err)
	}
	_, err = c.DescribeKeyWithOptions(&kms.DescribeKeyRequest{KeyId: tea.String("alias/none")}, rt)
	wantTeaError(t, err, 404, "Forbidden.AliasNotFound")
}
