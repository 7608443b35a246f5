package crypto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func mustContext(t *testing.T, pairs ...Pair) Context {
	t.Helper()
	c, err := NewContext(pairs)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestContextAADIgnoresKeyOrder(t *testing.T) {
	a := mustContext(t, Pair{"a", "1"}, Pair{"b", "2"}).AppendAAD(nil)
	b := mustContext(t, Pair{"b", "2"}, Pair{"a", "1"}).AppendAAD(nil)
	if !bytes.Equal(a, b) {
		t.Fatalf("AAD differs by key order: %x vs %x", a, b)
	}
}

func TestContextAADIsUnambiguous(t *testing.T) {
	cases := [][2]Context{
		{mustContext(t, Pair{"a", "1&b=2"}), mustContext(t, Pair{"a", "1"}, Pair{"b", "2"})},
		{mustContext(t, Pair{"ab", "c"}), mustContext(t, Pair{"a", "bc"})},
		{mustContext(t, Pair{"a", ""}), Context{}},
		{mustContext(t, Pair{"", "a"}), mustContext(t, Pair{"a", ""})},
	}
	for _, c := range cases {
		if bytes.Equal(c[0].AppendAAD(nil), c[1].AppendAAD(nil)) {
			t.Fatalf("contexts %v and %v share an AAD", c[0].Pairs(), c[1].Pairs())
		}
	}
}

func TestEmptyContextHasNoAAD(t *testing.T) {
	if got := (Context{}).AppendAAD(nil); len(got) != 0 {
		t.Fatalf("empty context AAD = %x, want none", got)
	}
}

// TestContextAADKnownAnswer pins the encoding: changing it would make every
// stored ciphertext undecryptable.
func TestContextAADKnownAnswer(t *testing.T) {
	got := hex.EncodeToString(mustContext(t, Pair{"table", "orders"}, Pair{"app", "demo"}).AppendAAD(nil))
	// Computed independently: sha256(b"raftkms/encryption-context/v1\x00" + b"\x02" +
	// b"\x03app\x04demo" + b"\x05table\x06orders") in Python.
	const want = "d3173974691e1543d5c8bf68dd132937206a31be7e049f244eafbf21e0ca1267"
	if got != want {
		t.Fatalf("AAD = %s, want %s", got, want)
	}
}

func TestNewContextRejectsDuplicateKeys(t *testing.T) {
	if _, err := NewContext([]Pair{{"a", "1"}, {"a", "2"}}); !errors.Is(err, ErrDuplicateContextKey) {
		t.Fatalf("err = %v, want ErrDuplicateContextKey", err)
	}
}
