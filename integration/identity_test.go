//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	util "github.com/alibabacloud-go/tea-utils/v2/service"
	"github.com/alibabacloud-go/tea/tea"
	classic "github.com/aliyun/alibaba-cloud-sdk-go/services/kms"

	"github.com/raftkms/raftkms/api/client"
)

// ctl runs kmsctl against k as the given AccessKey (from the environment,
// as the SDKs read it) and decodes its JSON output into out.
func ctl(t *testing.T, k *kmsd, as client.Credentials, out any, args ...string) {
	t.Helper()
	stdout, stderr, code := k.kmsctl(credEnv(as), args...)
	if code != 0 {
		t.Fatalf("kmsctl %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(stdout), out); err != nil {
			t.Fatalf("kmsctl %s printed %q: %v", strings.Join(args, " "), stdout, err)
		}
	}
}

// ctlFails runs kmsctl expecting the service to refuse with code; it
// returns the message.
func ctlFails(t *testing.T, k *kmsd, as client.Credentials, code string, args ...string) string {
	t.Helper()
	_, stderr, exit := k.kmsctl(credEnv(as), args...)
	if exit != 1 || !strings.HasPrefix(stderr, code+":") {
		t.Fatalf("kmsctl %s: exit %d, stderr %q; want exit 1 with %s", strings.Join(args, " "), exit, stderr, code)
	}
	return stderr
}

