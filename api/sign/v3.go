package sign

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"time"
)

// V3Algorithm is the algorithm name of the V3 signature, the first token of
// the Authorization header.
const V3Algorithm = "ACS3-HMAC-SHA256"

// v3SignatureLen is the length of hex(HMAC-SHA256).
const v3SignatureLen = 2 * sha256.Size

// V3Authorization holds the parts of a V3 Authorization header. The slices
// alias the input of ParseV3Authorization.
type V3Authorization struct{ AccessKeyID, SignedHeaders, Signature []byte }

// ErrMalformedAuthorization is returned by ParseV3Authorization when the
// header is not in the form
// "ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..".
var ErrMalformedAuthorization = errors.New("sign: malformed Authorization header")

// ErrUnsupportedAlgorithm is returned by ParseV3Authorization when the header
// names an algorithm other than V3Algorithm, such as ACS3-HMAC-SM3,
// ACS3-RSA-SHA256 or Bearer.
var ErrUnsupportedAlgorithm = errors.New("sign: unsupported signature algorithm")

// isOWS reports whether c is HTTP optional white space (space or tab).
func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// trimOWS trims spaces and tabs from both ends of b.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && isOWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isOWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// ParseV3Authorization parses "ACS3-HMAC-SHA256
// Credential=<ak>,SignedHeaders=<a;b;c>,Signature=<hex>". It tolerates spaces
// after commas and any order of the three parts. Every part is required. It
// rejects other algorithms with ErrUnsupportedAlgorithm.
//
// Spaces and tabs around the header, around each part and around "=" are
// ignored. It returns ErrMalformedAuthorization for an empty value, a
// duplicate part, an unknown part or an empty part (including a trailing
// comma). Part names are case-sensitive, as the SDK writes them (see
// GetAuthorization in openapi-util). It does not check the signature's
// syntax; VerifyV3 rejects anything that is not the expected hex.
func ParseV3Authorization(v []byte) (V3Authorization, error) {
	var a V3Authorization
	v = trimOWS(v)
	i := bytes.IndexAny(v, " \t")
	alg, rest := v, []byte(nil)
	if i >= 0 {
		alg, rest = v[:i], v[i+1:]
	}
	if len(alg) == 0 {
		return a, ErrMalformedAuthorization
	}
	if string(alg) != V3Algorithm {
		return a, ErrUnsupportedAlgorithm
	}
	var seenCred, seenHeaders, seenSig bool
	for {
		part, more, found := bytes.Cut(rest, []byte{','})
		rest = more
		name, val, ok := bytes.Cut(part, []byte{'='})
		if !ok {
			return V3Authorization{}, ErrMalformedAuthorization
		}
		name, val = trimOWS(name), trimOWS(val)
		if len(val) == 0 {
			return V3Authorization{}, ErrMalformedAuthorization
		}
		var seen *bool
		switch string(name) {
		case "Credential":
			seen, a.AccessKeyID = &seenCred, val
		case "SignedHeaders":
			seen, a.SignedHeaders = &seenHeaders, val
		case "Signature":
			seen, a.Signature = &seenSig, val
		default:
			return V3Authorization{}, ErrMalformedAuthorization
		}
		if *seen {
			return V3Authorization{}, ErrMalformedAuthorization
		}
		*seen = true
		if !found {
			break
		}
	}
	if !seenCred || !seenHeaders || !seenSig {
		return V3Authorization{}, ErrMalformedAuthorization
	}
	return a, nil
}

// appendV3Authorization appends the Authorization header value exactly as
// GetAuthorization in openapi-util writes it.
func appendV3Authorization(dst, accessKeyID, signedHeaders, signature []byte) []byte {
	dst = append(dst, V3Algorithm+" Credential="...)
	dst = append(dst, accessKeyID...)
	dst = append(dst, ",SignedHeaders="...)
	dst = append(dst, signedHeaders...)
	dst = append(dst, ",Signature="...)
	return append(dst, signature...)
}

