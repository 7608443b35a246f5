package sign

import (
	"crypto/subtle"
	"encoding/base64"
)

// v1SignatureLen is the length of base64(HMAC-SHA1), 20 bytes encoded.
const v1SignatureLen = 28

// v1KeySuffix is appended to the secret to form the V1 HMAC key. It is a
// package variable because a literal would escape into the hash and allocate.
var v1KeySuffix = []byte{'&'}

// AppendV1StringToSign appends  METHOD + "&" + "%2F" + "&" + pct(canon)  where
// canon = join("&", pct(k)+"="+pct(v)) over params sorted by key (byte order;
// ties by value), skipping the parameter named "Signature". It may sort params
// in place.
//
// params are the decoded query and form parameters. The SDKs never send a
// key twice. If params holds a key twice, every occurrence is signed, ordered
// by value. Empty values such as "SignatureType=" are signed like any other.
//
// Mirrors buildRpcStringToSign in alibaba-cloud-sdk-go
// sdk/auth/rpc_signature_composer.go and in openapi-util service.go:
// url.Values.Encode (sorted by raw key), the "+"/"*"/"%7E" replacements, then
// url.QueryEscape over the whole string. That encodes the canonical string
// twice, so "%" becomes "%25", "=" becomes "%3D" and "&" becomes "%26".
func AppendV1StringToSign(dst, method []byte, params []KV) []byte {
	sortKVs(params)
	dst = append(dst, method...)
	dst = append(dst, "&%2F&"...)
	first := true
	for _, kv := range params {
		if string(kv.Key) == "Signature" {
			continue
		}
		if !first {
			dst = append(dst, "%26"...)
		}
		first = false
		dst = appendPercentEncodeTwice(dst, kv.Key)
		dst = append(dst, "%3D"...)
		dst = appendPercentEncodeTwice(dst, kv.Value)
	}
	return dst
}

// AppendV1Signature appends base64(HMAC-SHA1(key = secret+"&", stringToSign)).
//
// Mirrors utils.ShaHmac1 in alibaba-cloud-sdk-go and sign/shaHmac1 in
// openapi-util, which use the standard base64 alphabet with padding.
func AppendV1Signature(dst, secret, stringToSign []byte) []byte {
	s := getHMACState()
	mac := s.sum(s.out[:0], s.sha1Hash(), secret, v1KeySuffix, stringToSign)
	dst = base64.StdEncoding.AppendEncode(dst, mac)
	s.put()
	return dst
}

// VerifyV1 reports whether signature (the base64 text the client sent)
// matches, comparing in constant time.
//
// The comparison is on the base64 text, so a signature has exactly one
// accepted spelling: the SDK's standard, padded encoding.
func VerifyV1(secret, stringToSign, signature []byte) bool {
	var buf [v1SignatureLen]byte
	want := AppendV1Signature(buf[:0], secret, stringToSign)
	return subtle.ConstantTimeCompare(want, signature) == 1
}
