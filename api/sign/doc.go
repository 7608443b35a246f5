// Package sign implements the two request-signature algorithms of the Alibaba
// Cloud POP (RPC style) OpenAPI, as used by the KMS API version 2016-01-20:
//
//   - V1, HMAC-SHA1: the signature travels in the Signature query parameter
//     and covers every other query and form parameter. This mirrors
//     github.com/aliyun/alibaba-cloud-sdk-go sdk/auth/rpc_signature_composer.go
//     (signRpcRequest, buildRpcStringToSign) and, identically,
//     github.com/alibabacloud-go/openapi-util service.go (GetRPCSignature).
//   - V3, ACS3-HMAC-SHA256: the signature travels in the Authorization header
//     and covers the method, path, query, a list of headers and the payload
//     hash. This mirrors github.com/alibabacloud-go/openapi-util service.go
//     (GetAuthorization, getCanonicalQueryString, getCanonicalHeaders) as
//     driven by github.com/alibabacloud-go/darabonba-openapi/v2 client.go
//     (DoRequest).
//
// The server verifies on its hot path, so every builder appends into a caller
// buffer and the verifiers do not allocate in steady state. The HMACs are
// computed by a small RFC 2104 implementation over pooled hash states,
// because crypto/hmac.New costs five allocations per call. The tests check it
// against crypto/hmac.
//
// The behaviour follows the SDK code, including corner cases that the prose
// documentation leaves out:
//
//   - Percent-encoding (both versions, values and V1 keys) is url.QueryEscape
//     followed by "+"→"%20", "*"→"%2A", "%7E"→"~". Go's QueryEscape already
//     escapes "*" and never escapes "~", so this is exactly RFC 3986: the
//     unreserved bytes stay as they are and every other byte becomes %XX.
//   - V1 sorts by the raw (decoded) key, as url.Values.Encode does, not by
//     the encoded key. The two orders differ, for instance, for "a-" and
//     "a/".
//   - V3 does not percent-encode query keys, only values. The three
//     replacements above then run over the whole string, so within a key
//     "+" becomes "%20", "*" becomes "%2A" and "%7E" becomes "~", and every
//     leading "&" of the result is trimmed (strings.TrimLeft).
//   - V3 header values are trimmed with strings.TrimSpace, which also strips
//     Unicode white space.
//   - The V3 canonical URI is the unescaped path with the same three
//     replacements. An empty path means "/".
package sign
