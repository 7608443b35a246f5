package crypto

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"slices"
)

// ErrDuplicateContextKey is returned by NewContext when a key appears twice.
var ErrDuplicateContextKey = errors.New("crypto: duplicate EncryptionContext key")

// Pair is one EncryptionContext entry.
type Pair struct{ Key, Value string }

// Context is an EncryptionContext: a map of strings to strings that is bound
// to a ciphertext as AAD and must be supplied again, as an equivalent map, to
// decrypt. It is never stored in the blob. The zero Context is empty.
type Context struct {
	pairs []Pair // sorted by Key, keys unique
}

// NewContext builds a Context from pairs in any order. It takes ownership of
// pairs and rejects duplicate keys.
func NewContext(pairs []Pair) (Context, error) {
	slices.SortFunc(pairs, func(a, b Pair) int { return cmp.Compare(a.Key, b.Key) })
	for i := 1; i < len(pairs); i++ {
		if pairs[i].Key == pairs[i-1].Key {
			return Context{}, ErrDuplicateContextKey
		}
	}
	return Context{pairs: pairs}, nil
}

// Len returns the number of entries.
func (c Context) Len() int { return len(c.pairs) }

// Pairs returns the entries sorted by key. The caller must not modify them.
func (c Context) Pairs() []Pair { return c.pairs }

// contextDomain separates this encoding from every other use of SHA-256.
const contextDomain = "raftkms/encryption-context/v1\x00"

// AppendAAD appends the AAD for the context: nothing for an empty context,
// else SHA-256 over an unambiguous encoding
//
//	"raftkms/encryption-context/v1\0" ‖ uvarint(n) ‖ for each entry sorted by key:
//	    uvarint(len(key)) ‖ key ‖ uvarint(len(value)) ‖ value
//
// Length prefixes make the encoding injective: {"a":"1&b=2"} and
// {"a":"1","b":"2"} give different AAD, unlike the k1=v1&k2=v2 joining some
// SDKs use.
func (c Context) AppendAAD(dst []byte) []byte {
	if len(c.pairs) == 0 {
		return dst
	}
	// Encode after dst's bytes, hash, then put the digest in their place:
	// no hash object, no allocation when dst has room.
	n := len(dst)
	b := append(dst, contextDomain...)
	b = binary.AppendUvarint(b, uint64(len(c.pairs)))
	for _, p := range c.pairs {
		b = binary.AppendUvarint(b, uint64(len(p.Key)))
		b = append(b, p.Key...)
		b = binary.AppendUvarint(b, uint64(len(p.Value)))
		b = append(b, p.Value...)
	}
	sum := sha256.Sum256(b[n:])
	return append(b[:n], sum[:]...)
}
