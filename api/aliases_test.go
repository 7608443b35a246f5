package api

import (
	"testing"
)

type aliasList struct {
	TotalCount int
	Aliases    struct {
		Alias []struct{ AliasName, AliasArn, KeyId string }
	}
}

func TestAliasLifecycle(t *testing.T) {
	tn := startTestNode(t)
	a, b := tn.createKey(t), tn.createKey(t)
	tn.call(t, "CreateAlias", map[string]string{"AliasName": "alias/app", "KeyId": a}, nil)
	tn.call(t, "CreateAlias", map[string]string{"AliasName": "alias/app-2", "KeyId": "alias/app"}, nil)
	tn.wantCode(t, "CreateAlias", map[string]string{"AliasName": "alias/app", "KeyId": b}, 400, "AliasAlreadyExists")
	var l aliasList
	tn.call(t, "ListAliasesByKeyId", map[string]string{"KeyId": a}, &l)
	if l.TotalCount != 2 || l.Aliases.Alias[0].AliasName != "alias/app" || l.Aliases.Alias[1].KeyId != a {
		t.Fatalf("ListAliasesByKeyId = %+v", l)
	}
	tn.call(t, "UpdateAlias", map[string]string{"AliasName": "alias/app", "KeyId": b}, nil)
	if got := tn.describe(t, "alias/app")["KeyId"]; got != b {
		t.Fatalf("alias/app -> %s after UpdateAlias, want %s", got, b)
	}
	tn.call(t, "ListAliases", map[string]string{"PageSize": "1", "PageNumber": "2"}, &l)
	if l.TotalCount != 2 || len(l.Aliases.Alias) != 1 || l.Aliases.Alias[0].AliasName != "alias/app-2" {
		t.Fatalf("ListAliases page 2 = %+v", l)
	}
	if want := "acs:kms:cn-hangzhou:" + tn.describe(t, a)["Creator"] + ":alias/app-2"; l.Aliases.Alias[0].AliasArn != want {
		t.Fatalf("AliasArn = %s, want %s", l.Aliases.Alias[0].AliasArn, want)
	}
	tn.call(t, "DeleteAlias", map[string]string{"AliasName": "alias/app"}, nil)
	tn.wantCode(t, "DeleteAlias", map[string]string{"AliasName": "alias/app"}, 404, "Forbidden.AliasNotFound")
	tn.wantCode(t, "UpdateAlias", map[string]string{"AliasName": "alias/app", "KeyId": a}, 404, "Forbidden.AliasNotFound")
	tn.call(t, "ScheduleKeyDeletion", map[string]string{"KeyId": b, "PendingWindowInDays": "7"}, nil)
	tn.wantCode(t, "CreateAlias", map[string]string{"AliasName": "alias/late", "KeyId": b}, 409, "Rejected.StateModifiedFailed")
	tn.wantCode(t, "UpdateAlias", map[string]string{"AliasName": "alias/app-2", "KeyId": b}, 409, "Rejected.PendingDeletion")
}

func TestAliasNamesAreChecked(t *testing.T) {
	tn := startTestNode(t)
	id := tn.createKey(t)
	for _, name := range []string{"orders", "alias/", "alias/with space", "alias/acs/ecs", "alias/acs", "alias/" + string(make([]byte, 300))} {
		tn.wantCode(t, "CreateAlias", map[string]string{"AliasName": name, "KeyId": id}, 400, "InvalidParameter")
	}
	tn.wantCode(t, "CreateAlias", map[string]string{"KeyId": id}, 400, "MissingParameter")
}
