package sign

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// ---- Captured requests (ALIBABA_API.md §3.3) ----

const testSecret = "testAKSecret"

// V1 CreateKey from the classic SDK (alibaba-cloud-sdk-go v1.63.x).
const (
	v1CreateKeyQuery = "AccessKeyId=testAKID&Action=CreateKey&Description=demo+key&Format=JSON&KeySpec=Aliyun_AES_256&KeyUsage=ENCRYPT%2FDECRYPT&RegionId=cn-hangzhou&Signature=vJNgcozKYY78o2pYPSZAxU%2FOtkk%3D&SignatureMethod=HMAC-SHA1&SignatureNonce=007b79ebf67dd278b05b15f7c2173ced&SignatureType=&SignatureVersion=1.0&Timestamp=2026-11-29T09%3A43%3A12Z&Version=2016-01-20"
	v1CreateKeySTS   = "POST&%2F&AccessKeyId%3DtestAKID%26Action%3DCreateKey%26Description%3Ddemo%2520key%26Format%3DJSON%26KeySpec%3DAliyun_AES_256%26KeyUsage%3DENCRYPT%252FDECRYPT%26RegionId%3Dcn-hangzhou%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D007b79ebf67dd278b05b15f7c2173ced%26SignatureType%3D%26SignatureVersion%3D1.0%26Timestamp%3D2026-11-29T09%253A43%253A12Z%26Version%3D2016-01-20"
	v1CreateKeySig   = "vJNgcozKYY78o2pYPSZAxU/Otkk="
)

// V3 Encrypt from the generated SDK (darabonba-openapi v2.0.9).
const (
	v3EncryptQuery = "KeyId=key-test0000000000000000&Plaintext=hello+world%2B%2A~"
	v3EncryptAuth  = "ACS3-HMAC-SHA256 Credential=testAKID,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=0887beb7650e7051b5bddddb3114e811b513df7d1be61f9bbceb55979ce8ce2d"
	v3EncryptSig   = "0887beb7650e7051b5bddddb3114e811b513df7d1be61f9bbceb55979ce8ce2d"
	emptySHA256    = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	v3EncryptCanon = "POST\n/\nKeyId=key-test0000000000000000&Plaintext=hello%20world%2B%2A~\n" +
		"host:127.0.0.1:18080\n" +
		"x-acs-action:Encrypt\n" +
		"x-acs-content-sha256:" + emptySHA256 + "\n" +
		"x-acs-date:2026-11-29T09:43:37Z\n" +
		"x-acs-signature-nonce:f62fdf98936a63157c00a073f27d5dbd\n" +
		"x-acs-version:2016-01-20\n" +
		"\n" +
		"host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n" +
		emptySHA256
)

// v3EncryptHeaders are the captured request's headers, lower-cased.
var v3EncryptHeaders = []KV{
	kv("host", "127.0.0.1:18080"),
	kv("accept", "application/json"),
	kv("accept-encoding", "gzip"),
	kv("authorization", v3EncryptAuth),
	kv("content-length", "0"),
	kv("user-agent", "AlibabaCloud (linux; amd64) Golang/1.26.8 Core/0.01 TeaDSL/1"),
	kv("x-acs-action", "Encrypt"),
	kv("x-acs-content-sha256", emptySHA256),
	kv("x-acs-date", "2026-11-29T09:43:37Z"),
	kv("x-acs-signature-nonce", "f62fdf98936a63157c00a073f27d5dbd"),
	kv("x-acs-version", "2016-01-20"),
}

func kv(k, v string) KV { return KV{[]byte(k), []byte(v)} }

// parseQuery decodes a wire query string the way the server will (url
// semantics: "+" is a space), keeping the wire order.
func parseQuery(t testing.TB, raw string) []KV {
	t.Helper()
	var out []KV
	for _, pair := range strings.Split(raw, "&") {
		k, v, _ := strings.Cut(pair, "=")
		dk, err := url.QueryUnescape(k)
		if err != nil {
			t.Fatalf("QueryUnescape(%q): %v", k, err)
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			t.Fatalf("QueryUnescape(%q): %v", v, err)
		}
		out = append(out, kv(dk, dv))
	}
	return out
}

func headerFunc(hdrs []KV) func([]byte) []byte {
	return func(name []byte) []byte {
		for _, h := range hdrs {
			if bytes.Equal(h.Key, name) {
				return h.Value
			}
		}
		return nil
	}
}

func getKV(kvs []KV, name string) []byte {
	for _, h := range kvs {
		if string(h.Key) == name {
			return h.Value
		}
	}
	return nil
}

func cloneKVs(kvs []KV) []KV {
	out := make([]KV, len(kvs))
	for i, p := range kvs {
		out[i] = KV{bytes.Clone(p.Key), bytes.Clone(p.Value)}
	}
	return out
}

// ---- Oracles: the SDK functions, ported verbatim where they are stdlib-only ----

// sdkPercentEncode mirrors GetEncodeParam in openapi-util service.go.
func sdkPercentEncode(s string) string {
	s = url.QueryEscape(s)
	s = strings.Replace(s, "+", "%20", -1)
	s = strings.Replace(s, "*", "%2A", -1)
	s = strings.Replace(s, "%7E", "~", -1)
	return s
}

// sdkBuildRpcStringToSign mirrors buildRpcStringToSign in alibaba-cloud-sdk-go
// sdk/auth/rpc_signature_composer.go (the SDK deletes Signature first).
func sdkBuildRpcStringToSign(method string, params map[string]string) string {
	q := url.Values{}
	for k, v := range params {
		if k != "Signature" {
			q.Add(k, v)
		}
	}
	s := q.Encode()
	s = strings.Replace(s, "+", "%20", -1)
	s = strings.Replace(s, "*", "%2A", -1)
	s = strings.Replace(s, "%7E", "~", -1)
	s = url.QueryEscape(s)
	return method + "&%2F&" + s
}