// AppendV3CanonicalRequest appends
// Method\nCanonicalURI\nCanonicalQuery\nCanonicalHeaders\nSignedHeaders\nHashedPayload
// exactly as the SDK builds it. query holds the decoded query parameters
// (sorted here). header returns the value of a lower-case header name (nil if
// absent). signedHeaders is the SignedHeaders list from the Authorization
// header, used as-is for the order of canonical headers and for the
// SignedHeaders line. Values are trimmed of surrounding spaces, as the SDK
// does.
//
// Mirrors GetAuthorization in openapi-util service.go:
//   - CanonicalURI: path ("" means "/") with "+"→"%20", "*"→"%2A",
//     "%7E"→"~", applied to the unescaped path, as the SDK's Pathname holds
//     it. The server should pass the decoded URL path.
//   - CanonicalQuery (getCanonicalQueryString): raw key + "=" + pct(value),
//     sorted by key and joined by "&". The keys are not percent-encoded, but
//     the three replacements apply to them, and every leading "&" is
//     trimmed. Keys that hold "&", "=", "+" or "%7E" can therefore make two
//     different queries canonicalize alike, so a server should accept only
//     plain parameter names.
//   - CanonicalHeaders (getCanonicalHeaders): name + ":" +
//     strings.TrimSpace(value) + "\n" for each name in signedHeaders, in the
//     given order. The SDK sorts the lower-cased names and would join the
//     values of a repeated header with ","; header must return that joined
//     value if the server accepts repeated signed headers. Each name is passed
//     to header exactly as it appears in signedHeaders. A header that header
//     reports absent is written with an empty value.
//
// header may be nil, meaning no header is present.
func AppendV3CanonicalRequest(dst, method, path []byte, query []KV, signedHeaders []byte, header func(name []byte) []byte, payloadHashHex []byte) []byte {
	dst = append(dst, method...)
	dst = append(dst, '\n')
	if len(path) == 0 {
		dst = append(dst, '/')
	} else {
		dst = appendPOPReplace(dst, path)
	}
	dst = append(dst, '\n')

	sortKVs(query)
	start := len(dst)
	for _, kv := range query {
		dst = append(dst, '&')
		dst = appendPOPReplace(dst, kv.Key)
		dst = append(dst, '=')
		dst = AppendPercentEncode(dst, kv.Value)
	}
	// strings.TrimLeft(canonicalQueryString, "&")
	n := 0
	for start+n < len(dst) && dst[start+n] == '&' {
		n++
	}
	if n > 0 {
		dst = append(dst[:start], dst[start+n:]...)
	}
	dst = append(dst, '\n')

	if len(signedHeaders) > 0 {
		rest := signedHeaders
		for {
			name, more, found := bytes.Cut(rest, []byte{';'})
			rest = more
			dst = append(dst, name...)
			dst = append(dst, ':')
			if header != nil {
				dst = append(dst, bytes.TrimSpace(header(name))...)
			}
			dst = append(dst, '\n')
			if !found {
				break
			}
		}
	}
	dst = append(dst, '\n')
	dst = append(dst, signedHeaders...)
	dst = append(dst, '\n')
	return append(dst, payloadHashHex...)
}

// AppendV3StringToSign appends "ACS3-HMAC-SHA256\n" +
// hex(sha256(canonicalRequest)).
func AppendV3StringToSign(dst, canonicalRequest []byte) []byte {
	sum := sha256.Sum256(canonicalRequest)
	dst = append(dst, V3Algorithm+"\n"...)
	return hex.AppendEncode(dst, sum[:])
}

// AppendV3Signature appends hex(HMAC-SHA256(secret, stringToSign)).
//
// Mirrors SignatureMethod and HexEncode in openapi-util (lower-case hex).
func AppendV3Signature(dst, secret, stringToSign []byte) []byte {
	s := getHMACState()
	mac := s.sum(s.out[:0], s.sha256Hash(), secret, nil, stringToSign)
	dst = hex.AppendEncode(dst, mac)
	s.put()
	return dst
}

// VerifyV3 reports whether signatureHex matches, in constant time.
//
// Only lower-case hex, as the SDK sends it, is accepted.
func VerifyV3(secret, stringToSign, signatureHex []byte) bool {
	var buf [v3SignatureLen]byte
	want := AppendV3Signature(buf[:0], secret, stringToSign)
	return subtle.ConstantTimeCompare(want, signatureHex) == 1
}