func credEnv(c client.Credentials) []string {
	return []string{"ALIBABA_CLOUD_ACCESS_KEY_ID=" + c.AccessKeyID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" + c.AccessKeySecret}
}

// issued is what create-account, create-access-key and
// create-service-principal print.
type issued struct{ AccountId, AccessKeyId, AccessKeySecret string }

func (i issued) creds() client.Credentials {
	return client.Credentials{AccessKeyID: i.AccessKeyId, AccessKeySecret: i.AccessKeySecret}
}

// tenant is an account created by the system root, with its root
// AccessKey and the generated SDK signed by it.
type tenant struct {
	issued
	sdk *kms.Client
}

func createTenant(t *testing.T, k *kmsd, name string) tenant {
	var a issued
	ctl(t, k, k.credentials(), &a, "create-account", "--account-name", name)
	if a.AccountId == "" || a.AccessKeyId == "" || a.AccessKeySecret == "" {
		t.Fatalf("create-account printed %+v", a)
	}
	return tenant{a, v3Client(t, k, a.creds(), "")}
}

var rt = &util.RuntimeOptions{Autoretry: tea.Bool(false)}

func createKeyTagged(t *testing.T, c *kms.Client, env string) (id, arn string) {
	t.Helper()
	r, err := c.CreateKeyWithOptions(&kms.CreateKeyRequest{Tags: tea.String(`[{"TagKey":"env","TagValue":"` + env + `"}]`)}, rt)
	if err != nil {
		t.Fatal(err)
	}
	return tea.StringValue(r.Body.KeyMetadata.KeyId), tea.StringValue(r.Body.KeyMetadata.Arn)
}

func keyState(t *testing.T, c *kms.Client, id string) string {
	t.Helper()
	d, err := c.DescribeKeyWithOptions(&kms.DescribeKeyRequest{KeyId: tea.String(id)}, rt)
	if err != nil {
		t.Fatal(err)
	}
	return tea.StringValue(d.Body.KeyMetadata.KeyState)
}

func keyCount(t *testing.T, c *kms.Client) int {
	t.Helper()
	l, err := c.ListKeysWithOptions(&kms.ListKeysRequest{PageSize: tea.Int32(100)}, rt)
	if err != nil {
		t.Fatal(err)
	}
	return int(tea.Int32Value(l.Body.TotalCount))
}

func gdk(c *kms.Client, key string, ec map[string]interface{}) (*kms.GenerateDataKeyResponse, error) {
	return c.GenerateDataKeyWithOptions(&kms.GenerateDataKeyRequest{KeyId: tea.String(key), EncryptionContext: ec}, rt)
}

func decrypt(c *kms.Client, blob *string, ec map[string]interface{}) (*kms.DecryptResponse, error) {
	return c.DecryptWithOptions(&kms.DecryptRequest{CiphertextBlob: blob, EncryptionContext: ec}, rt)
}

// wantDenied checks a 403 Forbidden.NoPermission whose message carries
// the policy's reason.
func wantDenied(t *testing.T, err error, reason string) {
	t.Helper()
	wantTeaError(t, err, 403, "Forbidden.NoPermission")
	if se := err.(*tea.SDKError); !strings.Contains(tea.StringValue(se.Message), reason) {
		t.Fatalf("denied with %q, want the reason %q", tea.StringValue(se.Message), reason)
	}
}

// TestTenantsUsersAndPoliciesThroughKmsctlAndTheSDKs walks the identity
// model end to end through the real binaries: accounts isolated from one
// another, users who can do only what their policy documents say, explicit
// Deny winning, ReEncrypt's two permissions, AccessKey lifecycle, and
// Rego modules that deny what the built-in rules allow.
func TestTenantsUsersAndPoliciesThroughKmsctlAndTheSDKs(t *testing.T) {
	k := startKMSD(t, t.TempDir())
	acme, globex := createTenant(t, k, "acme"), createTenant(t, k, "globex")
	devKey, devArn := createKeyTagged(t, acme.sdk, "dev")
	prodKey, _ := createKeyTagged(t, acme.sdk, "prod")
	if !strings.Contains(devArn, ":"+acme.AccountId+":key/") {
		t.Fatalf("acme's key ARN %s does not name acme's account %s", devArn, acme.AccountId)
	}
	g, err := gdk(acme.sdk, devKey, nil)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("accounts do not see each other's keys", func(t *testing.T) {
		for _, ref := range []string{devKey, devArn} {
			_, err := globex.sdk.DescribeKeyWithOptions(&kms.DescribeKeyRequest{KeyId: tea.String(ref)}, rt)
			wantTeaError(t, err, 404, "Forbidden.KeyNotFound")
		}
		_, err := decrypt(globex.sdk, g.Body.CiphertextBlob, nil)
		wantTeaError(t, err, 404, "Forbidden.KeyNotFound")
		if n := keyCount(t, globex.sdk); n != 0 {
			t.Fatalf("globex lists %d keys", n)
		}
		// Only the system root administers accounts.
		ctlFails(t, k, acme.creds(), "Forbidden.NoPermission", "create-account", "--account-name", "evil")
	})

	// A user starts with nothing.
	ctl(t, k, acme.creds(), nil, "create-user", "--user-name", "app")
	var appKey issued
	ctl(t, k, acme.creds(), &appKey, "create-access-key", "--user-name", "app")
	app := v3Client(t, k, appKey.creds(), "")
	_, err = gdk(app, devKey, nil)
	wantDenied(t, err, "no policy allows kms:GenerateDataKey for this user principal")

	t.Run("a policy document grants what it names and nothing more", func(t *testing.T) {
		ctl(t, k, acme.creds(), nil, "put-user-policy", "--user-name", "app", "--policy-name", "dev-keys", "--policy-document",
			`{"Statement":[{"Effect":"Allow","Action":["kms:GenerateDataKey","kms:Decrypt","kms:DescribeKey"],"Resource":"acs:kms:*:*:key/*",
			  "Condition":{"StringEquals":{"kms:tag/env":"dev"}}}]}`)
		mine, err := gdk(app, devKey, map[string]interface{}{"tenant": "a"})
		if err != nil {
			t.Fatalf("the policy allows GenerateDataKey on a dev key: %v", err)
		}
		if d, err := decrypt(app, mine.Body.CiphertextBlob, map[string]interface{}{"tenant": "a"}); err != nil ||
			tea.StringValue(d.Body.Plaintext) != tea.StringValue(mine.Body.Plaintext) {
			t.Fatalf("Decrypt = %v, %v", d, err)
		}
		_, err = gdk(app, prodKey, nil)
		wantDenied(t, err, "no policy allows")
		_, err = app.EncryptWithOptions(&kms.EncryptRequest{KeyId: tea.String(devKey), Plaintext: tea.String("x")}, rt)
		wantDenied(t, err, "no policy allows kms:Encrypt")
	})

	t.Run("a denied call changes nothing", func(t *testing.T) {
		before := keyCount(t, acme.sdk)
		_, err := app.CreateKeyWithOptions(&kms.CreateKeyRequest{}, rt)
		wantDenied(t, err, "no policy allows kms:CreateKey")
		_, err = app.ScheduleKeyDeletionWithOptions(&kms.ScheduleKeyDeletionRequest{KeyId: tea.String(devKey), PendingWindowInDays: tea.Int32(7)}, rt)
		wantDenied(t, err, "no policy allows kms:ScheduleKeyDeletion")
		_, err = app.CreateAliasWithOptions(&kms.CreateAliasRequest{AliasName: tea.String("alias/mine"), KeyId: tea.String(devKey)}, rt)
		wantTeaError(t, err, 403, "Forbidden.NoPermission")
		if after := keyCount(t, acme.sdk); after != before {
			t.Fatalf("a denied CreateKey left %d keys, there were %d", after, before)
		}
		if s := keyState(t, acme.sdk, devKey); s != "Enabled" {
			t.Fatalf("a denied ScheduleKeyDeletion left the key %s", s)
		}
		if l, err := acme.sdk.ListAliasesWithOptions(&kms.ListAliasesRequest{}, rt); err != nil || tea.Int32Value(l.Body.TotalCount) != 0 {
			t.Fatalf("a denied CreateAlias left aliases: %v, %v", l, err)
		}
	})

	t.Run("an explicit Deny wins over an Allow", func(t *testing.T) {
		ctl(t, k, acme.creds(), nil, "put-user-policy", "--user-name", "app", "--policy-name", "not-tenant-x", "--policy-document",
			`{"Statement":[{"Effect":"Deny","Action":"kms:Decrypt","Resource":"*","Condition":{"StringEquals":{"kms:EncryptionContext/tenant":"x"}}}]}`)
		x, err := gdk(app, devKey, map[string]interface{}{"tenant": "x"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = decrypt(app, x.Body.CiphertextBlob, map[string]interface{}{"tenant": "x"})
		wantDenied(t, err, "explicitly denied by policy not-tenant-x")
		y, _ := gdk(app, devKey, map[string]interface{}{"tenant": "y"})
		if _, err := decrypt(app, y.Body.CiphertextBlob, map[string]interface{}{"tenant": "y"}); err != nil {
			t.Fatalf("another tenant's context decrypts: %v", err)
		}
	})

	t.Run("ReEncrypt needs ReEncryptFrom on the source and ReEncryptTo on the destination", func(t *testing.T) {
		otherDev, _ := createKeyTagged(t, acme.sdk, "dev")
		reencrypt := func() error {
			_, err := app.ReEncryptWithOptions(&kms.ReEncryptRequest{CiphertextBlob: g.Body.CiphertextBlob, DestinationKeyId: tea.String(otherDev)}, rt)
			return err
		}
		wantDenied(t, reencrypt(), "no policy allows kms:ReEncryptFrom")
		ctl(t, k, acme.creds(), nil, "put-user-policy", "--user-name", "app", "--policy-name", "reencrypt-from", "--policy-document",
			`{"Statement":[{"Effect":"Allow","Action":"kms:ReEncryptFrom","Resource":"`+devArn+`"}]}`)
		wantDenied(t, reencrypt(), "no policy allows kms:ReEncryptTo")
		ctl(t, k, acme.creds(), nil, "put-user-policy", "--user-name", "app", "--policy-name", "reencrypt-to", "--policy-document",
			`{"Statement":[{"Effect":"Allow","Action":"kms:ReEncryptTo","Resource":"*"}]}`)
		if err := reencrypt(); err != nil {
			t.Fatalf("with both permissions: %v", err)
		}
		var policies struct {
			Policies struct{ Policy []struct{ PolicyName string } }
		}
		ctl(t, k, acme.creds(), &policies, "list-user-policies", "--user-name", "app")
		if n := len(policies.Policies.Policy); n != 4 {
			t.Fatalf("list-user-policies: %d policies, want 4", n)
		}
		ctl(t, k, acme.creds(), nil, "delete-user-policy", "--user-name", "app", "--policy-name", "reencrypt-to")
		wantDenied(t, reencrypt(), "no policy allows kms:ReEncryptTo")
	})

	t.Run("AccessKeys: several per user, last use, disable, delete", func(t *testing.T) {
		var second issued
		ctl(t, k, acme.creds(), &second, "create-access-key", "--user-name", "app")
		app2 := v3Client(t, k, second.creds(), "")
		if _, err := gdk(app2, devKey, nil); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "the AccessKey's last use to be replicated", func() error {
			var l struct {
				AccessKeys struct {
					AccessKey []struct{ AccessKeyId, Status, LastUsedDate string }
				}
			}
			ctl(t, k, acme.creds(), &l, "list-access-keys", "--user-name", "app")
			if len(l.AccessKeys.AccessKey) != 2 {
				t.Fatalf("list-access-keys = %+v", l)
			}
			for _, ak := range l.AccessKeys.AccessKey {
				if ak.Status != "Active" || ak.LastUsedDate == "" {
					return fmt.Errorf("%+v", ak)
				}
			}
			return nil
		})
		ctl(t, k, acme.creds(), nil, "update-access-key", "--access-key-id", second.AccessKeyId, "--status", "Inactive")
		_, err := gdk(app2, devKey, nil)
		wantTeaError(t, err, 403, "InvalidAccessKeyId.Inactive")
		if _, err := gdk(app, devKey, nil); err != nil {
			t.Fatalf("the user's other AccessKey stops working too: %v", err)
		}
		ctl(t, k, acme.creds(), nil, "update-access-key", "--access-key-id", second.AccessKeyId, "--status", "Active")
		if _, err := gdk(app2, devKey, nil); err != nil {
			t.Fatalf("re-enabled AccessKey: %v", err)
		}
		ctl(t, k, acme.creds(), nil, "delete-access-key", "--access-key-id", second.AccessKeyId)
		_, err = gdk(app2, devKey, nil)
		wantTeaError(t, err, 404, "InvalidAccessKeyId.NotFound")
		// Another account cannot touch acme's AccessKeys.
		ctlFails(t, k, globex.creds(), "EntityNotExist.AccessKey", "delete-access-key", "--access-key-id", appKey.AccessKeyId)
	})

	t.Run("Rego modules deny what the built-in rules allow and grant what they do not", func(t *testing.T) {
		dir := t.TempDir()
		write := func(name, src string) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}
		sys := k.credentials()
		guard := write("guard.rego", `package kms.custom.guard

deny contains "prod keys are never deleted" if {
	input.action == "kms:ScheduleKeyDeletion"
	input.resource.tags.env == "prod"
}

allow contains "auditors describe keys" if {
	input.principal.type == "user"
	input.principal.name == "auditor"
	input.action == "kms:DescribeKey"
}
`)
		ctlFails(t, k, acme.creds(), "Forbidden.NoPermission", "put-rego-policy", "--policy-name", "guard", "--module-file", guard)
		ctl(t, k, sys, nil, "put-rego-policy", "--policy-name", "guard", "--module-file", guard)
		// The account's root may do everything in its account — but not this.
		_, err := acme.sdk.ScheduleKeyDeletionWithOptions(&kms.ScheduleKeyDeletionRequest{KeyId: tea.String(prodKey), PendingWindowInDays: tea.Int32(7)}, rt)
		wantDenied(t, err, "prod keys are never deleted")
		if s := keyState(t, acme.sdk, prodKey); s != "Enabled" {
			t.Fatalf("the denied deletion left the key %s", s)
		}
		ctl(t, k, acme.creds(), nil, "create-user", "--user-name", "auditor")
		var auditorKey issued
		ctl(t, k, acme.creds(), &auditorKey, "create-access-key", "--user-name", "auditor")
		auditor := v3Client(t, k, auditorKey.creds(), "")
		if s := keyState(t, auditor, prodKey); s != "Enabled" {
			t.Fatalf("auditor sees %s", s)
		}
		_, err = gdk(auditor, prodKey, nil)
		wantDenied(t, err, "no policy allows")

		// The example module: keys tagged env=prod are for prod-… users.
		ctl(t, k, sys, nil, "put-rego-policy", "--policy-name", "key-tags", "--module-file", "../examples/policies/key_tags.rego")
		ctl(t, k, acme.creds(), nil, "put-user-policy", "--user-name", "app", "--policy-name", "all", "--policy-document",
			`{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}`)
		_, err = gdk(app, prodKey, nil)
		wantDenied(t, err, "keys tagged env=prod are for prod-… principals")
		if _, err := gdk(app, devKey, nil); err != nil {
			t.Fatalf("dev keys stay open to app: %v", err)
		}

		// The cluster decides an author's input document under what it published.
		in := write("input.json", `{"action":"kms:GenerateDataKey","principal":{"type":"user","name":"app"},
			"resource":{"account":"`+acme.AccountId+`","class":"customer","creator":"`+acme.AccountId+`","tags":{"env":"prod"}}}`)
		var d struct {
			Allow   bool
			Reasons []string
		}
		ctl(t, k, acme.creds(), &d, "policy", "eval", "--remote", "--input", in)
		if d.Allow || len(d.Reasons) != 1 || d.Reasons[0] != "keys tagged env=prod are for prod-… principals" {
			t.Fatalf("policy eval --remote = %+v", d)
		}

		// A module that does not compile is refused and nothing changes.
		broken := write("broken.rego", "package kms.custom.guard\n\ndeny contains \"x\" if {\n")
		msg := ctlFails(t, k, sys, "InvalidParameter", "put-rego-policy", "--policy-name", "guard", "--module-file", broken)
		if !strings.Contains(msg, "guard") {
			t.Fatalf("the refusal does not name the module: %s", msg)
		}
		_, err = acme.sdk.ScheduleKeyDeletionWithOptions(&kms.ScheduleKeyDeletionRequest{KeyId: tea.String(prodKey), PendingWindowInDays: tea.Int32(7)}, rt)
		wantDenied(t, err, "prod keys are never deleted")
		var mods struct {
			Policies struct{ Policy []struct{ PolicyName string } }
		}
		ctl(t, k, sys, &mods, "list-rego-policies")
		if n := len(mods.Policies.Policy); n != 2 {
			t.Fatalf("list-rego-policies: %d modules, want 2", n)
		}

		ctl(t, k, sys, nil, "delete-rego-policy", "--policy-name", "guard")
		if _, err := acme.sdk.ScheduleKeyDeletionWithOptions(&kms.ScheduleKeyDeletionRequest{KeyId: tea.String(prodKey), PendingWindowInDays: tea.Int32(7)}, rt); err != nil {
			t.Fatalf("after the module is withdrawn: %v", err)
		}
	})

	t.Run("a deleted user's AccessKeys stop working", func(t *testing.T) {
		ctl(t, k, acme.creds(), nil, "delete-user", "--user-name", "app")
		_, err := gdk(app, devKey, nil)
		wantTeaError(t, err, 404, "InvalidAccessKeyId.NotFound")
	})

	t.Run("an account without keys can be deleted", func(t *testing.T) {
		var l struct {
			Accounts struct{ Account []struct{ AccountId string } }
		}
		ctl(t, k, k.credentials(), &l, "list-accounts")
		if n := len(l.Accounts.Account); n != 3 {
			t.Fatalf("list-accounts: %d accounts, want system, acme and globex", n)
		}
		ctlFails(t, k, k.credentials(), "DeleteConflict.Account.Key", "delete-account", "--account-id", acme.AccountId)
		ctl(t, k, k.credentials(), nil, "delete-account", "--account-id", globex.AccountId)
		_, err := globex.sdk.ListKeysWithOptions(&kms.ListKeysRequest{}, rt)
		wantTeaError(t, err, 404, "InvalidAccessKeyId.NotFound")
	})
}

// TestServiceKeysThroughTheClassicSDK: a cloud product's first call for
// alias/acs/<product> makes its account's service key, which the account
// sees but does not manage or use.
func TestServiceKeysThroughTheClassicSDK(t *testing.T) {
	k := startKMSD(t, t.TempDir())
	acme := createTenant(t, k, "acme")
	var ecsKey issued
	ctl(t, k, acme.creds(), &ecsKey, "create-service-principal", "--product-code", "ecs")
	ecs := classicClient(t, k, ecsKey.creds())
	g := classic.CreateGenerateDataKeyRequest()
	g.KeyId = "alias/acs/ecs"
	dk, err := ecs.GenerateDataKey(g)
	if err != nil {
		t.Fatalf("first use of alias/acs/ecs: %v", err)
	}
	dec := classic.CreateDecryptRequest()
	dec.CiphertextBlob = dk.CiphertextBlob
	if p, err := ecs.Decrypt(dec); err != nil || p.Plaintext != dk.Plaintext {
		t.Fatalf("ecs decrypts its data key: %v, %v", p, err)
	}

	// The account sees the key…
	d, err := acme.sdk.DescribeKeyWithOptions(&kms.DescribeKeyRequest{KeyId: tea.String("alias/acs/ecs")}, rt)
	if err != nil || tea.StringValue(d.Body.KeyMetadata.KeyId) != dk.KeyId || tea.StringValue(d.Body.KeyMetadata.Creator) != "ecs" {
		t.Fatalf("DescribeKey(alias/acs/ecs) = %v, %v", d, err)
	}
	l, err := acme.sdk.ListKeysWithOptions(&kms.ListKeysRequest{Filters: tea.String(`[{"Key":"CreatorType","Values":["Service"]}]`)}, rt)
	if err != nil || tea.Int32Value(l.Body.TotalCount) != 1 || tea.StringValue(l.Body.Keys.Key[0].KeyId) != dk.KeyId {
		t.Fatalf("ListKeys CreatorType=Service = %v, %v", l, err)
	}
	// …but neither manages nor uses it.
	id := tea.String(dk.KeyId)
	_, err = acme.sdk.DisableKeyWithOptions(&kms.DisableKeyRequest{KeyId: id}, rt)
	wantTeaError(t, err, 403, "Forbidden.ServiceKey")
	_, err = acme.sdk.EnableKeyWithOptions(&kms.EnableKeyRequest{KeyId: id}, rt)
	wantTeaError(t, err, 403, "Forbidden.ServiceKey")
	_, err = acme.sdk.ScheduleKeyDeletionWithOptions(&kms.ScheduleKeyDeletionRequest{KeyId: id, PendingWindowInDays: tea.Int32(7)}, rt)
	wantTeaError(t, err, 403, "Forbidden.ServiceKey")
	_, err = acme.sdk.DeleteAliasWithOptions(&kms.DeleteAliasRequest{AliasName: tea.String("alias/acs/ecs")}, rt)
	wantTeaError(t, err, 403, "Forbidden.ServiceKey")
	mine, _ := createKeyTagged(t, acme.sdk, "dev")
	_, err = acme.sdk.UpdateAliasWithOptions(&kms.UpdateAliasRequest{AliasName: tea.String("alias/acs/ecs"), KeyId: tea.String(mine)}, rt)
	wantTeaError(t, err, 403, "Forbidden.ServiceKey")
	_, err = acme.sdk.CreateAliasWithOptions(&kms.CreateAliasRequest{AliasName: tea.String("alias/acs/oss"), KeyId: tea.String(mine)}, rt)
	wantTeaError(t, err, 400, "InvalidParameter")
	_, err = decrypt(acme.sdk, tea.String(dk.CiphertextBlob), nil)
	wantDenied(t, err, "only ecs uses its service key for kms:Decrypt")
	if s := keyState(t, acme.sdk, dk.KeyId); s != "Enabled" {
		t.Fatalf("the service key is %s", s)
	}

	// The product uses only its service key.
	g.KeyId = mine
	_, err = ecs.GenerateDataKey(g)
	wantSDKError(t, err, 403, "Forbidden.NoPermission")

	// The account sees the product's use of its service key in the trail.
	acmeFile := filepath.Join(t.TempDir(), "acme.json")
	b, _ := json.Marshal(acme.issued)
	os.WriteFile(acmeFile, b, 0o600)
	evs, _ := lookup(t, k, acmeFile, "--key-id", dk.KeyId, "--event-name", "GenerateDataKey")
	if len(evs) != 1 || evs[0].PrincipalType != "service" || evs[0].PrincipalName != "ecs" || evs[0].AccessKeyID != ecsKey.AccessKeyId {
		t.Fatalf("the account's view of its service key's use: %+v", evs)
	}
	// Signed with V1 by the classic SDK: the record keeps none of the
	// signature's parameters.
	for _, p := range evs[0].Params {
		if strings.HasPrefix(p.Name, "Signature") || p.Name == "AccessKeyId" || p.Name == "Timestamp" {
			t.Fatalf("the record keeps the signature parameter %s", p.Name)
		}
	}
}

// TestClusterServiceKeyIsCreatedOnceUnderConcurrentFirstCalls: a product's
// first calls arrive on every node at once; all of them get one key.
func TestClusterServiceKeyIsCreatedOnceUnderConcurrentFirstCalls(t *testing.T) {
	c := startCluster(t, 3)
	first := c.nodes[0] // holds the system root's credentials
	acme := createTenant(t, first, "acme")
	var sp issued
	ctl(t, first, acme.creds(), &sp, "create-service-principal", "--product-code", "rds")

	const perNode = 4
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[string]int{}
		errs []error
	)
	start := make(chan struct{})
	for _, k := range c.nodes {
		cli := k.clientWith(sp.creds())
		for range perNode {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()
				dk, err := cli.GenerateDataKey(ctx, "alias/acs/rds", 0, nil)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				seen[dk.KeyID]++
			}()
		}
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 || len(seen) != 1 {
		t.Fatalf("%d concurrent first calls from %d nodes: keys %v, errors %v", perNode*len(c.nodes), len(c.nodes), seen, errs)
	}
	for _, k := range c.nodes {
		l, err := v3Client(t, k, acme.creds(), "").ListKeysWithOptions(&kms.ListKeysRequest{}, rt)
		if err != nil || tea.Int32Value(l.Body.TotalCount) != 1 {
			t.Fatalf("node %s: acme has %v keys (%v), want the one service key", k.id, l, err)
		}
	}
}
