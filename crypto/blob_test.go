package crypto

import (
	"bytes"
	"errors"
	"testing"
)

const testVersionID = "86a9efd9-3d16-4894-bd4f-1fc43f3f2abf"

func sealBlob(t testing.TB, k KeyBackend, pt, aad []byte) []byte {
	t.Helper()
	b, err := k.Seal([]byte(testVersionID), pt, aad)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBlobRoundTrip(t *testing.T) {
	k, err := NewSoftwareKey(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	for _, pt := range []string{"", "x", "hello world+*~", string(bytes.Repeat([]byte{0xff}, 6144))} {
		blob := sealBlob(t, k, []byte(pt), nil)
		if len(blob) != MinBlobSize+len(pt) {
			t.Fatalf("blob of %d-byte plaintext has %d bytes, want %d", len(pt), len(blob), MinBlobSize+len(pt))
		}
		v, sealed, err := SplitBlob(blob)
		if err != nil || string(v) != testVersionID {
			t.Fatalf("SplitBlob = %q, %v", v, err)
		}
		got, err := k.Open(nil, sealed, nil)
		if err != nil || string(got) != pt {
			t.Fatalf("Open = %q, %v; want %q", got, err, pt)
		}
	}
}

func TestSplitBlobRejectsMalformed(t *testing.T) {
	good := append([]byte(testVersionID), make([]byte, IVSize+TagSize)...)
	cases := map[string][]byte{
		"empty":           nil,
		"one byte short":  good[:len(good)-1],
		"not a uuid":      append([]byte("86a9efd9x3d16-4894-bd4f-1fc43f3f2abf"), make([]byte, 28)...),
		"non-hex in uuid": append([]byte("86a9efd9-3d16-4894-bd4f-1fc43f3f2abg"), make([]byte, 28)...),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, _, err := SplitBlob(b); !errors.Is(err, ErrMalformedBlob) {
				t.Fatalf("SplitBlob err = %v, want ErrMalformedBlob", err)
			}
		})
	}
	if _, _, err := SplitBlob(good); err != nil {
		t.Fatalf("SplitBlob(minimal blob) = %v", err)
	}
}

func TestOpenDetectsEveryBitFlipOfCiphertextAndAAD(t *testing.T) {
	k, _ := NewSoftwareKey(bytes.Repeat([]byte{2}, 32))
	aad := Context{pairs: []Pair{{"table", "orders"}}}.AppendAAD(nil)
	blob := sealBlob(t, k, []byte("data key text"), aad)
	_, sealed, _ := SplitBlob(blob)
	for i := range sealed {
		m := bytes.Clone(sealed)
		m[i] ^= 0x80
		if _, err := k.Open(nil, m, aad); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("Open accepted a flipped byte %d: err = %v", i, err)
		}
	}
	for i := range aad {
		m := bytes.Clone(aad)
		m[i] ^= 1
		if _, err := k.Open(nil, sealed, m); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("Open accepted a flipped AAD byte %d", i)
		}
	}
	if _, err := k.Open(nil, sealed, nil); !errors.Is(err, ErrDecrypt) {
		t.Fatal("Open accepted a missing AAD")
	}
	other, _ := NewSoftwareKey(bytes.Repeat([]byte{3}, 32))
	if _, err := other.Open(nil, sealed, aad); !errors.Is(err, ErrDecrypt) {
		t.Fatal("Open accepted another key")
	}
}

func TestNewSoftwareKeyRejectsBadSizes(t *testing.T) {
	for _, n := range []int{0, 15, 20, 33} {
		if _, err := NewSoftwareKey(make([]byte, n)); !errors.Is(err, ErrKeySize) {
			t.Fatalf("NewSoftwareKey(%d bytes) err = %v, want ErrKeySize", n, err)
		}
	}
}

func FuzzSplitBlob(f *testing.F) {
	k, _ := NewSoftwareKey(bytes.Repeat([]byte{4}, 32))
	f.Add(sealBlob(f, k, []byte("seed"), nil))
	f.Add([]byte(testVersionID))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, sealed, err := SplitBlob(b)
		if err != nil {
			return
		}
		if len(v) != VersionIDSize || len(v)+len(sealed) != len(b) || !IsUUID(v) {
			t.Fatalf("SplitBlob(%x) = %q, %d bytes", b, v, len(sealed))
		}
		// Opening arbitrary bytes must fail cleanly, never panic.
		k.Open(nil, sealed, nil)
	})
}
