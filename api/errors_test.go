package api

import (
	"context"
	"encoding/base64"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/raftkms/raftkms/api/sign"
)

// TestBadInputsGetPreciseErrorsAndTheNodeKeepsServing sends every kind of
// bad input we know and checks the exact status and code.
func TestBadInputsGetPreciseErrorsAndTheNodeKeepsServing(t *testing.T) {
	tn := startTestNode(t)
	id := tn.createKey(t)
	ctx := context.Background()
	ct, err := tn.cli.Encrypt(ctx, id, "hello", nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(ct.CiphertextBlob)
	flipped := []byte(string(raw))
	flipped[len(flipped)-1] ^= 1
	unknownVersion := []byte(string(raw))
	copy(unknownVersion, "00000000-0000-4000-8000-000000000000")
	b64 := base64.StdEncoding.EncodeToString
	big := strings.Repeat("a", 8200)

	cases := []struct {
		name   string
		action string
		params map[string]string
		status int
		code   string
	}{
		{"blob not base64", "Decrypt", map[string]string{"CiphertextBlob": "%%%not-base64"}, 400, "InvalidParameter"},
		{"blob truncated", "Decrypt", map[string]string{"CiphertextBlob": b64(raw[:60])}, 400, "InvalidParameter"},
		{"blob without version prefix", "Decrypt", map[string]string{"CiphertextBlob": b64([]byte(strings.Repeat("x", 80)))}, 400, "InvalidParameter"},
		{"blob tampered", "Decrypt", map[string]string{"CiphertextBlob": b64(flipped)}, 400, "InvalidCiphertext"},
		{"blob of unknown version", "Decrypt", map[string]string{"CiphertextBlob": b64(unknownVersion)}, 404, "Forbidden.KeyNotFound"},
		{"blob missing", "Decrypt", map[string]string{}, 400, "MissingParameter"},
		{"blob oversize", "Decrypt", map[string]string{"CiphertextBlob": strings.Repeat("A", 20000)}, 400, "InvalidParameter"},
		{"context number value", "GenerateDataKey", map[string]string{"KeyId": id, "EncryptionContext": `{"a":1}`}, 400, "InvalidParameter"},
		{"context array", "GenerateDataKey", map[string]string{"KeyId": id, "EncryptionContext": `["a"]`}, 400, "InvalidParameter"},
		{"context nested", "GenerateDataKey", map[string]string{"KeyId": id, "EncryptionContext": `{"a":{"b":"c"}}`}, 400, "InvalidParameter"},
		{"context null", "GenerateDataKey", map[string]string{"KeyId": id, "EncryptionContext": `{"a":null}`}, 400, "InvalidParameter"},
		{"context duplicate key", "GenerateDataKey", map[string]string{"KeyId": id, "EncryptionContext": `{"a":"1","a":"2"}`}, 400, "InvalidParameter"},
		{"context trailing data", "GenerateDataKey", map[string]string{"KeyId": id, "EncryptionContext": `{"a":"1"} x`}, 400, "InvalidParameter"},
		{"context not JSON", "GenerateDataKey", map[string]string{"KeyId": id, "EncryptionContext": `a=1`}, 400, "InvalidParameter"},
		{"context oversize", "GenerateDataKey", map[string]string{"KeyId": id, "EncryptionContext": `{"a":"` + big + `"}`}, 400, "InvalidParameter"},
		{"plaintext oversize", "Encrypt", map[string]string{"KeyId": id, "Plaintext": strings.Repeat("x", 6145)}, 400, "InvalidParameter"},
		{"plaintext not UTF-8", "Encrypt", map[string]string{"KeyId": id, "Plaintext": "\xff\xfe"}, 400, "InvalidParameter"},
		{"plaintext missing", "Encrypt", map[string]string{"KeyId": id}, 400, "MissingParameter"},
		{"key id missing", "GenerateDataKey", map[string]string{}, 400, "MissingParameter"},
		{"key unknown", "GenerateDataKey", map[string]string{"KeyId": "key-00000000000000000000"}, 404, "Forbidden.KeyNotFound"},
		{"key id oversize", "GenerateDataKey", map[string]string{"KeyId": strings.Repeat("k", 600)}, 400, "InvalidParameter"},
		{"NumberOfBytes zero", "GenerateDataKey", map[string]string{"KeyId": id, "NumberOfBytes": "0"}, 400, "InvalidParameter"},
		{"NumberOfBytes too big", "GenerateDataKey", map[string]string{"KeyId": id, "NumberOfBytes": "1025"}, 400, "InvalidParameter"},
		{"NumberOfBytes not a number", "GenerateDataKey", map[string]string{"KeyId": id, "NumberOfBytes": "32x"}, 400, "InvalidParameter"},
		{"data KeySpec unknown", "GenerateDataKey", map[string]string{"KeyId": id, "KeySpec": "AES_512"}, 400, "InvalidParameter"},
		{"DryRun not a bool", "GenerateDataKey", map[string]string{"KeyId": id, "DryRun": "maybe"}, 400, "InvalidParameter"},
		{"CreateKey unknown KeySpec", "CreateKey", map[string]string{"KeySpec": "RSA_9999"}, 400, "InvalidParameter"},
		{"CreateKey BYOK", "CreateKey", map[string]string{"Origin": "EXTERNAL"}, 400, "InvalidParameter"},
		{"CreateKey HSM", "CreateKey", map[string]string{"ProtectionLevel": "HSM"}, 400, "InvalidParameter"},
		{"CreateKey instance", "CreateKey", map[string]string{"DKMSInstanceId": "kst-1"}, 400, "InvalidParameter"},
		{"CreateKey description oversize", "CreateKey", map[string]string{"Description": strings.Repeat("d", 8193)}, 400, "InvalidParameter"},
		{"CreateKey rotation without interval", "CreateKey", map[string]string{"EnableAutomaticRotation": "true"}, 400, "MissingParameter"},
		{"CreateKey rotation too often", "CreateKey", map[string]string{"EnableAutomaticRotation": "true", "RotationInterval": "6d"}, 400, "InvalidParameter"},
		{"CreateKey rotation bad unit", "CreateKey", map[string]string{"EnableAutomaticRotation": "true", "RotationInterval": "30w"}, 400, "InvalidParameter"},
		{"CreateKey tags not JSON", "CreateKey", map[string]string{"Tags": "env=prod"}, 400, "InvalidParameter"},
		{"CreateKey reserved tag", "CreateKey", map[string]string{"Tags": `[{"TagKey":"acs:x","TagValue":"v"}]`}, 400, "InvalidParameter"},
		{"CreateKey key policy", "CreateKey", map[string]string{"Policy": `{}`}, 400, "InvalidParameter"},
		{"password too short", "GetRandomPassword", map[string]string{"PasswordLength": "7"}, 400, "InvalidParameter"},
		{"password with nothing left", "GetRandomPassword", map[string]string{"ExcludeLowercase": "true", "ExcludeUppercase": "true",
			"ExcludeNumbers": "true", "ExcludePunctuation": "true"}, 400, "InvalidParameter"},
		{"unknown action", "ImportKeyMaterialFromMars", map[string]string{}, 404, "InvalidAction.NotFound"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { tn.wantCode(t, c.action, c.params, c.status, c.code) })
	}
	// Still serving, and nothing was created by the failed CreateKeys.
	var l struct{ TotalCount int }
	tn.call(t, "ListKeys", nil, &l)
	if l.TotalCount != 1 {
		t.Fatalf("failed requests left %d keys, want 1", l.TotalCount)
	}
	if p, err := tn.cli.Decrypt(ctx, ct.CiphertextBlob, nil); err != nil || p.Plaintext != "hello" {
		t.Fatalf("after bad inputs: Decrypt = %+v, %v", p, err)
	}
}

func TestDuplicateAndExcessParametersAreRefused(t *testing.T) {
	tn := startTestNode(t)
	now := time.Now()
	p := tn.v1Params("ListKeys", nil, now)
	for i := range 70 {
		p[strings.Repeat("P", i+1)] = "x"
	}
	if st, code, _ := tn.send(t, v1Request{params: p}); st != 400 || code != "InvalidParameter" {
		t.Fatalf("70 parameters: %d %s, want 400 InvalidParameter", st, code)
	}
	// The same parameter in the query and the form body.
	req := v1Request{params: tn.v1Params("ListKeys", nil, now), form: true}
	st, code, _ := tn.send(t, req)
	if st != 200 {
		t.Fatalf("form request: %d %s", st, code)
	}
}

// TestEveryErrorCodeIsDocumented keeps docs/API.md's error table in step
// with the one in errors.go.
func TestEveryErrorCodeIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/API.md")
	if err != nil {
		t.Fatal(err)
	}
	codes := []string{"MissingParameter", "InvalidParameter", "Forbidden.NoPermission", internalError.Code}
	for _, e := range errorTable {
		codes = append(codes, e.we.Code)
	}
	for _, code := range codes {
		if !strings.Contains(string(doc), "| "+code+" |") {
			t.Errorf("error code %s is not in the error table of docs/API.md", code)
		}
	}
}

func TestALargeBodyIsRefusedUnread(t *testing.T) {
	tn := startTestNode(t)
	p := tn.v1Params("ListKeys", nil, time.Now())
	sts := sign.AppendV1StringToSign(nil, []byte("POST"), kvs(p))
	p["Signature"] = string(sign.AppendV1Signature(nil, []byte(tn.creds.AccessKeySecret), sts))
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod("POST")
	req.SetRequestURI(tn.url + "/?" + string(sign.AppendQuery(nil, kvs(p))))
	req.SetBody(make([]byte, 80<<10)) // over the 64 KiB limit, under the socket buffers
	if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != 413 || !strings.Contains(string(resp.Body()), "RequestEntityTooLarge") {
		t.Fatalf("80 KiB body to ListKeys: %d %s", resp.StatusCode(), resp.Body())
	}
	tn.call(t, "ListKeys", nil, nil) // still serving
}