// sdkShaHmac1 mirrors utils.ShaHmac1 in alibaba-cloud-sdk-go.
func sdkShaHmac1(source, secret string) string {
	h := hmac.New(sha1.New, []byte(secret))
	h.Write([]byte(source))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

type sdkSorter struct{ Keys, Vals []string }

func newSDKSorter(m map[string]string) *sdkSorter {
	hs := &sdkSorter{}
	for k, v := range m {
		hs.Keys = append(hs.Keys, k)
		hs.Vals = append(hs.Vals, v)
	}
	return hs
}
func (hs *sdkSorter) Len() int { return len(hs.Vals) }
func (hs *sdkSorter) Less(i, j int) bool {
	return bytes.Compare([]byte(hs.Keys[i]), []byte(hs.Keys[j])) < 0
}
func (hs *sdkSorter) Swap(i, j int) {
	hs.Vals[i], hs.Vals[j] = hs.Vals[j], hs.Vals[i]
	hs.Keys[i], hs.Keys[j] = hs.Keys[j], hs.Keys[i]
}

// sdkCanonicalQueryString mirrors getCanonicalQueryString in openapi-util.
func sdkCanonicalQueryString(query map[string]string) string {
	s := ""
	hs := newSDKSorter(query)
	sort.Sort(hs)
	for i := range hs.Keys {
		if hs.Vals[i] != "" {
			s += "&" + hs.Keys[i] + "=" + url.QueryEscape(hs.Vals[i])
		} else {
			s += "&" + hs.Keys[i] + "="
		}
	}
	s = strings.Replace(s, "+", "%20", -1)
	s = strings.Replace(s, "*", "%2A", -1)
	s = strings.Replace(s, "%7E", "~", -1)
	if s != "" {
		s = strings.TrimLeft(s, "&")
	}
	return s
}

// sdkCanonicalHeaders mirrors getCanonicalHeaders in openapi-util.
func sdkCanonicalHeaders(headers map[string]string) (string, []string) {
	tmp := make(map[string]string)
	tmpHeader := http.Header{}
	for k, v := range headers {
		if strings.HasPrefix(strings.ToLower(k), "x-acs-") || strings.ToLower(k) == "host" ||
			strings.ToLower(k) == "content-type" {
			tmp[strings.ToLower(k)] = strings.TrimSpace(v)
			tmpHeader.Add(strings.ToLower(k), strings.TrimSpace(v))
		}
	}
	hs := newSDKSorter(tmp)
	sort.Sort(hs)
	s := ""
	for _, key := range hs.Keys {
		vals := tmpHeader[textproto.CanonicalMIMEHeaderKey(key)]
		sort.Strings(vals)
		s += key + ":" + strings.Join(vals, ",") + "\n"
	}
	return s, hs.Keys
}

// sdkGetAuthorization mirrors GetAuthorization in openapi-util for
// ACS3-HMAC-SHA256, returning the canonical request too.
func sdkGetAuthorization(method, pathname string, query, headers map[string]string, payload, ak, secret string) (canon, auth string) {
	uri := pathname
	if uri == "" {
		uri = "/"
	}
	uri = strings.Replace(uri, "+", "%20", -1)
	uri = strings.Replace(uri, "*", "%2A", -1)
	uri = strings.Replace(uri, "%7E", "~", -1)
	ch, signed := sdkCanonicalHeaders(headers)
	canon = method + "\n" + uri + "\n" + sdkCanonicalQueryString(query) + "\n" + ch + "\n" +
		strings.Join(signed, ";") + "\n" + payload
	sum := sha256.Sum256([]byte(canon))
	sts := V3Algorithm + "\n" + hex.EncodeToString(sum[:])
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(sts))
	auth = V3Algorithm + " Credential=" + ak + ",SignedHeaders=" + strings.Join(signed, ";") +
		",Signature=" + hex.EncodeToString(h.Sum(nil))
	return canon, auth
}

// ---- Percent-encoding ----

func TestAppendPercentEncode(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"unreserved", "AZaz09-_.~", "AZaz09-_.~"},
		{"space", "a b", "a%20b"},
		{"plus", "a+b", "a%2Bb"},
		{"star", "a*b", "a%2Ab"},
		{"tilde", "~", "~"},
		{"slash", "ENCRYPT/DECRYPT", "ENCRYPT%2FDECRYPT"},
		{"equals", "a=b", "a%3Db"},
		{"ampersand", "a&b", "a%26b"},
		{"percent", "100%", "100%25"},
		{"literal %7E stays escaped", "%7E", "%257E"},
		{"colon", "09:43:12", "09%3A43%3A12"},
		{"utf8 2-byte", "é", "%C3%A9"},
		{"utf8 3-byte", "密钥", "%E5%AF%86%E9%92%A5"},
		{"utf8 4-byte", "😀", "%F0%9F%98%80"},
		{"control and high bytes", "\x00\n\x7f\xff", "%00%0A%7F%FF"},
		{"json", `{"app":"demo"}`, "%7B%22app%22%3A%22demo%22%7D"},
		{"plaintext from capture", "hello world+*~", "hello%20world%2B%2A~"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendPercentEncode([]byte("prefix:"), []byte(tt.in)))
			if got != "prefix:"+tt.want {
				t.Errorf("got %q, want %q", got, "prefix:"+tt.want)
			}
			if sdk := sdkPercentEncode(tt.in); sdk != tt.want {
				t.Errorf("SDK encoding: got %q, want %q", sdk, tt.want)
			}
		})
	}
}

