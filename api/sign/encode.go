package sign

import (
	"bytes"
	"slices"
)

// KV is one decoded parameter or header. Slices may alias caller buffers.
type KV struct{ Key, Value []byte }

const upperHex = "0123456789ABCDEF"

// unreserved marks the RFC 3986 unreserved bytes: A-Z a-z 0-9 - _ . ~
var unreserved = func() (t [256]bool) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['-'], t['_'], t['.'], t['~'] = true, true, true, true
	return t
}()

// AppendPercentEncode appends the POP percent-encoding of s: RFC 3986
// unreserved bytes (A-Z a-z 0-9 - _ . ~) verbatim, every other byte as %XX
// uppercase hex. (Equivalent to url.QueryEscape then "+"→"%20", "*"→"%2A",
// "%7E"→"~".)
//
// It mirrors openapi-util GetEncodeParam and the per-value encoding inside
// the SDKs' V1 string to sign and V3 canonical query string.
func AppendPercentEncode(dst, s []byte) []byte {
	n := 0
	for _, c := range s {
		if !unreserved[c] {
			n++
		}
	}
	if n == 0 {
		return append(dst, s...)
	}
	dst = slices.Grow(dst, len(s)+2*n)
	for _, c := range s {
		if unreserved[c] {
			dst = append(dst, c)
		} else {
			dst = append(dst, '%', upperHex[c>>4], upperHex[c&15])
		}
	}
	return dst
}

// appendPercentEncodeTwice appends pct(pct(s)) without an intermediate
// buffer: unreserved bytes verbatim, every other byte as %25XX.
func appendPercentEncodeTwice(dst, s []byte) []byte {
	for _, c := range s {
		if unreserved[c] {
			dst = append(dst, c)
		} else {
			dst = append(dst, '%', '2', '5', upperHex[c>>4], upperHex[c&15])
		}
	}
	return dst
}

// appendPOPReplace appends s after the SDK's three string replacements, run
// in order over unescaped text: "+"→"%20", "*"→"%2A", "%7E"→"~". None of the
// replacements can create a match for a later one, so one left-to-right pass
// gives the same result. The V3 canonical URI and the V3 canonical query keys
// use it.
func appendPOPReplace(dst, s []byte) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			dst = append(dst, "%20"...)
		case c == '*':
			dst = append(dst, "%2A"...)
		case c == '%' && i+2 < len(s) && s[i+1] == '7' && s[i+2] == 'E':
			dst = append(dst, '~')
			i += 2
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// compareKV orders by key, then by value, byte-wise.
func compareKV(a, b KV) int {
	if c := bytes.Compare(a.Key, b.Key); c != 0 {
		return c
	}
	return bytes.Compare(a.Value, b.Value)
}

// sortKVs sorts params by raw key, and by value when keys are equal. The
// SDKs sort unique raw keys: url.Values.Encode for V1, the Sorter (a
// bytes.Compare on keys) in openapi-util for V3.
func sortKVs(params []KV) {
	if !slices.IsSortedFunc(params, compareKV) {
		slices.SortFunc(params, compareKV)
	}
}

// AppendQuery appends the wire query string for params (pct(k)=pct(v) joined
// by "&", sorted), for clients. It may sort params in place.
//
// The SDKs send url.Values.Encode, which writes a space as "+". This function
// writes "%20" instead, which every form decoder reads back the same way.
func AppendQuery(dst []byte, params []KV) []byte {
	sortKVs(params)
	for i, kv := range params {
		if i > 0 {
			dst = append(dst, '&')
		}
		dst = AppendPercentEncode(dst, kv.Key)
		dst = append(dst, '=')
		dst = AppendPercentEncode(dst, kv.Value)
	}
	return dst
}
