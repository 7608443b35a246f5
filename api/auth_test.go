package api

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/raftkms/raftkms/api/sign"
	"github.com/raftkms/raftkms/crypto"
)

// v1Request is a request signed with V1 (HMAC-SHA1) the way the classic
// Alibaba SDK signs it.
type v1Request struct {
	method  string
	params  map[string]string
	secret  string
	form    bool // send the parameters as a form body instead of the query
	tamper  func(params map[string]string)
	timeNow time.Time
}

func (tn *testNode) v1Params(action string, extra map[string]string, at time.Time) map[string]string {
	p := map[string]string{"Action": action, "Version": KMSVersion, "AccessKeyId": tn.creds.AccessKeyID,
		"SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "SignatureNonce": crypto.NewUUID(),
		"Timestamp": at.UTC().Format(timestampLayout), "Format": "JSON", "SignatureType": "", "RegionId": "cn-hangzhou"}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

func kvs(p map[string]string) []sign.KV {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]sign.KV, 0, len(p))
	for _, k := range keys {
		out = append(out, sign.KV{Key: []byte(k), Value: []byte(p[k])})
	}
	return out
}

// send signs r (unless params already hold a Signature) and returns the
// status and the error code (empty on success) and the body.
func (tn *testNode) send(t testing.TB, r v1Request) (int, string, []byte) {
	t.Helper()
	if r.method == "" {
		r.method = "POST"
	}
	if r.secret == "" {
		r.secret = tn.creds.AccessKeySecret
	}
	if _, ok := r.params["Signature"]; !ok {
		sts := sign.AppendV1StringToSign(nil, []byte(r.method), kvs(r.params))
		r.params["Signature"] = string(sign.AppendV1Signature(nil, []byte(r.secret), sts))
	}
	if r.tamper != nil {
		r.tamper(r.params)
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(r.method)
	q := sign.AppendQuery(nil, kvs(r.params))
	if r.form {
		req.SetRequestURI(tn.url + "/")
		req.Header.SetContentType("application/x-www-form-urlencoded")
		req.SetBody(q)
	} else {
		req.SetRequestURI(tn.url + "/?" + string(q))
	}
	if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	var e struct{ Code string }
	json.Unmarshal(resp.Body(), &e)
	if resp.StatusCode() == 200 {
		e.Code = ""
	}
	return resp.StatusCode(), e.Code, append([]byte(nil), resp.Body()...)
}

func TestV1SignedRequestsWorkInQueryAndForm(t *testing.T) {
	tn := startTestNode(t)
	now := time.Now()
	for _, form := range []bool{false, true} {
		for _, method := range []string{"POST", "GET"} {
			if form && method == "GET" {
				continue
			}
			st, code, body := tn.send(t, v1Request{method: method, form: form,
				params: tn.v1Params("CreateKey", map[string]string{"Description": "demo key+*~ 日本"}, now)})
			if st != 200 {
				t.Fatalf("%s form=%v: %d %s %s", method, form, st, code, body)
			}
			var out describeKeyOut
			json.Unmarshal(body, &out)
			if out.KeyMetadata["Description"] != "demo key+*~ 日本" {
				t.Fatalf("Description = %q", out.KeyMetadata["Description"])
			}
		}
	}
}

func TestSignatureFailures(t *testing.T) {
	tn := startTestNode(t)
	now := time.Now()
	cases := []struct {
		name   string
		req    v1Request
		status int
		code   string
	}{
		{"wrong secret", v1Request{params: tn.v1Params("ListKeys", nil, now), secret: "not-the-secret"}, 400, "SignatureDoesNotMatch"},
		{"tampered parameter", v1Request{params: tn.v1Params("ListKeys", map[string]string{"PageSize": "5"}, now),
			tamper: func(p map[string]string) { p["PageSize"] = "6" }}, 400, "SignatureDoesNotMatch"},
		{"added parameter", v1Request{params: tn.v1Params("ListKeys", nil, now),
			tamper: func(p map[string]string) { p["PageSize"] = "6" }}, 400, "SignatureDoesNotMatch"},
		{"unknown access key", v1Request{params: tn.v1Params("ListKeys", map[string]string{"AccessKeyId": "RKNOSUCHKEY"}, now)}, 404, "InvalidAccessKeyId.NotFound"},
		{"timestamp 16 minutes old", v1Request{params: tn.v1Params("ListKeys", nil, now.Add(-16*time.Minute))}, 400, "IllegalTimestamp"},
		{"timestamp 16 minutes ahead", v1Request{params: tn.v1Params("ListKeys", nil, now.Add(16*time.Minute))}, 400, "IllegalTimestamp"},
		{"malformed timestamp", v1Request{params: tn.v1Params("ListKeys", map[string]string{"Timestamp": "yesterday"}, now)}, 400, "IllegalTimestamp"},
		{"other signature method", v1Request{params: tn.v1Params("ListKeys", map[string]string{"SignatureMethod": "HMAC-MD5"}, now)}, 400, "IncompleteSignature"},
		{"missing nonce", v1Request{params: tn.v1Params("ListKeys", nil, now), tamper: func(p map[string]string) { delete(p, "SignatureNonce") }}, 400, "MissingParameter"},
		{"not signed", v1Request{params: map[string]string{"Action": "ListKeys", "Version": KMSVersion, "Signature": ""},
			tamper: func(p map[string]string) { delete(p, "Signature") }}, 400, "IncompleteSignature"},
		{"unknown action", v1Request{params: tn.v1Params("MakeCoffee", nil, now)}, 404, "InvalidAction.NotFound"},
		{"unknown version", v1Request{params: tn.v1Params("ListKeys", map[string]string{"Version": "2099-01-01"}, now)}, 400, "InvalidVersion"},
		{"PUT", v1Request{method: "PUT", params: tn.v1Params("ListKeys", nil, now)}, 403, "UnsupportedHTTPMethod"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, code, body := tn.send(t, c.req)
			if st != c.status || code != c.code {
				t.Fatalf("got %d %s (%s), want %d %s", st, code, body, c.status, c.code)
			}
		})
	}
}