func TestAppendQuery(t *testing.T) {
	tests := []struct {
		name   string
		params []KV
		want   string
	}{
		{"none", nil, ""},
		{"captured encrypt", []KV{kv("Plaintext", "hello world+*~"), kv("KeyId", "key-test0000000000000000")},
			"KeyId=key-test0000000000000000&Plaintext=hello%20world%2B%2A~"},
		{"empty value and encoded key", []KV{kv("b", ""), kv("a b", "=&")}, "a%20b=%3D%26&b="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendQuery(nil, tt.params))
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			back, err := url.ParseQuery(got)
			if err != nil {
				t.Fatalf("url.ParseQuery(%q): %v", got, err)
			}
			for _, p := range tt.params {
				if g := back.Get(string(p.Key)); g != string(p.Value) {
					t.Errorf("decoded %q: got %q, want %q", p.Key, g, p.Value)
				}
			}
		})
	}
}

// ---- HMAC ----

func TestHMACMatchesCryptoHMAC(t *testing.T) {
	long := strings.Repeat("k", 200)
	tests := []struct{ name, key, msg string }{
		{"empty key and message", "", ""},
		{"short key", "testAKSecret", "message"},
		{"key of block size", strings.Repeat("x", 64), "message"},
		{"key one over block size", strings.Repeat("x", 65), "message"},
		{"long key", long, strings.Repeat("m", 1000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h1 := hmac.New(sha1.New, []byte(tt.key+"&"))
			h1.Write([]byte(tt.msg))
			want1 := base64.StdEncoding.EncodeToString(h1.Sum(nil))
			if got := string(AppendV1Signature(nil, []byte(tt.key), []byte(tt.msg))); got != want1 {
				t.Errorf("V1: got %s, want %s", got, want1)
			}
			h256 := hmac.New(sha256.New, []byte(tt.key))
			h256.Write([]byte(tt.msg))
			want256 := hex.EncodeToString(h256.Sum(nil))
			if got := string(AppendV3Signature(nil, []byte(tt.key), []byte(tt.msg))); got != want256 {
				t.Errorf("V3: got %s, want %s", got, want256)
			}
		})
	}
}

// ---- V1 ----

func TestV1CapturedCreateKey(t *testing.T) {
	params := parseQuery(t, v1CreateKeyQuery)
	slices.Reverse(params) // the order on the wire must not matter
	sts := AppendV1StringToSign([]byte("junk"), []byte("POST"), params)
	if got := string(sts[4:]); got != v1CreateKeySTS {
		t.Fatalf("string to sign:\ngot  %s\nwant %s", got, v1CreateKeySTS)
	}
	sts = sts[4:]
	if got := string(AppendV1Signature(nil, []byte(testSecret), sts)); got != v1CreateKeySig {
		t.Errorf("signature: got %s, want %s", got, v1CreateKeySig)
	}
	sig := getKV(params, "Signature")
	if string(sig) != v1CreateKeySig {
		t.Fatalf("decoded Signature parameter: got %s, want %s", sig, v1CreateKeySig)
	}
	if !VerifyV1([]byte(testSecret), sts, sig) {
		t.Errorf("VerifyV1(captured): got false, want true")
	}
	if VerifyV1([]byte("wrongSecret"), sts, sig) {
		t.Errorf("VerifyV1(wrong secret): got true, want false")
	}
	if got := sdkShaHmac1(v1CreateKeySTS, testSecret+"&"); got != v1CreateKeySig {
		t.Errorf("SDK oracle signature: got %s, want %s", got, v1CreateKeySig)
	}
}

func TestV1CapturedEncryptPlaintext(t *testing.T) {
	params := parseQuery(t, "Action=Encrypt&Plaintext=hello+world%2B%2A~")
	if got := string(getKV(params, "Plaintext")); got != "hello world+*~" {
		t.Fatalf("decoded Plaintext: got %q, want %q", got, "hello world+*~")
	}
	sts := string(AppendV1StringToSign(nil, []byte("POST"), params))
	const want = "POST&%2F&Action%3DEncrypt%26Plaintext%3Dhello%2520world%252B%252A~"
	if sts != want {
		t.Errorf("got %s, want %s", sts, want)
	}
	if !strings.Contains(sts, "Plaintext%3Dhello%2520world%252B%252A~") {
		t.Errorf("got %s, want it to contain the captured Plaintext encoding", sts)
	}
}

func TestV1StringToSignCornerCases(t *testing.T) {
	tests := []struct {
		name   string
		params []KV
		want   string // "" means: compare with the SDK oracle only
	}{
		{"no params", nil, "GET&%2F&"},
		{"only Signature", []KV{kv("Signature", "x")}, "GET&%2F&"},
		{"empty value kept", []KV{kv("SignatureType", ""), kv("A", "1")}, "GET&%2F&A%3D1%26SignatureType%3D"},
		{"raw-key order: a- before a/ (encoded order would differ)", []KV{kv("a/", "2"), kv("a-", "1")},
			"GET&%2F&a-%3D1%26a%252F%3D2"},
		{"encoded key", []KV{kv("k y", "v")}, "GET&%2F&k%2520y%3Dv"},
		{"signature-like names are kept", []KV{kv("signature", "x"), kv("SignatureX", "y")}, ""},
		{"utf8, tilde, star", []KV{kv("d", "é~*"), kv("c", "%7E")}, ""},
		{"duplicate key sorted by value", []KV{kv("a", "2"), kv("a", "1")}, "GET&%2F&a%3D1%26a%3D2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendV1StringToSign(nil, []byte("GET"), cloneKVs(tt.params)))
			if tt.want != "" && got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			m := map[string]string{}
			for _, p := range tt.params {
				m[string(p.Key)] = string(p.Value)
			}
			if len(m) == len(tt.params) {
				if sdk := sdkBuildRpcStringToSign("GET", m); got != sdk {
					t.Errorf("got %s, want (SDK) %s", got, sdk)
				}
			}
		})
	}
}

