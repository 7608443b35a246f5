package client

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/raftkms/raftkms/api/sign"
)

var testCreds = Credentials{AccessKeyID: "RKTESTKEY", AccessKeySecret: "test-secret"}

// verifyingServer answers like raftkms: it checks the V3 signature of every
// request and replies with reply(action, params) or an error body.
func verifyingServer(t *testing.T, reply func(action string, params map[string]string) (int, string)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		hdr := &ctx.Request.Header
		auth, err := sign.ParseV3Authorization(hdr.Peek("Authorization"))
		if err != nil || string(auth.AccessKeyID) != testCreds.AccessKeyID {
			ctx.SetStatusCode(400)
			ctx.WriteString(`{"Code":"IncompleteSignature","Message":"bad auth","RequestId":"r"}`)
			return
		}
		var query []sign.KV
		params := map[string]string{}
		ctx.QueryArgs().VisitAll(func(k, v []byte) {
			query = append(query, sign.KV{Key: append([]byte(nil), k...), Value: append([]byte(nil), v...)})
			params[string(k)] = string(v)
		})
		cr := sign.AppendV3CanonicalRequest(nil, ctx.Method(), ctx.Path(), query, auth.SignedHeaders, func(n []byte) []byte {
			if string(n) == "host" {
				return ctx.Host()
			}
			return hdr.Peek(string(n))
		}, hdr.Peek("x-acs-content-sha256"))
		if !sign.VerifyV3([]byte(testCreds.AccessKeySecret), sign.AppendV3StringToSign(nil, cr), auth.Signature) {
			ctx.SetStatusCode(400)
			ctx.WriteString(`{"Code":"SignatureDoesNotMatch","Message":"bad signature","RequestId":"r"}`)
			return
		}
		status, body := reply(string(hdr.Peek("x-acs-action")), params)
		ctx.SetStatusCode(status)
		ctx.WriteString(body)
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

func TestCallSignsWithV3AndDecodesReplies(t *testing.T) {
	url := verifyingServer(t, func(action string, p map[string]string) (int, string) {
		if action == "Encrypt" && p["Plaintext"] == "hello world+*~ ✓" && p["EncryptionContext"] == `{"a":"1"}` {
			return 200, `{"RequestId":"r1","KeyId":"key-1","KeyVersionId":"v1","CiphertextBlob":"QkxPQg=="}`
		}
		return 404, `{"RequestId":"r2","Code":"Forbidden.KeyNotFound","Message":"The specified Key is not found.","Recommend":"check"}`
	})
	c, err := New(Config{Endpoint: url, Credentials: testCreds})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := c.Encrypt(context.Background(), "key-1", "hello world+*~ ✓", map[string]string{"a": "1"})
	if err != nil || ct.CiphertextBlob != "QkxPQg==" || ct.KeyVersionID != "v1" {
		t.Fatalf("Encrypt = %+v, %v", ct, err)
	}
	_, err = c.DescribeKey(context.Background(), "key-2")
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != "Forbidden.KeyNotFound" || ae.StatusCode != 404 || ae.RequestID != "r2" || ae.Retryable() {
		t.Fatalf("DescribeKey err = %#v", err)
	}
}

func TestServerErrorsWithoutJSONAndRetryability(t *testing.T) {
	url := verifyingServer(t, func(string, map[string]string) (int, string) { return 503, "overloaded" })
	c, _ := New(Config{Endpoint: url, Credentials: testCreds})
	_, err := c.Call(context.Background(), "ListKeys", nil)
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != "HTTP503" || !ae.Retryable() || ae.Message != "overloaded" {
		t.Fatalf("err = %#v", err)
	}
}

func TestUnreachableEndpointFailsWithinTheTimeout(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	c, _ := New(Config{Endpoint: "http://" + addr, Credentials: testCreds, Timeout: 2 * time.Second})
	start := time.Now()
	if _, err := c.Call(context.Background(), "ListKeys", nil); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("Call to a closed port: %v after %v", err, time.Since(start))
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Endpoint: "http://127.0.0.1:1"},
		{Endpoint: "127.0.0.1:8080", Credentials: testCreds},
		{Endpoint: "ftp://127.0.0.1", Credentials: testCreds},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted a bad config", cfg)
		}
	}
}

func TestLoadCredentials(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "c.json")
	os.WriteFile(good, []byte(`{"AccessKeyId":"A","AccessKeySecret":"S"}`), 0o600)
	if c, err := LoadCredentials(good); err != nil || c != (Credentials{"A", "S"}) {
		t.Fatalf("LoadCredentials = %+v, %v", c, err)
	}
	empty := filepath.Join(dir, "e.json")
	os.WriteFile(empty, []byte(`{}`), 0o600)
	if _, err := LoadCredentials(empty); err == nil || !strings.Contains(err.Error(), "AccessKeyId") {
		t.Fatalf("LoadCredentials(empty) err = %v", err)
	}
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "E")
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "F")
	if c, ok := CredentialsFromEnv(); !ok || c != (Credentials{"E", "F"}) {
		t.Fatalf("CredentialsFromEnv = %+v, %v", c, ok)
	}
}