// V3Request describes one request for client-side signing.
type V3Request struct {
	Method, Host, Path string // Method "" means "GET", as in net/http. Path "" means "/".
	Action, Version    string
	Query              []KV      // API parameters (decoded), sent in the query string
	Body               []byte    // may be nil
	BodySHA256         string    // hex SHA-256 of a body sent as a stream; when set, Body is not hashed
	Date               time.Time // zero means time.Now()
	Nonce              string    // "" means 32 random hex digits
	SecurityToken      string    // optional; adds x-acs-security-token (and x-acs-accesskey-id, as the SDK does)
}

// SignV3 returns the headers the client must send. The names are
// lower-case: x-acs-action, x-acs-version, x-acs-date (UTC
// 2006-01-02T15:04:05Z), x-acs-signature-nonce, x-acs-content-sha256,
// optionally x-acs-accesskey-id and x-acs-security-token, and authorization.
// It signs host and every x-acs-* header, exactly as the darabonba V3 signer
// does. The HTTP layer sets Host itself, and must send r.Host unchanged.
//
// Mirrors DoRequest in darabonba-openapi/v2 (v2.0.9). With a security token
// the SDK adds and signs both x-acs-accesskey-id and x-acs-security-token, and
// so does SignV3. The SDK also signs content-type when it sends a body. SignV3
// does not sign content-type, and the server takes the signed names from
// SignedHeaders, so either way verifies. SignV3 does not modify r.Query. Send
// the query string built by AppendQuery(nil, r.Query).
func SignV3(accessKeyID, secret string, r V3Request) []KV {
	method := r.Method
	if method == "" {
		method = "GET"
	}
	date := r.Date
	if date.IsZero() {
		date = time.Now()
	}
	nonce := r.Nonce
	if nonce == "" {
		var b [16]byte
		_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go ≥ 1.24)
		nonce = hex.EncodeToString(b[:])
	}
	bodyHash := r.BodySHA256
	if bodyHash == "" {
		sum := sha256.Sum256(r.Body)
		bodyHash = hex.EncodeToString(sum[:])
	}

	// Sorted by name, as getCanonicalHeaders sorts them.
	hdrs := make([]KV, 0, 8)
	add := func(name, value string) { hdrs = append(hdrs, KV{[]byte(name), []byte(value)}) }
	add("host", r.Host)
	if r.SecurityToken != "" {
		add("x-acs-accesskey-id", accessKeyID)
	}
	add("x-acs-action", r.Action)
	add("x-acs-content-sha256", bodyHash)
	add("x-acs-date", date.UTC().Format("2006-01-02T15:04:05Z"))
	if r.SecurityToken != "" {
		add("x-acs-security-token", r.SecurityToken)
	}
	add("x-acs-signature-nonce", nonce)
	add("x-acs-version", r.Version)

	var signed []byte
	for i, h := range hdrs {
		if i > 0 {
			signed = append(signed, ';')
		}
		signed = append(signed, h.Key...)
	}
	lookup := func(name []byte) []byte {
		for _, h := range hdrs {
			if bytes.Equal(h.Key, name) {
				return h.Value
			}
		}
		return nil
	}
	query := append([]KV(nil), r.Query...)
	canon := AppendV3CanonicalRequest(nil, []byte(method), []byte(r.Path), query, signed, lookup, []byte(bodyHash))
	sts := AppendV3StringToSign(nil, canon)
	sig := AppendV3Signature(nil, []byte(secret), sts)
	auth := appendV3Authorization(nil, []byte(accessKeyID), signed, sig)

	// Every header but host: the HTTP layer writes Host from r.Host.
	out := make([]KV, 0, len(hdrs))
	for _, name := range []string{"x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256", "x-acs-accesskey-id", "x-acs-security-token"} {
		for _, h := range hdrs {
			if string(h.Key) == name {
				out = append(out, h)
			}
		}
	}
	return append(out, KV{[]byte("authorization"), auth})
}