func TestVerifyV1Rejects(t *testing.T) {
	sts := []byte(v1CreateKeySTS)
	tests := []struct{ name, sig string }{
		{"empty", ""},
		{"truncated", v1CreateKeySig[:27]},
		{"unpadded", strings.TrimSuffix(v1CreateKeySig, "=")},
		{"url alphabet", strings.ReplaceAll(v1CreateKeySig, "/", "_")},
		{"percent-encoded", url.QueryEscape(v1CreateKeySig)},
		{"trailing byte", v1CreateKeySig + "A"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerifyV1([]byte(testSecret), sts, []byte(tt.sig)); got {
				t.Errorf("VerifyV1(%q): got true, want false", tt.sig)
			}
		})
	}
	for i := range len(v1CreateKeySig) {
		sig := []byte(v1CreateKeySig)
		sig[i] ^= 0x01
		if VerifyV1([]byte(testSecret), sts, sig) {
			t.Errorf("signature byte %d flipped: got true, want false", i)
		}
	}
}

// ---- V3 ----

func TestV3CapturedEncrypt(t *testing.T) {
	a, err := ParseV3Authorization([]byte(v3EncryptAuth))
	if err != nil {
		t.Fatalf("ParseV3Authorization: got error %v, want nil", err)
	}
	if string(a.AccessKeyID) != "testAKID" {
		t.Errorf("AccessKeyID: got %s, want testAKID", a.AccessKeyID)
	}
	query := parseQuery(t, v3EncryptQuery)
	canon := AppendV3CanonicalRequest([]byte("junk"), []byte("POST"), []byte("/"), query, a.SignedHeaders,
		headerFunc(v3EncryptHeaders), []byte(emptySHA256))
	if got := string(canon[4:]); got != v3EncryptCanon {
		t.Fatalf("canonical request:\ngot  %q\nwant %q", got, v3EncryptCanon)
	}
	canon = canon[4:]
	sts := AppendV3StringToSign(nil, canon)
	sum := sha256.Sum256([]byte(v3EncryptCanon))
	if want := "ACS3-HMAC-SHA256\n" + hex.EncodeToString(sum[:]); string(sts) != want {
		t.Errorf("string to sign: got %q, want %q", sts, want)
	}
	if got := string(AppendV3Signature(nil, []byte(testSecret), sts)); got != v3EncryptSig {
		t.Errorf("signature: got %s, want %s", got, v3EncryptSig)
	}
	if !VerifyV3([]byte(testSecret), sts, a.Signature) {
		t.Errorf("VerifyV3(captured): got false, want true")
	}
	if VerifyV3([]byte(testSecret), sts, bytes.ToUpper(a.Signature)) {
		t.Errorf("VerifyV3(upper-case hex): got true, want false")
	}
	// An empty path canonicalizes as "/".
	canon2 := AppendV3CanonicalRequest(nil, []byte("POST"), nil, query, a.SignedHeaders,
		headerFunc(v3EncryptHeaders), []byte(emptySHA256))
	if string(canon2) != v3EncryptCanon {
		t.Errorf("empty path: got %q, want %q", canon2, v3EncryptCanon)
	}
}

func TestSignV3Captured(t *testing.T) {
	r := V3Request{
		Method: "POST", Host: "127.0.0.1:18080", Path: "/",
		Action: "Encrypt", Version: "2016-01-20",
		Query: []KV{kv("Plaintext", "hello world+*~"), kv("KeyId", "key-test0000000000000000")},
		Date:  time.Date(2026, 11, 29, 17, 43, 37, 0, time.FixedZone("CST", 8*3600)),
		Nonce: "f62fdf98936a63157c00a073f27d5dbd",
	}
	hdrs := SignV3("testAKID", testSecret, r)
	want := []KV{
		kv("x-acs-action", "Encrypt"),
		kv("x-acs-version", "2016-01-20"),
		kv("x-acs-date", "2026-11-29T09:43:37Z"),
		kv("x-acs-signature-nonce", "f62fdf98936a63157c00a073f27d5dbd"),
		kv("x-acs-content-sha256", emptySHA256),
		kv("authorization", v3EncryptAuth),
	}
	if got, w := fmt.Sprintf("%q", hdrs), fmt.Sprintf("%q", want); got != w {
		t.Errorf("headers:\ngot  %s\nwant %s", got, w)
	}
	if string(r.Query[0].Key) != "Plaintext" {
		t.Errorf("SignV3 reordered r.Query: got first key %s, want Plaintext", r.Query[0].Key)
	}
	if got := string(AppendQuery(nil, r.Query)); got != "KeyId=key-test0000000000000000&Plaintext=hello%20world%2B%2A~" {
		t.Errorf("AppendQuery: got %s", got)
	}
}

func TestSignV3SecurityTokenAndBody(t *testing.T) {
	body := []byte("a=1&b=2")
	r := V3Request{
		Method: "POST", Host: "kms.cn-hangzhou.aliyuncs.com",
		Action: "Encrypt", Version: "2016-01-20",
		Query:         []KV{kv("KeyId", "k")},
		Body:          body,
		Date:          time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Nonce:         "n",
		SecurityToken: "sts-token",
	}
	hdrs := SignV3("ak", "sk", r)
	sum := sha256.Sum256(body)
	if got, want := string(getKV(hdrs, "x-acs-content-sha256")), hex.EncodeToString(sum[:]); got != want {
		t.Errorf("x-acs-content-sha256: got %s, want %s", got, want)
	}
	if got := string(getKV(hdrs, "x-acs-security-token")); got != "sts-token" {
		t.Errorf("x-acs-security-token: got %q, want sts-token", got)
	}
	if got := string(getKV(hdrs, "x-acs-accesskey-id")); got != "ak" {
		t.Errorf("x-acs-accesskey-id: got %q, want ak", got)
	}
	// The SDK oracle, fed the same header map, must produce the same header.
	m := map[string]string{"host": r.Host, "user-agent": "ignored", "accept": "application/json"}
	for _, h := range hdrs {
		if string(h.Key) != "authorization" {
			m[string(h.Key)] = string(h.Value)
		}
	}
	_, wantAuth := sdkGetAuthorization("POST", "", map[string]string{"KeyId": "k"}, m, hex.EncodeToString(sum[:]), "ak", "sk")
	if got := string(getKV(hdrs, "authorization")); got != wantAuth {
		t.Errorf("authorization:\ngot  %s\nwant %s", got, wantAuth)
	}
}

