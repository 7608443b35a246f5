package fsm

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// The trees order packed ids as the ids themselves, or a lookup would miss
// a key that is there — also ids with zero bytes, ids that are prefixes of
// others, and search ids too long to store, which must equal no stored id
// and sort where the full id would.
func TestPackedIDsOrderAsTheIDs(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := "\x00\x01ab-kz09\xff"
	gen := func() string {
		var b strings.Builder
		for range r.IntN(46) {
			b.WriteByte(alphabet[r.IntN(len(alphabet))])
		}
		return b.String()
	}
	for range 200000 {
		a, b := gen(), gen()
		if len(a) <= maxKeyIDLen && len(b) > maxKeyIDLen && strings.HasPrefix(b, a[:min(len(a), 4)]) {
			a = b[:r.IntN(maxKeyIDLen+1)] // often a stored id sharing a long id's prefix
		}
		ka, kb := searchKey("acct", a), searchKey("acct", b)
		va, vb := searchVersion(a), searchVersion(b)
		storable := func(s string, n int) bool { return len(s) <= n }
		// Two ids too long to store may tie; every other pair orders as the strings.
		if storable(a, maxKeyIDLen) || storable(b, maxKeyIDLen) {
			if keyLess(ka, kb) != (a < b) || keyLess(kb, ka) != (b < a) {
				t.Fatalf("key order of %q and %q differs from the ids'", a, b)
			}
		}
		if storable(a, maxVersionIDLen) || storable(b, maxVersionIDLen) {
			if versionLess(va, vb) != (a < b) || versionLess(vb, va) != (b < a) {
				t.Fatalf("version order of %q and %q differs from the ids'", a, b)
			}
		}
		if storable(a, maxKeyIDLen) && ka.idString() != a || storable(a, maxVersionIDLen) && va.idString() != a {
			t.Fatalf("%q unpacks as %q and %q", a, ka.idString(), va.idString())
		}
	}
}

// The tree items hold no pointer but a key's account, so the collector
// scans a million keys' items without looking up a span for each record:
// a field holding a pointer (a record as a string) would bring that back.
func TestKeyStoreItemsHoldNoPointersButTheAccount(t *testing.T) {
	for _, typ := range []reflect.Type{reflect.TypeFor[keyItem](), reflect.TypeFor[versionItem]()} {
		for f := range typ.Fields() {
			switch f.Type.Kind() {
			case reflect.Uint8, reflect.Uint64, reflect.Array:
				if f.Type.Kind() == reflect.Array && f.Type.Elem().Kind() != reflect.Uint64 {
					t.Errorf("%s.%s is %s", typ, f.Name, f.Type)
				}
			default:
				if typ != reflect.TypeFor[keyItem]() || f.Name != "account" {
					t.Errorf("%s.%s is %s: the collector would scan it", typ, f.Name, f.Type)
				}
			}
		}
	}
}

// The state machine refuses ids its key store cannot hold, the same way on
// every node, and stores the longest it can.
func TestKeyIDsBeyondTheStoreLimitAreRefused(t *testing.T) {
	h := newHarness(t)
	long := func(p string, n int) string { return p + strings.Repeat("x", n-len(p)) }
	for _, c := range []struct {
		key, version string
		err          error
	}{
		{long("key-", maxKeyIDLen+1), "v-1", ErrInvalidCommand},
		{"key-1", long("v-", maxVersionIDLen+1), ErrInvalidCommand},
		{long("key-", maxKeyIDLen), long("v-", maxVersionIDLen), nil},
	} {
		r := h.apply(&CreateKey{Account: acct, ID: c.key, VersionID: c.version, Material: []byte{1}})
		if !errors.Is(r.Err, c.err) {
			t.Fatalf("CreateKey %q/%q: %v, want %v", c.key, c.version, r.Err, c.err)
		}
		if k, ok := h.f.State().Key(acct, c.key); ok != (c.err == nil) || ok && k.Primary().ID != c.version {
			t.Fatalf("key %q stored: %v", c.key, ok)
		}
	}
	r := h.apply(&RotateKey{Account: acct, KeyID: long("key-", maxKeyIDLen), VersionID: long("v2-", maxVersionIDLen+1), Material: []byte{1}})
	if !errors.Is(r.Err, ErrInvalidCommand) {
		t.Fatalf("RotateKey to a version id too long: %v", r.Err)
	}
}

// idString returns the id an item holds, for tests.
func (it keyItem) idString() string     { return unpackID(it.id[:], it.n) }
func (it versionItem) idString() string { return unpackID(it.id[:], it.n) }

func unpackID(w []uint64, n uint8) string {
	var b [maxVersionIDLen]byte
	for i, x := range w {
		binary.BigEndian.PutUint64(b[8*i:], x)
	}
	return string(b[:min(int(n), 8*len(w))])
}
