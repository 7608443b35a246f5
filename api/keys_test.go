package api

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

type describeKeyOut struct {
	KeyMetadata map[string]string
}

func TestCreateKeyReturnsAlibabaKeyMetadata(t *testing.T) {
	tn := startTestNode(t)
	var out describeKeyOut
	tn.call(t, "CreateKey", map[string]string{"Description": "orders db", "KeySpec": "Aliyun_AES_128",
		"EnableAutomaticRotation": "true", "RotationInterval": "30d", "Tags": `[{"TagKey":"env","TagValue":"prod"}]`}, &out)
	m := out.KeyMetadata
	if !strings.HasPrefix(m["KeyId"], "key-") || m["KeyState"] != "Enabled" || m["KeySpec"] != "Aliyun_AES_128" ||
		m["KeyUsage"] != "ENCRYPT/DECRYPT" || m["Origin"] != "Aliyun_KMS" || m["ProtectionLevel"] != "SOFTWARE" ||
		m["Description"] != "orders db" || m["AutomaticRotation"] != "Enabled" || m["RotationInterval"] != "2592000s" ||
		m["PrimaryKeyVersion"] == "" || m["LastRotationDate"] != m["CreationDate"] || m["NextRotationDate"] == "" {
		t.Fatalf("KeyMetadata = %v", m)
	}
	if want := "acs:kms:cn-hangzhou:" + m["Creator"] + ":key/" + m["KeyId"]; m["Arn"] != want {
		t.Fatalf("Arn = %q, want %q", m["Arn"], want)
	}
	if _, err := time.Parse(timestampLayout, m["CreationDate"]); err != nil {
		t.Fatalf("CreationDate %q: %v", m["CreationDate"], err)
	}
	var d describeKeyOut
	tn.call(t, "DescribeKey", map[string]string{"KeyId": m["KeyId"]}, &d)
	if d.KeyMetadata["DeletionProtection"] != "Disabled" || d.KeyMetadata["KeyId"] != m["KeyId"] {
		t.Fatalf("DescribeKey = %v", d.KeyMetadata)
	}
}

func TestKeyIDAcceptsIDAliasAndARN(t *testing.T) {
	tn := startTestNode(t)
	id := tn.createKey(t)
	tn.call(t, "CreateAlias", map[string]string{"AliasName": "alias/orders", "KeyId": id}, nil)
	var d describeKeyOut
	tn.call(t, "DescribeKey", map[string]string{"KeyId": id}, &d)
	arn := d.KeyMetadata["Arn"]
	account := d.KeyMetadata["Creator"]
	for _, ref := range []string{id, "alias/orders", arn, "acs:kms:cn-hangzhou:" + account + ":alias/orders"} {
		var out describeKeyOut
		tn.call(t, "DescribeKey", map[string]string{"KeyId": ref}, &out)
		if out.KeyMetadata["KeyId"] != id {
			t.Fatalf("DescribeKey(%s) = %s, want %s", ref, out.KeyMetadata["KeyId"], id)
		}
		if _, err := tn.cli.GenerateDataKey(context.Background(), ref, 0, nil); err != nil {
			t.Fatalf("GenerateDataKey(%s): %v", ref, err)
		}
	}
	for _, ref := range []string{"acs:kms:cn-shanghai:" + account + ":key/" + id, "acs:kms:cn-hangzhou:999:key/" + id, "alias/nope", "key-nope"} {
		code := "Forbidden.KeyNotFound"
		if ref == "alias/nope" {
			code = "Forbidden.AliasNotFound"
		}
		tn.wantCode(t, "DescribeKey", map[string]string{"KeyId": ref}, 404, code)
	}
	tn.wantCode(t, "DescribeKey", map[string]string{"KeyId": "acs:ecs:cn-hangzhou:1:instance/i-1"}, 400, "InvalidParameter")
}