func TestReplayedNonceIsRejected(t *testing.T) {
	tn := startTestNode(t)
	p := tn.v1Params("CreateKey", nil, time.Now())
	if st, code, _ := tn.send(t, v1Request{params: p}); st != 200 {
		t.Fatalf("first request: %d %s", st, code)
	}
	if st, code, _ := tn.send(t, v1Request{params: p}); st != 400 || code != "SignatureNonceUsed" {
		t.Fatalf("replay: %d %s, want 400 SignatureNonceUsed", st, code)
	}
	var l struct{ TotalCount int }
	tn.call(t, "ListKeys", nil, &l)
	if l.TotalCount != 1 {
		t.Fatalf("replay created a key: %d keys", l.TotalCount)
	}
}

func TestV3TamperingIsDetected(t *testing.T) {
	tn := startTestNode(t)
	build := func() *fasthttp.Request {
		host := tn.url[len("http://"):]
		q := []sign.KV{{Key: []byte("PageSize"), Value: []byte("5")}}
		req := fasthttp.AcquireRequest()
		req.Header.SetMethod("POST")
		req.SetRequestURI(tn.url + "/?PageSize=5")
		for _, h := range sign.SignV3(tn.creds.AccessKeyID, tn.creds.AccessKeySecret, sign.V3Request{Method: "POST", Host: host,
			Action: "ListKeys", Version: KMSVersion, Query: q}) {
			req.Header.SetBytesKV(h.Key, h.Value)
		}
		return req
	}
	do := func(req *fasthttp.Request) (int, string) {
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(resp)
		if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		var e struct{ Code string }
		json.Unmarshal(resp.Body(), &e)
		return resp.StatusCode(), e.Code
	}
	if st, code := do(build()); st != 200 {
		t.Fatalf("untampered V3 request: %d %s", st, code)
	}
	tampers := map[string]func(r *fasthttp.Request){
		"query":  func(r *fasthttp.Request) { r.SetRequestURI(tn.url + "/?PageSize=6") },
		"action": func(r *fasthttp.Request) { r.Header.Set("x-acs-action", "CreateKey") },
		"body":   func(r *fasthttp.Request) { r.SetBody([]byte("PageSize=7")) },
		"content hash of an empty body": func(r *fasthttp.Request) {
			r.Header.Set("x-acs-content-sha256", strings.Repeat("0", 64))
		},
		"date format": func(r *fasthttp.Request) { r.Header.Set("x-acs-date", "now") },
		"signature": func(r *fasthttp.Request) {
			a := r.Header.Peek("Authorization")
			a[len(a)-1] ^= 1
		},
		"unsigned action header": func(r *fasthttp.Request) {
			r.Header.Set("Authorization", fmt.Sprintf("ACS3-HMAC-SHA256 Credential=%s,SignedHeaders=host,Signature=00", tn.creds.AccessKeyID))
		},
		"other algorithm": func(r *fasthttp.Request) {
			r.Header.Set("Authorization", "ACS3-HMAC-SM3 Credential=x,SignedHeaders=host,Signature=00")
		},
	}
	for name, tamper := range tampers {
		t.Run(name, func(t *testing.T) {
			req := build()
			tamper(req)
			st, code := do(req)
			if st != 400 {
				t.Fatalf("tampered %s: %d %s, want a 400", name, st, code)
			}
			// The body's hash is checked before the signature, and says so.
			if (name == "body" || name == "content hash of an empty body") && code != "IncompleteSignature" {
				t.Fatalf("tampered %s: %s, want IncompleteSignature (the content hash)", name, code)
			}
		})
	}
}

// The signature timestamp's fast path accepts and rejects exactly what
// time.Parse does, with the same time.
func TestTimestampsParseExactlyAsTimeParseDoes(t *testing.T) {
	var inputs []string
	for _, year := range []int{0, 1900, 1999, 2000, 2024, 2026, 2100, 9999} {
		for day := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC); day.Year() == year; day = day.AddDate(0, 0, 1) {
			inputs = append(inputs, day.Add(time.Duration(day.YearDay()*7919)*time.Second%(24*time.Hour)).Format(timestampLayout))
		}
		for _, md := range []string{"02-29", "02-30", "04-31", "06-31", "09-31", "11-31", "12-31", "13-01", "00-10", "01-00", "01-32"} {
			inputs = append(inputs, fmt.Sprintf("%04d-%sT12:00:00Z", year, md))
		}
	}
	base := "2026-11-30T23:59:59Z"
	for i := range base {
		for _, c := range []byte("0159:-TZz /a") {
			b := []byte(base)
			b[i] = c
			inputs = append(inputs, string(b))
		}
	}
	inputs = append(inputs, "", "2026-11-30T24:00:00Z", "2026-11-30T23:60:00Z", "2026-11-30T23:59:60Z", "2026-11-30T23:59:59.5Z",
		"2026-11-30T23:59:59", "2026-11-30T23:59:59Z ", " 2026-11-30T23:59:59Z", "2026-11-30 23:59:59Z", "+026-11-30T23:59:59Z")
	for _, in := range inputs {
		want, wantErr := time.Parse(timestampLayout, in)
		got, err := parseTimestamp([]byte(in))
		if (err != nil) != (wantErr != nil) || !got.Equal(want) || got.Location() != want.Location() {
			t.Fatalf("%q: parsed %v (%v), time.Parse %v (%v)", in, got, err, want, wantErr)
		}
	}
}
