//go:build integration

package integration

import (
	"errors"
	"strings"
	"testing"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/kms"

	"github.com/raftkms/raftkms/api/client"
)

// classicClient is the unmodified classic SDK (signature V1, HMAC-SHA1)
// pointed at k, with the given AccessKey.
func classicClient(t *testing.T, k *kmsd, c client.Credentials) *kms.Client {
	cli, err := kms.NewClientWithAccessKey("cn-hangzhou", c.AccessKeyID, c.AccessKeySecret)
	if err != nil {
		t.Fatal(err)
	}
	cli.Domain = k.api
	cli.GetConfig().WithScheme("HTTP").WithAutoRetry(false)
	return cli
}

// wantSDKError checks a classic-SDK error's code and HTTP status.
func wantSDKError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var se *sdkerrors.ServerError
	if !errors.As(err, &se) || se.ErrorCode() != code || se.HttpStatus() != status {
		t.Fatalf("err = %v, want %d %s", err, status, code)
	}
}

// TestClassicSDK drives every action through the classic SDK
// (github.com/aliyun/alibaba-cloud-sdk-go/services/kms, signature V1).
func TestClassicSDK(t *testing.T) {
	k := startKMSD(t, t.TempDir())
	c := classicClient(t, k, k.credentials())

	ck := kms.CreateCreateKeyRequest()
	ck.Description = "orders db"
	ck.KeySpec = "Aliyun_AES_256"
	ck.KeyUsage = "ENCRYPT/DECRYPT"
	ck.EnableAutomaticRotation = requests.NewBoolean(true)
	ck.RotationInterval = "365d"
	created, err := c.CreateKey(ck)
	if err != nil {
		t.Fatal(err)
	}
	md := created.KeyMetadata
	if md.KeyState != "Enabled" || md.Description != "orders db" || md.RotationInterval != "31536000s" || md.AutomaticRotation != "Enabled" {
		t.Fatalf("CreateKey metadata = %+v", md)
	}
	id := md.KeyId
	second, err := c.CreateKey(kms.CreateCreateKeyRequest())
	if err != nil {
		t.Fatal(err)
	}

	dk := kms.CreateDescribeKeyRequest()
	dk.KeyId = id
	d, err := c.DescribeKey(dk)
	if err != nil || d.KeyMetadata.Arn != md.Arn || d.KeyMetadata.DeletionProtection != "Disabled" {
		t.Fatalf("DescribeKey = %+v, %v", d, err)
	}

	lk := kms.CreateListKeysRequest()
	lk.PageSize = requests.NewInteger(1)
	lk.Filters = `[{"Key":"KeyState","Values":["Enabled"]}]`
	l, err := c.ListKeys(lk)
	if err != nil || l.TotalCount != 2 || len(l.Keys.Key) != 1 || l.PageSize != 1 {
		t.Fatalf("ListKeys = %+v, %v", l, err)
	}

	ud := kms.CreateUpdateKeyDescriptionRequest()
	ud.KeyId, ud.Description = id, "orders db (prod)"
	if _, err := c.UpdateKeyDescription(ud); err != nil {
		t.Fatal(err)
	}

	// Aliases.
	ca := kms.CreateCreateAliasRequest()
	ca.AliasName, ca.KeyId = "alias/orders", id
	if _, err := c.CreateAlias(ca); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateAlias(ca); err == nil {
		t.Fatal("duplicate CreateAlias succeeded")
	} else {
		wantSDKError(t, err, 400, "AliasAlreadyExists")
	}
	ua := kms.CreateUpdateAliasRequest()
	ua.AliasName, ua.KeyId = "alias/orders", second.KeyMetadata.KeyId
	if _, err := c.UpdateAlias(ua); err != nil {
		t.Fatal(err)
	}
	ua.KeyId = id
	if _, err := c.UpdateAlias(ua); err != nil {
		t.Fatal(err)
	}
	la, err := c.ListAliases(kms.CreateListAliasesRequest())
	if err != nil || la.TotalCount != 1 || la.Aliases.Alias[0].KeyId != id || !strings.HasSuffix(la.Aliases.Alias[0].AliasArn, ":alias/orders") {
		t.Fatalf("ListAliases = %+v, %v", la, err)
	}
	lak := kms.CreateListAliasesByKeyIdRequest()
	lak.KeyId = id
	if r, err := c.ListAliasesByKeyId(lak); err != nil || r.TotalCount != 1 {
		t.Fatalf("ListAliasesByKeyId = %+v, %v", r, err)
	}

	// Envelope encryption through the alias.
	g := kms.CreateGenerateDataKeyRequest()
	g.KeyId, g.KeySpec, g.EncryptionContext = "alias/orders", "AES_256", `{"app":"demo","table":"orders"}`
	gr, err := c.GenerateDataKey(g)
	if err != nil || gr.KeyId != id || gr.KeyVersionId != md.PrimaryKeyVersion {
		t.Fatalf("GenerateDataKey = %+v, %v", gr, err)
	}
	dec := kms.CreateDecryptRequest()
	dec.CiphertextBlob, dec.EncryptionContext = gr.CiphertextBlob, `{"table":"orders","app":"demo"}`
	dr, err := c.Decrypt(dec)
	if err != nil || dr.Plaintext != gr.Plaintext || dr.KeyId != id {
		t.Fatalf("Decrypt = %+v, %v; want Plaintext %s", dr, err, gr.Plaintext)
	}
	gw := kms.CreateGenerateDataKeyWithoutPlaintextRequest()
	gw.KeyId, gw.NumberOfBytes = id, requests.NewInteger(64)
	gwr, err := c.GenerateDataKeyWithoutPlaintext(gw)
	if err != nil || gwr.CiphertextBlob == "" {
		t.Fatalf("GenerateDataKeyWithoutPlaintext = %+v, %v", gwr, err)
	}

	e := kms.CreateEncryptRequest()
	e.KeyId, e.Plaintext = md.Arn, "hello world+*~"
	er, err := c.Encrypt(e)
	if err != nil {
		t.Fatal(err)
	}
	re := kms.CreateReEncryptRequest()
	re.CiphertextBlob, re.DestinationKeyId, re.DestinationEncryptionContext = er.CiphertextBlob, second.KeyMetadata.KeyId, `{"v":"2"}`
	rer, err := c.ReEncrypt(re)
	if err != nil || rer.KeyId != second.KeyMetadata.KeyId {
		t.Fatalf("ReEncrypt = %+v, %v", rer, err)
	}
	dec = kms.CreateDecryptRequest()
	dec.CiphertextBlob, dec.EncryptionContext = rer.CiphertextBlob, `{"v":"2"}`
	if dr, err := c.Decrypt(dec); err != nil || dr.Plaintext != "hello world+*~" {
		t.Fatalf("Decrypt(ReEncrypt) = %+v, %v", dr, err)
	}

	// State changes and the state matrix.
	dis := kms.CreateDisableKeyRequest()
	dis.KeyId = id
	if _, err := c.DisableKey(dis); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GenerateDataKey(g); err == nil {
		t.Fatal("GenerateDataKey on a disabled key succeeded")
	} else {
		wantSDKError(t, err, 409, "Rejected.Disabled")
	}
	en := kms.CreateEnableKeyRequest()
	en.KeyId = id
	if _, err := c.EnableKey(en); err != nil {
		t.Fatal(err)
	}
	sp := kms.CreateSetDeletionProtectionRequest()
	sp.ProtectedResourceArn, sp.EnableDeletionProtection, sp.DeletionProtectionDescription = md.Arn, requests.NewBoolean(true), "prod"
	if _, err := c.SetDeletionProtection(sp); err != nil {
		t.Fatal(err)
	}
	sd := kms.CreateScheduleKeyDeletionRequest()
	sd.KeyId, sd.PendingWindowInDays = id, requests.NewInteger(7)
	if _, err := c.ScheduleKeyDeletion(sd); err == nil {
		t.Fatal("ScheduleKeyDeletion of a protected key succeeded")
	} else {
		wantSDKError(t, err, 409, "Rejected.DeletionProtection")
	}
	sp.EnableDeletionProtection = requests.NewBoolean(false)
	if _, err := c.SetDeletionProtection(sp); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ScheduleKeyDeletion(sd); err != nil {
		t.Fatal(err)
	}
	if d, _ := c.DescribeKey(dk); d.KeyMetadata.KeyState != "PendingDeletion" || d.KeyMetadata.DeleteDate == "" {
		t.Fatalf("after ScheduleKeyDeletion: %+v", d.KeyMetadata)
	}
	cd := kms.CreateCancelKeyDeletionRequest()
	cd.KeyId = id
	if _, err := c.CancelKeyDeletion(cd); err != nil {
		t.Fatal(err)
	}

	da := kms.CreateDeleteAliasRequest()
	da.AliasName = "alias/orders"
	if _, err := c.DeleteAlias(da); err != nil {
		t.Fatal(err)
	}
	regions, err := c.DescribeRegions(kms.CreateDescribeRegionsRequest())
	if err != nil || len(regions.Regions.Region) != 1 || regions.Regions.Region[0].RegionId != "cn-hangzhou" {
		t.Fatalf("DescribeRegions = %+v, %v", regions, err)
	}
	pw := kms.CreateGetRandomPasswordRequest()
	pw.PasswordLength, pw.ExcludePunctuation = "20", "true"
	pr, err := c.GetRandomPassword(pw)
	if err != nil || len(pr.RandomPassword) != 20 || strings.ContainsAny(pr.RandomPassword, "!#$%&*+,-./:;<=>?@") {
		t.Fatalf("GetRandomPassword = %+v, %v", pr, err)
	}

	// Errors the SDK surfaces with the Alibaba code.
	dk.KeyId = "key-doesnotexist"
	_, err = c.DescribeKey(dk)
	wantSDKError(t, err, 404, "Forbidden.KeyNotFound")
	dec = kms.CreateDecryptRequest()
	dec.CiphertextBlob = "bm90IGEgYmxvYg=="
	_, err = c.Decrypt(dec)
	wantSDKError(t, err, 400, "InvalidParameter")
}