func TestListKeysPagesAndFilters(t *testing.T) {
	tn := startTestNode(t)
	var ids []string
	for range 5 {
		ids = append(ids, tn.createKey(t))
	}
	tn.call(t, "DisableKey", map[string]string{"KeyId": ids[0]}, nil)
	type listOut struct {
		PageNumber, PageSize, TotalCount int
		Keys                             struct {
			Key []struct{ KeyId, KeyArn string }
		}
	}
	seen := map[string]bool{}
	for page := 1; page <= 3; page++ {
		var out listOut
		tn.call(t, "ListKeys", map[string]string{"PageNumber": fmt.Sprint(page), "PageSize": "2"}, &out)
		if out.TotalCount != 5 || out.PageNumber != page || out.PageSize != 2 {
			t.Fatalf("page %d: %+v", page, out)
		}
		for _, k := range out.Keys.Key {
			seen[k.KeyId] = true
		}
	}
	if len(seen) != 5 {
		t.Fatalf("paging saw %d keys, want 5", len(seen))
	}
	var out listOut
	tn.call(t, "ListKeys", map[string]string{"Filters": `[{"Key":"KeyState","Values":["Disabled"]}]`}, &out)
	if out.TotalCount != 1 || out.Keys.Key[0].KeyId != ids[0] {
		t.Fatalf("Disabled filter = %+v", out)
	}
	tn.call(t, "ListKeys", map[string]string{"Filters": `[{"Key":"KeyState","Values":["Enabled","Disabled"]},{"Key":"KeySpec","Values":["Aliyun_AES_256"]}]`}, &out)
	if out.TotalCount != 5 {
		t.Fatalf("ORed values / ANDed keys: TotalCount = %d, want 5", out.TotalCount)
	}
	tn.wantCode(t, "ListKeys", map[string]string{"Filters": `[{"Key":"Color","Values":["red"]}]`}, 400, "InvalidParameter")
	tn.wantCode(t, "ListKeys", map[string]string{"PageSize": "101"}, 400, "InvalidParameter")
	tn.wantCode(t, "ListKeys", map[string]string{"PageNumber": "0"}, 400, "InvalidParameter")
}

func TestKeyLifecycleWrites(t *testing.T) {
	tn := startTestNode(t)
	id := tn.createKey(t)
	tn.call(t, "UpdateKeyDescription", map[string]string{"KeyId": id, "Description": "renamed"}, nil)
	tn.call(t, "SetDeletionProtection", map[string]string{"ProtectedResourceArn": tn.describe(t, id)["Arn"],
		"EnableDeletionProtection": "true", "DeletionProtectionDescription": "prod data"}, nil)
	m := tn.describe(t, id)
	if m["Description"] != "renamed" || m["DeletionProtection"] != "Enabled" || m["DeletionProtectionDescription"] != "prod data" {
		t.Fatalf("after updates: %v", m)
	}
	tn.wantCode(t, "ScheduleKeyDeletion", map[string]string{"KeyId": id, "PendingWindowInDays": "7"}, 409, "Rejected.DeletionProtection")
	tn.call(t, "SetDeletionProtection", map[string]string{"KeyId": id, "EnableDeletionProtection": "false"}, nil)
	for _, days := range []string{"6", "367", "x"} {
		tn.wantCode(t, "ScheduleKeyDeletion", map[string]string{"KeyId": id, "PendingWindowInDays": days}, 400, "InvalidParameter")
	}
	tn.wantCode(t, "ScheduleKeyDeletion", map[string]string{"KeyId": id}, 400, "MissingParameter")
	tn.call(t, "ScheduleKeyDeletion", map[string]string{"KeyId": id, "PendingWindowInDays": "366"}, nil)
	m = tn.describe(t, id)
	del, err := time.Parse(timestampLayout, m["DeleteDate"])
	if m["KeyState"] != "PendingDeletion" || err != nil || time.Until(del) < 365*24*time.Hour {
		t.Fatalf("after ScheduleKeyDeletion: %v", m)
	}
	tn.wantCode(t, "ScheduleKeyDeletion", map[string]string{"KeyId": id, "PendingWindowInDays": "7"}, 409, "Rejected.StateModifiedFailed")
	tn.wantCode(t, "SetDeletionProtection", map[string]string{"KeyId": id, "EnableDeletionProtection": "true"}, 409, "Rejected.StateModifiedFailed")
	tn.call(t, "CancelKeyDeletion", map[string]string{"KeyId": id}, nil)
	if m := tn.describe(t, id); m["KeyState"] != "Enabled" || m["DeleteDate"] != "" {
		t.Fatalf("after CancelKeyDeletion: %v", m)
	}
	tn.wantCode(t, "CancelKeyDeletion", map[string]string{"KeyId": id}, 409, "Rejected.StateModifiedFailed")
}

func (tn *testNode) describe(t testing.TB, id string) map[string]string {
	t.Helper()
	var d describeKeyOut
	tn.call(t, "DescribeKey", map[string]string{"KeyId": id}, &d)
	return d.KeyMetadata
}