func TestSignV3Defaults(t *testing.T) {
	before := time.Now().UTC().Truncate(time.Second)
	hdrs := SignV3("ak", "sk", V3Request{Host: "h", Action: "A", Version: "V"})
	after := time.Now().UTC()
	d, err := time.Parse("2006-01-02T15:04:05Z", string(getKV(hdrs, "x-acs-date")))
	if err != nil || d.Before(before) || d.After(after) {
		t.Errorf("x-acs-date: got %s (err %v), want between %v and %v", getKV(hdrs, "x-acs-date"), err, before, after)
	}
	nonce := getKV(hdrs, "x-acs-signature-nonce")
	if _, err := hex.DecodeString(string(nonce)); len(nonce) != 32 || err != nil {
		t.Errorf("nonce: got %q, want 32 hex digits", nonce)
	}
	if !verifySigned(t, "sk", "GET", "h", "", nil, hdrs, nil) {
		t.Errorf("empty method: got no verification as GET, want it to verify")
	}
}

// verifySigned verifies SignV3 output the way the server does.
func verifySigned(t testing.TB, secret, method, host, path string, query, hdrs []KV, body []byte) bool {
	t.Helper()
	a, err := ParseV3Authorization(getKV(hdrs, "authorization"))
	if err != nil {
		return false
	}
	lookup := func(name []byte) []byte {
		if string(name) == "host" {
			return []byte(host)
		}
		return getKV(hdrs, string(name))
	}
	sum := sha256.Sum256(body)
	canon := AppendV3CanonicalRequest(nil, []byte(method), []byte(path), query, a.SignedHeaders, lookup,
		hex.AppendEncode(nil, sum[:]))
	return VerifyV3([]byte(secret), AppendV3StringToSign(nil, canon), a.Signature)
}

func TestSignV3RoundTripAndTamper(t *testing.T) {
	r := V3Request{
		Method: "POST", Host: "127.0.0.1:18080", Path: "/",
		Action: "GenerateDataKey", Version: "2016-01-20",
		Query: []KV{kv("KeyId", "key-test"), kv("EncryptionContext", `{"app":"demo"}`), kv("NumberOfBytes", "32")},
		Body:  []byte("body"),
		Date:  time.Date(2026, 11, 29, 9, 43, 37, 0, time.UTC),
		Nonce: "0123456789abcdef0123456789abcdef", SecurityToken: "tok",
	}
	hdrs := SignV3("testAKID", testSecret, r)
	if !verifySigned(t, testSecret, r.Method, r.Host, r.Path, cloneKVs(r.Query), hdrs, r.Body) {
		t.Fatalf("round trip: got false, want true")
	}
	if verifySigned(t, "other", r.Method, r.Host, r.Path, cloneKVs(r.Query), hdrs, r.Body) {
		t.Errorf("wrong secret: got true, want false")
	}

	flip := func(b []byte, i int) []byte { c := bytes.Clone(b); c[i] ^= 0x01; return c }
	check := func(name string, ok bool) {
		t.Helper()
		if ok {
			t.Errorf("%s: got true, want false", name)
		}
	}
	for i := range r.Method {
		check(fmt.Sprintf("method byte %d", i), verifySigned(t, testSecret, string(flip([]byte(r.Method), i)), r.Host, r.Path, cloneKVs(r.Query), hdrs, r.Body))
	}
	for i := range r.Host {
		check(fmt.Sprintf("host byte %d", i), verifySigned(t, testSecret, r.Method, string(flip([]byte(r.Host), i)), r.Path, cloneKVs(r.Query), hdrs, r.Body))
	}
	check("path", verifySigned(t, testSecret, r.Method, r.Host, "/x", cloneKVs(r.Query), hdrs, r.Body))
	for i := range r.Body {
		check(fmt.Sprintf("body byte %d", i), verifySigned(t, testSecret, r.Method, r.Host, r.Path, cloneKVs(r.Query), hdrs, flip(r.Body, i)))
	}
	for j, p := range r.Query {
		for i := range p.Key {
			q := cloneKVs(r.Query)
			q[j].Key = flip(q[j].Key, i)
			check(fmt.Sprintf("query %s key byte %d", p.Key, i), verifySigned(t, testSecret, r.Method, r.Host, r.Path, q, hdrs, r.Body))
		}
		for i := range p.Value {
			q := cloneKVs(r.Query)
			q[j].Value = flip(q[j].Value, i)
			check(fmt.Sprintf("query %s value byte %d", p.Key, i), verifySigned(t, testSecret, r.Method, r.Host, r.Path, q, hdrs, r.Body))
		}
	}
	check("query parameter dropped", verifySigned(t, testSecret, r.Method, r.Host, r.Path, cloneKVs(r.Query[1:]), hdrs, r.Body))
	check("query parameter added", verifySigned(t, testSecret, r.Method, r.Host, r.Path, append(cloneKVs(r.Query), kv("X", "")), hdrs, r.Body))
	for j, h := range hdrs {
		if string(h.Key) == "authorization" {
			continue
		}
		for i := range h.Value {
			hh := cloneKVs(hdrs)
			hh[j].Value = flip(hh[j].Value, i)
			check(fmt.Sprintf("header %s byte %d", h.Key, i), verifySigned(t, testSecret, r.Method, r.Host, r.Path, cloneKVs(r.Query), hh, r.Body))
		}
	}
	// In the Authorization header every byte of SignedHeaders and Signature is
	// covered. Credential only selects the secret, so it is not flipped here.
	auth := getKV(hdrs, "authorization")
	a, _ := ParseV3Authorization(auth)
	for _, part := range [][]byte{a.SignedHeaders, a.Signature} {
		off := bytes.Index(auth, part)
		for i := range part {
			hh := cloneKVs(hdrs)
			for k := range hh {
				if string(hh[k].Key) == "authorization" {
					hh[k].Value = flip(auth, off+i)
				}
			}
			check(fmt.Sprintf("authorization byte %d", off+i), verifySigned(t, testSecret, r.Method, r.Host, r.Path, cloneKVs(r.Query), hh, r.Body))
		}
	}
}

