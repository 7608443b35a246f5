package api

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/raftkms/raftkms/api/client"
)

// own calls one of raftkms's own actions with c and decodes the reply.
func own(t testing.TB, c *client.Client, action string, params map[string]string, out any) {
	t.Helper()
	b, err := c.CallVersion(context.Background(), OwnVersion, action, params)
	if err != nil {
		t.Fatalf("%s(%v): %v", action, params, err)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatal(err)
		}
	}
}

func ownCode(t testing.TB, c *client.Client, action string, params map[string]string, status int, code string) {
	t.Helper()
	_, err := c.CallVersion(context.Background(), OwnVersion, action, params)
	if ae, ok := err.(*client.Error); !ok || ae.Code != code || ae.StatusCode != status {
		t.Fatalf("%s(%v) err = %v, want %d %s", action, params, err, status, code)
	}
}

func wantErr(t testing.TB, err error, status int, code string) *client.Error {
	t.Helper()
	ae, ok := err.(*client.Error)
	if !ok || ae.Code != code || ae.StatusCode != status {
		t.Fatalf("err = %v, want %d %s", err, status, code)
	}
	return ae
}

func creds(t testing.TB, v struct{ AccessKeyId, AccessKeySecret string }) client.Credentials {
	if v.AccessKeyId == "" || v.AccessKeySecret == "" {
		t.Fatal("no AccessKey in the reply")
	}
	return client.Credentials{AccessKeyID: v.AccessKeyId, AccessKeySecret: v.AccessKeySecret}
}

func TestUserPoliciesGrantAndDenyAndTakeEffectAtOnce(t *testing.T) {
	tn := startTestNode(t)
	ctx := context.Background()
	var tagged struct{ KeyMetadata struct{ KeyId string } }
	tn.call(t, "CreateKey", map[string]string{"Tags": `[{"TagKey":"env","TagValue":"prod"}]`}, &tagged)
	id, prod := tn.createKey(t), tagged.KeyMetadata.KeyId
	own(t, tn.cli, "CreateUser", map[string]string{"UserName": "alice"}, nil)
	var ak struct{ AccessKeyId, AccessKeySecret string }
	own(t, tn.cli, "CreateAccessKey", map[string]string{"UserName": "alice"}, &ak)
	alice := tn.client(t, creds(t, ak))

	_, err := alice.GenerateDataKey(ctx, id, 0, nil)
	e := wantErr(t, err, 403, "Forbidden.NoPermission")
	if !strings.Contains(e.Message, "no policy allows kms:GenerateDataKey") {
		t.Fatalf("denial message %q does not give the reason", e.Message)
	}
	if _, err := alice.Call(ctx, "CreateKey", nil); err == nil {
		t.Fatal("a user without policies created a key")
	}
	var l struct{ TotalCount int }
	tn.call(t, "ListKeys", nil, &l)
	if l.TotalCount != 2 {
		t.Fatalf("a denied call changed state: %d keys", l.TotalCount)
	}

	own(t, tn.cli, "PutUserPolicy", map[string]string{"UserName": "alice", "PolicyName": "use-keys",
		"PolicyDocument": `{"Statement":[{"Effect":"Allow","Action":["kms:GenerateDataKey","kms:Decrypt"],"Resource":"acs:kms:*:*:key/*"},
		{"Effect":"Deny","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"kms:tag/env":"prod"}}}]}`}, nil)
	dk, err := alice.GenerateDataKey(ctx, id, 0, nil)
	if err != nil {
		t.Fatalf("after PutUserPolicy: %v", err)
	}
	if _, err := alice.Decrypt(ctx, dk.CiphertextBlob, nil); err != nil {
		t.Fatal(err)
	}
	_, err = alice.GenerateDataKey(ctx, prod, 0, nil)
	if e := wantErr(t, err, 403, "Forbidden.NoPermission"); !strings.Contains(e.Message, "explicitly denied by policy use-keys") {
		t.Fatalf("explicit deny message %q", e.Message)
	}
	_, err = alice.Encrypt(ctx, id, "x", nil)
	wantErr(t, err, 403, "Forbidden.NoPermission")

	own(t, tn.cli, "DeleteUserPolicy", map[string]string{"UserName": "alice", "PolicyName": "use-keys"}, nil)
	_, err = alice.GenerateDataKey(ctx, id, 0, nil)
	wantErr(t, err, 403, "Forbidden.NoPermission")

	ownCode(t, tn.cli, "PutUserPolicy", map[string]string{"UserName": "alice", "PolicyName": "bad",
		"PolicyDocument": `{"Statement":[{"Effect":"Perhaps","Action":"kms:*"}]}`}, 400, "InvalidParameter")
	ownCode(t, tn.cli, "PutUserPolicy", map[string]string{"UserName": "nobody", "PolicyName": "p",
		"PolicyDocument": `{"Statement":[{"Effect":"Allow","Action":"kms:*"}]}`}, 404, "EntityNotExist.User")
	// A user's own AccessKeys cannot manage the account.
	ownCode(t, alice, "CreateUser", map[string]string{"UserName": "mallory"}, 403, "Forbidden.NoPermission")
}

