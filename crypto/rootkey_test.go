package crypto

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func testRootKey(t testing.TB, fill byte) *RootKey {
	t.Helper()
	r, err := NewRootKey(bytes.Repeat([]byte{fill}, RootKeySize))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestWrapRoundTrip(t *testing.T) {
	r := testRootKey(t, 7)
	secret := []byte("0123456789abcdef0123456789abcdef")
	w, err := r.Wrap(PurposeKeyMaterial, "v1", secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(w, secret) {
		t.Fatalf("wrapped material contains the secret")
	}
	got, err := r.Unwrap(PurposeKeyMaterial, "v1", w)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Unwrap = %q, %v; want %q, nil", got, err, secret)
	}
}

func TestUnwrapRefusesOtherPurposeIDOrRootKey(t *testing.T) {
	r := testRootKey(t, 7)
	w, err := r.Wrap(PurposeKeyMaterial, "v1", []byte("secret material"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		key  *RootKey
		p    Purpose
		id   string
	}{
		{"other purpose", r, PurposeAccessKeySecret, "v1"},
		{"other id", r, PurposeKeyMaterial, "v2"},
		{"other root key", testRootKey(t, 8), PurposeKeyMaterial, "v1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := c.key.Unwrap(c.p, c.id, w); !errors.Is(err, ErrUnwrap) {
				t.Fatalf("Unwrap err = %v, want ErrUnwrap", err)
			}
		})
	}
}

func TestUnwrapDetectsEveryBitFlip(t *testing.T) {
	r := testRootKey(t, 7)
	w, err := r.Wrap(PurposeAccessKeySecret, "AK", []byte("s3cr3t"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range w {
		for bit := range 8 {
			m := bytes.Clone(w)
			m[i] ^= 1 << bit
			if _, err := r.Unwrap(PurposeAccessKeySecret, "AK", m); err == nil {
				t.Fatalf("Unwrap accepted a flip of bit %d of byte %d", bit, i)
			}
		}
	}
	if _, err := r.Unwrap(PurposeAccessKeySecret, "AK", w[:len(w)-1]); err == nil {
		t.Fatal("Unwrap accepted truncated material")
	}
}

func TestDeriveGivesIndependentLabels(t *testing.T) {
	r := testRootKey(t, 1)
	a, _ := r.Derive("cluster-join")
	b, _ := r.Derive("snapshot")
	a2, _ := r.Derive("cluster-join")
	if bytes.Equal(a, b) || !bytes.Equal(a, a2) || len(a) != 32 {
		t.Fatalf("Derive: a=%x b=%x a2=%x", a, b, a2)
	}
}

func TestRootKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "root.key")
	if err := CreateRootKeyFile(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != RootKeySize {
		t.Fatalf("root key file: %v mode=%v size=%d, want 0600 and 32 bytes", err, fi.Mode().Perm(), fi.Size())
	}
	if err := CreateRootKeyFile(path); err == nil {
		t.Fatal("CreateRootKeyFile overwrote an existing root key")
	}
	if _, err := LoadRootKeyFile(path); err != nil {
		t.Fatalf("LoadRootKeyFile: %v", err)
	}
	os.Chmod(path, 0o644)
	if _, err := LoadRootKeyFile(path); err == nil {
		t.Fatal("LoadRootKeyFile accepted a world-readable file")
	}
	short := filepath.Join(dir, "short.key")
	os.WriteFile(short, []byte("too short"), 0o600)
	if _, err := LoadRootKeyFile(short); !errors.Is(err, ErrRootKeySize) {
		t.Fatalf("LoadRootKeyFile(short) err = %v, want ErrRootKeySize", err)
	}
}

func TestCopyRootKeyFileKeepsTheKeyAndItsChecks(t *testing.T) {
	dir := t.TempDir()
	from := filepath.Join(dir, "root.key")
	if err := CreateRootKeyFile(from); err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(dir, "node2", "root.key")
	if err := CopyRootKeyFile(from, to); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(from)
	b, _ := os.ReadFile(to)
	if fi, err := os.Stat(to); err != nil || fi.Mode().Perm() != 0o600 || !bytes.Equal(a, b) {
		t.Fatalf("the copy: %v, same bytes %v", err, bytes.Equal(a, b))
	}
	if err := CopyRootKeyFile(from, to); err == nil {
		t.Fatal("CopyRootKeyFile overwrote an existing root key")
	}
	os.Chmod(from, 0o644)
	if err := CopyRootKeyFile(from, filepath.Join(dir, "node3", "root.key")); err == nil {
		t.Fatal("CopyRootKeyFile copied a world-readable root key")
	}
}