func TestV3CanonicalRequestCornerCases(t *testing.T) {
	hdrs := []KV{kv("host", " h\t"), kv("x-acs-date", "\u00a0d\u2003"), kv("content-type", "application/json")}
	tests := []struct {
		name  string
		path  string
		query []KV
	}{
		{"no query", "/", nil},
		{"empty path", "", []KV{kv("A", "1")}},
		{"path replacements", "/a+b*c%7Ed e", nil},
		{"raw keys with replacements", "/", []KV{kv("a+b", "x y"), kv("c*d", "*"), kv("e%7Ef", "~"), kv("g h", "%7E")}},
		{"empty values", "/", []KV{kv("b", ""), kv("a", "")}},
		{"leading ampersands trimmed", "/", []KV{kv("&&a", "1"), kv("z", "2")}},
		{"empty key first", "/", []KV{kv("", "v"), kv("b", "")}},
		{"utf8 key and value", "/", []KV{kv("ключ", "значение")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := map[string]string{}
			for _, p := range tt.query {
				m[string(p.Key)] = string(p.Value)
			}
			hm := map[string]string{}
			for _, h := range hdrs {
				hm[string(h.Key)] = string(h.Value)
			}
			want, _ := sdkGetAuthorization("GET", tt.path, m, hm, "P", "ak", "sk")
			_, signed := sdkCanonicalHeaders(hm)
			got := string(AppendV3CanonicalRequest(nil, []byte("GET"), []byte(tt.path), cloneKVs(tt.query),
				[]byte(strings.Join(signed, ";")), headerFunc(hdrs), []byte("P")))
			if got != want {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
}

func TestV3CanonicalRequestSignedHeadersAsGiven(t *testing.T) {
	hdrs := []KV{kv("host", "h"), kv("x-acs-date", "d")}
	tests := []struct{ name, signed, want string }{
		{"given order kept", "x-acs-date;host", "GET\n/\n\nx-acs-date:d\nhost:h\n\nx-acs-date;host\nP"},
		{"absent header", "host;x-acs-missing", "GET\n/\n\nhost:h\nx-acs-missing:\n\nhost;x-acs-missing\nP"},
		{"none", "", "GET\n/\n\n\n\nP"},
		{"empty element", "host;", "GET\n/\n\nhost:h\n:\n\nhost;\nP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendV3CanonicalRequest(nil, []byte("GET"), []byte("/"), nil, []byte(tt.signed), headerFunc(hdrs), []byte("P")))
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	got := string(AppendV3CanonicalRequest(nil, []byte("GET"), []byte("/"), nil, []byte("host"), nil, []byte("P")))
	if want := "GET\n/\n\nhost:\n\nhost\nP"; got != want {
		t.Errorf("nil header func: got %q, want %q", got, want)
	}
}

func TestParseV3Authorization(t *testing.T) {
	ok := []struct {
		name, in           string
		ak, signed, sigHex string
	}{
		{"captured", v3EncryptAuth, "testAKID",
			"host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version", v3EncryptSig},
		{"spaces after commas", "ACS3-HMAC-SHA256 Credential=ak, SignedHeaders=host,  Signature=ab", "ak", "host", "ab"},
		{"any order", "ACS3-HMAC-SHA256 Signature=ab,Credential=ak,SignedHeaders=host;x-acs-date", "ak", "host;x-acs-date", "ab"},
		{"surrounding and inner white space", " \tACS3-HMAC-SHA256  Credential = ak ,SignedHeaders=host\t,Signature=ab ", "ak", "host", "ab"},
		{"equals inside a value", "ACS3-HMAC-SHA256 Credential=a=b,SignedHeaders=host,Signature=ab", "a=b", "host", "ab"},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseV3Authorization([]byte(tt.in))
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if string(a.AccessKeyID) != tt.ak || string(a.SignedHeaders) != tt.signed || string(a.Signature) != tt.sigHex {
				t.Errorf("got {%q %q %q}, want {%q %q %q}", a.AccessKeyID, a.SignedHeaders, a.Signature, tt.ak, tt.signed, tt.sigHex)
			}
		})
	}
	bad := []struct {
		name, in string
		want     error
	}{
		{"empty", "", ErrMalformedAuthorization},
		{"white space only", "  ", ErrMalformedAuthorization},
		{"algorithm only", "ACS3-HMAC-SHA256", ErrMalformedAuthorization},
		{"algorithm and space only", "ACS3-HMAC-SHA256 ", ErrMalformedAuthorization},
		{"missing Credential", "ACS3-HMAC-SHA256 SignedHeaders=host,Signature=ab", ErrMalformedAuthorization},
		{"missing SignedHeaders", "ACS3-HMAC-SHA256 Credential=ak,Signature=ab", ErrMalformedAuthorization},
		{"missing Signature", "ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host", ErrMalformedAuthorization},
		{"empty Credential", "ACS3-HMAC-SHA256 Credential=,SignedHeaders=host,Signature=ab", ErrMalformedAuthorization},
		{"empty SignedHeaders", "ACS3-HMAC-SHA256 Credential=ak,SignedHeaders= ,Signature=ab", ErrMalformedAuthorization},
		{"empty Signature", "ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host,Signature=", ErrMalformedAuthorization},
		{"duplicate part", "ACS3-HMAC-SHA256 Credential=ak,Credential=ak,SignedHeaders=host,Signature=ab", ErrMalformedAuthorization},
		{"unknown part", "ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host,Signature=ab,Region=x", ErrMalformedAuthorization},
		{"part without equals", "ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host,Signature", ErrMalformedAuthorization},
		{"trailing comma", "ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host,Signature=ab,", ErrMalformedAuthorization},
		{"lower-case part name", "ACS3-HMAC-SHA256 credential=ak,SignedHeaders=host,Signature=ab", ErrMalformedAuthorization},
		{"no space after algorithm", "ACS3-HMAC-SHA256,Credential=ak,SignedHeaders=host,Signature=ab", ErrUnsupportedAlgorithm},
		{"SM3", "ACS3-HMAC-SM3 Credential=ak,SignedHeaders=host,Signature=ab", ErrUnsupportedAlgorithm},
		{"RSA", "ACS3-RSA-SHA256 Credential=ak,SignedHeaders=host,Signature=ab", ErrUnsupportedAlgorithm},
		{"lower-case algorithm", "acs3-hmac-sha256 Credential=ak,SignedHeaders=host,Signature=ab", ErrUnsupportedAlgorithm},
		{"bearer", "Bearer QtcKU/AYzRLc==", ErrUnsupportedAlgorithm},
		{"aws", "AWS4-HMAC-SHA256 Credential=a/b,SignedHeaders=host,Signature=ab", ErrUnsupportedAlgorithm},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseV3Authorization([]byte(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("got error %v, want %v", err, tt.want)
			}
			if a.AccessKeyID != nil || a.SignedHeaders != nil || a.Signature != nil {
				t.Errorf("got %+v, want zero V3Authorization on error", a)
			}
		})
	}
}

// ---- Fuzz targets ----

func isWellFormedAuthValue(s string) bool {
	return s != "" && !strings.Contains(s, ",") && string(trimOWS([]byte(s))) == s
}

func FuzzParseV3Authorization(f *testing.F) {
	f.Add([]byte(v3EncryptAuth), "testAKID", "host;x-acs-date", v3EncryptSig)
	f.Add([]byte("ACS3-HMAC-SHA256 Credential=a, SignedHeaders=b,Signature=c"), "a", "b", "c")
	f.Add([]byte("Bearer x"), "a=b", "h", "=")
	f.Add([]byte("ACS3-HMAC-SHA256 Credential=,,,"), " a", "b\t", "c")
	f.Fuzz(func(t *testing.T, raw []byte, ak, signed, sig string) {
		// Arbitrary input never panics, and what parses re-parses identically.
		if a, err := ParseV3Authorization(raw); err == nil {
			again := appendV3Authorization(nil, a.AccessKeyID, a.SignedHeaders, a.Signature)
			b, err := ParseV3Authorization(again)
			if err != nil {
				t.Fatalf("re-parse of %q: got error %v, want nil", again, err)
			}
			if !bytes.Equal(a.AccessKeyID, b.AccessKeyID) || !bytes.Equal(a.SignedHeaders, b.SignedHeaders) || !bytes.Equal(a.Signature, b.Signature) {
				t.Fatalf("re-parse of %q: got %q, want %q", again, b, a)
			}
		} else if !errors.Is(err, ErrMalformedAuthorization) && !errors.Is(err, ErrUnsupportedAlgorithm) {
			t.Fatalf("got error %v, want one of the package errors", err)
		}
		// Well-formed input round-trips, in either spelling and part order.
		if !isWellFormedAuthValue(ak) || !isWellFormedAuthValue(signed) || !isWellFormedAuthValue(sig) {
			return
		}
		for _, in := range []string{
			string(appendV3Authorization(nil, []byte(ak), []byte(signed), []byte(sig))),
			V3Algorithm + " Signature=" + sig + ", Credential=" + ak + ",  SignedHeaders=" + signed,
		} {
			a, err := ParseV3Authorization([]byte(in))
			if err != nil {
				t.Fatalf("ParseV3Authorization(%q): got error %v, want nil", in, err)
			}
			if string(a.AccessKeyID) != ak || string(a.SignedHeaders) != signed || string(a.Signature) != sig {
				t.Fatalf("ParseV3Authorization(%q): got %q, want {%q %q %q}", in, a, ak, signed, sig)
			}
		}
	})
}

// fuzzParams splits raw into params on "&" and "=" without decoding, so any
// byte can reach a key or a value.
func fuzzParams(raw []byte) []KV {
	if len(raw) == 0 {
		return nil
	}
	var out []KV
	for _, pair := range bytes.Split(raw, []byte{'&'}) {
		k, v, _ := bytes.Cut(pair, []byte{'='})
		out = append(out, KV{k, v})
	}
	return out
}

func FuzzVerifyV1(f *testing.F) {
	f.Add("POST", []byte("AccessKeyId=testAKID&Action=CreateKey&Description=demo key&Signature=x&SignatureType="), []byte(testSecret))
	f.Add("GET", []byte("a/=1&a-=2&\xff=\x00&~=%7E&*=+"), []byte(strings.Repeat("s", 100)))
	f.Add("", []byte(""), []byte(""))
	f.Fuzz(func(t *testing.T, method string, raw, secret []byte) {
		params := fuzzParams(raw)
		sts := AppendV1StringToSign(nil, []byte(method), params)
		sig := AppendV1Signature(nil, secret, sts)
		if !VerifyV1(secret, sts, sig) {
			t.Fatalf("VerifyV1(own signature): got false, want true")
		}
		h := hmac.New(sha1.New, append(bytes.Clone(secret), '&'))
		h.Write(sts)
		if want := base64.StdEncoding.AppendEncode(nil, h.Sum(nil)); !bytes.Equal(sig, want) {
			t.Fatalf("signature: got %s, want (crypto/hmac) %s", sig, want)
		}
		bad := bytes.Clone(sig)
		bad[len(bad)/2] ^= 0x01
		if VerifyV1(secret, sts, bad) {
			t.Fatalf("VerifyV1(flipped signature): got true, want false")
		}
		// The order of params does not matter.
		slices.Reverse(params)
		if again := AppendV1StringToSign(nil, []byte(method), params); !bytes.Equal(again, sts) {
			t.Fatalf("reordered params: got %s, want %s", again, sts)
		}
		// Same string as the SDK when keys are unique (the SDK uses a map).
		m := map[string]string{}
		for _, p := range params {
			m[string(p.Key)] = string(p.Value)
		}
		if len(m) == len(params) {
			if want := sdkBuildRpcStringToSign(method, m); string(sts) != want {
				t.Fatalf("got %q, want (SDK) %q", sts, want)
			}
		}
	})
}

func FuzzV3CanonicalRequest(f *testing.F) {
	f.Add("POST", []byte("/"), []byte("KeyId=key-test&Plaintext=hello world+*~"),
		[]byte("host:127.0.0.1:18080\nx-acs-action:Encrypt\nx-acs-date: 2026 \nuser-agent:x"),
		[]byte("host;x-acs-action;x-acs-date"), []byte(emptySHA256))
	f.Add("GET", []byte("/a+b%7E"), []byte("&&=&a*=%7E"), []byte("content-type:\u00a0x\u00a0\nx-acs-a:"), []byte(";;"), []byte(""))
	f.Fuzz(func(t *testing.T, method string, path, rawQuery, rawHeaders, signed, payload []byte) {
		query := fuzzParams(rawQuery)
		var hdrs []KV
		for _, line := range bytes.Split(rawHeaders, []byte{'\n'}) {
			k, v, _ := bytes.Cut(line, []byte{':'})
			hdrs = append(hdrs, KV{k, v})
		}
		// Arbitrary SignedHeaders never panic.
		_ = AppendV3CanonicalRequest(nil, []byte(method), path, cloneKVs(query), signed, headerFunc(hdrs), payload)

		// With the names the SDK would sign, the result is the SDK's.
		qm := map[string]string{}
		for _, p := range query {
			qm[string(p.Key)] = string(p.Value)
		}
		hm := map[string]string{}
		for _, h := range hdrs {
			name := string(h.Key)
			if name != strings.ToLower(name) || strings.ContainsAny(name, ";") {
				return
			}
			hm[name] = string(h.Value)
		}
		if len(qm) != len(query) || len(hm) != len(hdrs) {
			return
		}
		want, _ := sdkGetAuthorization(method, string(path), qm, hm, string(payload), "ak", "sk")
		_, names := sdkCanonicalHeaders(hm)
		got := AppendV3CanonicalRequest(nil, []byte(method), path, query, []byte(strings.Join(names, ";")), headerFunc(hdrs), payload)
		if string(got) != want {
			t.Fatalf("got  %q\nwant %q", got, want)
		}
	})
}

// ---- Benchmarks ----

// BenchmarkVerifyV3 runs the server's V3 path on the captured Encrypt request:
// parse Authorization, build the canonical request and string to sign into
// reused buffers, verify. It does not allocate in steady state: the HMAC
// state is pooled (crypto/hmac.New alone would cost 5 allocs/op).
func BenchmarkVerifyV3(b *testing.B) {
	query := parseQuery(b, v3EncryptQuery)
	header := headerFunc(v3EncryptHeaders)
	auth := []byte(v3EncryptAuth)
	method, path, payload, secret := []byte("POST"), []byte("/"), []byte(emptySHA256), []byte(testSecret)
	canon := make([]byte, 0, 1024)
	sts := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		a, err := ParseV3Authorization(auth)
		if err != nil {
			b.Fatal(err)
		}
		canon = AppendV3CanonicalRequest(canon[:0], method, path, query, a.SignedHeaders, header, payload)
		sts = AppendV3StringToSign(sts[:0], canon)
		if !VerifyV3(secret, sts, a.Signature) {
			b.Fatal("VerifyV3: got false, want true")
		}
	}
}

// BenchmarkVerifyV1 runs the server's V1 path on the captured CreateKey
// request: build the string to sign into a reused buffer, verify.
func BenchmarkVerifyV1(b *testing.B) {
	params := parseQuery(b, v1CreateKeyQuery)
	sig := getKV(params, "Signature")
	method, secret := []byte("POST"), []byte(testSecret)
	sts := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		sts = AppendV1StringToSign(sts[:0], method, params)
		if !VerifyV1(secret, sts, sig) {
			b.Fatal("VerifyV1: got false, want true")
		}
	}
}

func BenchmarkSignV3(b *testing.B) {
	r := V3Request{
		Method: "POST", Host: "127.0.0.1:18080", Action: "Encrypt", Version: "2016-01-20",
		Query: parseQuery(b, v3EncryptQuery), Date: time.Now(), Nonce: "f62fdf98936a63157c00a073f27d5dbd",
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = SignV3("testAKID", testSecret, r)
	}
}

// ---- Example ----

// Example_verifyV3 shows the server-side V3 check of the captured request.
func Example_verifyV3() {
	query := []KV{ // decoded from ?KeyId=...&Plaintext=hello+world%2B%2A~
		{[]byte("KeyId"), []byte("key-test0000000000000000")},
		{[]byte("Plaintext"), []byte("hello world+*~")},
	}
	header := func(name []byte) []byte { // lower-case lookup into the request headers
		return getKV(v3EncryptHeaders, string(name))
	}
	a, err := ParseV3Authorization(header([]byte("authorization")))
	if err != nil {
		panic(err)
	}
	// The server also checks x-acs-content-sha256 against the body, x-acs-date
	// and the nonce, and requires host and x-acs-* in SignedHeaders.
	canon := AppendV3CanonicalRequest(nil, []byte("POST"), []byte("/"), query, a.SignedHeaders, header,
		header([]byte("x-acs-content-sha256")))
	sts := AppendV3StringToSign(nil, canon)
	fmt.Println(string(a.AccessKeyID), VerifyV3([]byte("testAKSecret"), sts, a.Signature))
	// Output: testAKID true
}