func TestAccountsAreIsolated(t *testing.T) {
	tn := startTestNode(t)
	ctx := context.Background()
	id := tn.createKey(t)
	arn := tn.describe(t, id)["Arn"]
	var acct struct {
		AccountId                    string
		AccessKeyId, AccessKeySecret string
	}
	own(t, tn.cli, "CreateAccount", map[string]string{"AccountName": "tenant-b"}, &acct)
	b := tn.client(t, client.Credentials{AccessKeyID: acct.AccessKeyId, AccessKeySecret: acct.AccessKeySecret})
	for _, ref := range []string{id, arn} {
		_, err := b.DescribeKey(ctx, ref)
		wantErr(t, err, 404, "Forbidden.KeyNotFound")
	}
	dk, err := tn.cli.GenerateDataKey(ctx, id, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Decrypt(ctx, dk.CiphertextBlob, nil)
	wantErr(t, err, 404, "Forbidden.KeyNotFound")
	var l struct{ TotalCount int }
	if err := b.Do(ctx, "ListKeys", nil, &l); err != nil || l.TotalCount != 0 {
		t.Fatalf("tenant B lists %d keys (%v)", l.TotalCount, err)
	}
	mine, err := b.CreateKey(ctx, "b's key")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(mine.Arn, ":"+acct.AccountId+":key/") {
		t.Fatalf("tenant B's key ARN %s does not name its account", mine.Arn)
	}
	// Only the system account's root administers accounts and the cluster.
	ownCode(t, b, "CreateAccount", map[string]string{"AccountName": "c"}, 403, "Forbidden.NoPermission")
	ownCode(t, b, "DescribeCluster", nil, 403, "Forbidden.NoPermission")
	ownCode(t, tn.cli, "DeleteAccount", map[string]string{"AccountId": acct.AccountId}, 409, "DeleteConflict.Account.Key")
	var accounts struct {
		Accounts struct{ Account []struct{ AccountId string } }
	}
	own(t, tn.cli, "ListAccounts", nil, &accounts)
	if len(accounts.Accounts.Account) != 2 {
		t.Fatalf("ListAccounts = %+v", accounts)
	}
}

func TestServiceKeys(t *testing.T) {
	tn := startTestNode(t)
	ctx := context.Background()
	var sp struct{ AccessKeyId, AccessKeySecret string }
	own(t, tn.cli, "CreateServicePrincipal", map[string]string{"ProductCode": "ecs"}, &sp)
	ecs := tn.client(t, creds(t, sp))
	dk, err := ecs.GenerateDataKey(ctx, "alias/acs/ecs", 0, nil)
	if err != nil {
		t.Fatalf("first use of alias/acs/ecs: %v", err)
	}
	again, err := ecs.GenerateDataKey(ctx, "alias/acs/ecs", 0, nil)
	if err != nil || again.KeyID != dk.KeyID {
		t.Fatalf("second use got %s (%v), want the same key %s", again.KeyID, err, dk.KeyID)
	}
	if p, err := ecs.Decrypt(ctx, dk.CiphertextBlob, nil); err != nil || p.Plaintext != dk.Plaintext {
		t.Fatalf("the product decrypts its data: %v, %v", p, err)
	}
	// The account's root sees it but does not run its lifecycle or use it.
	m := tn.describe(t, "alias/acs/ecs")
	if m["KeyId"] != dk.KeyID {
		t.Fatalf("DescribeKey(alias/acs/ecs) = %v", m)
	}
	var l struct{ TotalCount int }
	tn.call(t, "ListKeys", map[string]string{"Filters": `[{"Key":"CreatorType","Values":["Service"]}]`}, &l)
	if l.TotalCount != 1 {
		t.Fatalf("ListKeys CreatorType=Service: %d", l.TotalCount)
	}
	for action, p := range map[string]map[string]string{
		"DisableKey":          {"KeyId": dk.KeyID},
		"ScheduleKeyDeletion": {"KeyId": dk.KeyID, "PendingWindowInDays": "7"},
		"UpdateAlias":         {"AliasName": "alias/acs/ecs", "KeyId": tn.createKey(t)},
		"DeleteAlias":         {"AliasName": "alias/acs/ecs"},
	} {
		_, err := tn.cli.Call(ctx, action, p)
		wantErr(t, err, 403, "Forbidden.ServiceKey")
	}
	tn.wantCode(t, "CreateAlias", map[string]string{"AliasName": "alias/acs/oss", "KeyId": dk.KeyID}, 400, "InvalidParameter")
	_, err = tn.cli.GenerateDataKey(ctx, dk.KeyID, 0, nil)
	wantErr(t, err, 403, "Forbidden.NoPermission")
	// Another product does not get ecs's key, nor a key of its own by guessing.
	var oss struct{ AccessKeyId, AccessKeySecret string }
	own(t, tn.cli, "CreateServicePrincipal", map[string]string{"ProductCode": "oss"}, &oss)
	_, err = tn.client(t, creds(t, oss)).GenerateDataKey(ctx, "alias/acs/ecs", 0, nil)
	wantErr(t, err, 403, "Forbidden.NoPermission")
}

func TestRegoModulesArePublishedCheckedAndWithdrawn(t *testing.T) {
	tn := startTestNode(t)
	id := tn.createKey(t)
	ownCode(t, tn.cli, "PutRegoPolicy", map[string]string{"PolicyName": "broken", "Module": "package kms.custom\ndeny contains x if {"}, 400, "InvalidParameter")
	ownCode(t, tn.cli, "PutRegoPolicy", map[string]string{"PolicyName": "hijack", "Module": "package kms.authz\nallowed := true\n"}, 400, "InvalidParameter")
	var list struct {
		Policies struct{ Policy []struct{ PolicyName string } }
	}
	own(t, tn.cli, "ListRegoPolicies", nil, &list)
	if len(list.Policies.Policy) != 0 {
		t.Fatalf("a refused module was stored: %+v", list)
	}
	own(t, tn.cli, "PutRegoPolicy", map[string]string{"PolicyName": "no-describe", "Module": `package kms.custom

deny contains "DescribeKey is switched off" if input.action == "kms:DescribeKey"
`}, nil)
	_, err := tn.cli.DescribeKey(context.Background(), id)
	if e := wantErr(t, err, 403, "Forbidden.NoPermission"); !strings.Contains(e.Message, "DescribeKey is switched off") {
		t.Fatalf("message %q", e.Message)
	}
	var got struct{ PolicyName, Module string }
	own(t, tn.cli, "GetRegoPolicy", map[string]string{"PolicyName": "no-describe"}, &got)
	if !strings.Contains(got.Module, "switched off") {
		t.Fatalf("GetRegoPolicy = %+v", got)
	}
	var eval struct {
		Allow   bool
		Reasons []string
	}
	own(t, tn.cli, "EvaluatePolicy", map[string]string{"Input": `{"action":"kms:DescribeKey","principal":{"account":"1","type":"root"}}`}, &eval)
	if eval.Allow || len(eval.Reasons) != 1 {
		t.Fatalf("EvaluatePolicy = %+v", eval)
	}
	own(t, tn.cli, "DeleteRegoPolicy", map[string]string{"PolicyName": "no-describe"}, nil)
	if _, err := tn.cli.DescribeKey(context.Background(), id); err != nil {
		t.Fatalf("after withdrawing the module: %v", err)
	}
}

func TestAccessKeyLifecycle(t *testing.T) {
	tn := startTestNode(t)
	ctx := context.Background()
	var ak struct{ AccessKeyId, AccessKeySecret string }
	own(t, tn.cli, "CreateAccessKey", nil, &ak)
	second := tn.client(t, creds(t, ak))
	if err := second.Do(ctx, "ListKeys", nil, nil); err != nil {
		t.Fatal(err)
	}
	tn.srv.housekeep(ctx, true) // report last use now rather than in a minute
	var keys struct {
		AccessKeys struct {
			AccessKey []struct{ AccessKeyId, Status, LastUsedDate string }
		}
	}
	own(t, tn.cli, "ListAccessKeys", nil, &keys)
	found := false
	for _, k := range keys.AccessKeys.AccessKey {
		if k.AccessKeyId == ak.AccessKeyId {
			found = k.LastUsedDate != "" && k.Status == "Active"
		}
	}
	if !found {
		t.Fatalf("ListAccessKeys = %+v: the new key with its last use is missing", keys)
	}
	own(t, tn.cli, "UpdateAccessKey", map[string]string{"AccessKeyId": ak.AccessKeyId, "Status": "Inactive"}, nil)
	wantErr(t, second.Do(ctx, "ListKeys", nil, nil), 403, "InvalidAccessKeyId.Inactive")
	own(t, tn.cli, "DeleteAccessKey", map[string]string{"AccessKeyId": ak.AccessKeyId}, nil)
	wantErr(t, second.Do(ctx, "ListKeys", nil, nil), 404, "InvalidAccessKeyId.NotFound")
	ownCode(t, tn.cli, "DeleteAccessKey", map[string]string{"AccessKeyId": tn.creds.AccessKeyID}, 409, "DeleteConflict.LastAccessKey")
	tn.srv.housekeep(ctx, false)
	if _, ok := tn.srv.secrets.m[ak.AccessKeyId]; ok {
		t.Fatal("a deleted AccessKey's secret is still cached")
	}
}

// TestDecisionsOnAnAliasAreNotServedForTheKeyId: input.resource.alias is
// part of what a decision is cached by, and names only the key the request
// named by it.
func TestDecisionsOnAnAliasAreNotServedForTheKeyId(t *testing.T) {
	tn := startTestNode(t)
	ctx := context.Background()
	id, other := tn.createKey(t), tn.createKey(t)
	tn.call(t, "CreateAlias", map[string]string{"AliasName": "alias/locked", "KeyId": id}, nil)
	tn.call(t, "CreateAlias", map[string]string{"AliasName": "alias/open", "KeyId": other}, nil)
	own(t, tn.cli, "PutRegoPolicy", map[string]string{"PolicyName": "locked", "Module": `package kms.custom

deny contains "alias/locked is locked" if input.resource.alias == "alias/locked"
`}, nil)
	for _, step := range []struct {
		ref    string
		denied bool
	}{{id, false}, {"alias/locked", true}, {id, false}, {"alias/locked", true}} {
		_, err := tn.cli.GenerateDataKey(ctx, step.ref, 0, nil)
		if step.denied {
			wantErr(t, err, 403, "Forbidden.NoPermission")
		} else if err != nil {
			t.Fatalf("GenerateDataKey(%s): %v", step.ref, err)
		}
	}
	// ReEncrypt from a blob of the locked key to alias/open: the source is
	// named by its blob, so the alias of the destination does not stick to it.
	dk, err := tn.cli.GenerateDataKey(ctx, id, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tn.cli.Call(ctx, "ReEncrypt", map[string]string{"CiphertextBlob": dk.CiphertextBlob, "DestinationKeyId": "alias/open"}); err != nil {
		t.Fatalf("ReEncrypt to alias/open: %v", err)
	}
	_, err = tn.cli.Call(ctx, "ReEncrypt", map[string]string{"CiphertextBlob": dk.CiphertextBlob, "DestinationKeyId": "alias/locked"})
	wantErr(t, err, 403, "Forbidden.NoPermission")
	// Alias actions see the alias they write.
	_, err = tn.cli.Call(ctx, "UpdateAlias", map[string]string{"AliasName": "alias/locked", "KeyId": other})
	wantErr(t, err, 403, "Forbidden.NoPermission")
	_, err = tn.cli.Call(ctx, "DeleteAlias", map[string]string{"AliasName": "alias/locked"})
	wantErr(t, err, 403, "Forbidden.NoPermission")
	tn.call(t, "DeleteAlias", map[string]string{"AliasName": "alias/open"}, nil)
}

// TestARAMAdminUserManagesUsersButNotTheRootAccessKeys: ram:* lets a user
// administer the account's users, not mint or touch the AccessKeys of the
// root, which would raise it above its policies.
func TestARAMAdminUserManagesUsersButNotTheRootAccessKeys(t *testing.T) {
	tn := startTestNode(t)
	own(t, tn.cli, "CreateUser", map[string]string{"UserName": "admin"}, nil)
	own(t, tn.cli, "PutUserPolicy", map[string]string{"UserName": "admin", "PolicyName": "ram-admin",
		"PolicyDocument": `{"Statement":[{"Effect":"Allow","Action":"ram:*","Resource":"*"}]}`}, nil)
	var ak struct{ AccessKeyId, AccessKeySecret string }
	own(t, tn.cli, "CreateAccessKey", map[string]string{"UserName": "admin"}, &ak)
	admin := tn.client(t, creds(t, ak))

	own(t, admin, "CreateUser", map[string]string{"UserName": "app"}, nil)
	var appKey struct{ AccessKeyId, AccessKeySecret string }
	own(t, admin, "CreateAccessKey", map[string]string{"UserName": "app"}, &appKey)
	own(t, admin, "UpdateAccessKey", map[string]string{"AccessKeyId": appKey.AccessKeyId, "Status": "Inactive"}, nil)

	rootKey := tn.creds.AccessKeyID
	ownCode(t, admin, "CreateAccessKey", nil, 403, "Forbidden.NoPermission")
	ownCode(t, admin, "UpdateAccessKey", map[string]string{"AccessKeyId": rootKey, "Status": "Inactive"}, 403, "Forbidden.NoPermission")
	ownCode(t, admin, "DeleteAccessKey", map[string]string{"AccessKeyId": rootKey}, 403, "Forbidden.NoPermission")
	var l struct {
		AccessKeys struct {
			AccessKey []struct{ AccessKeyId, Status string }
		}
	}
	own(t, tn.cli, "ListAccessKeys", nil, &l)
	if len(l.AccessKeys.AccessKey) != 1 || l.AccessKeys.AccessKey[0].Status != "Active" {
		t.Fatalf("the root's AccessKeys after the refused calls: %+v", l)
	}
	// Nor does it reach the cluster.
	ownCode(t, admin, "CreateAccount", map[string]string{"AccountName": "x"}, 403, "Forbidden.NoPermission")
}
