package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// RootKeySize is the size in bytes of a root key.
const RootKeySize = 32

// Errors returned by the root key and by Wrapper implementations.
var (
	// ErrRootKeySize is returned for root key material that is not RootKeySize bytes.
	ErrRootKeySize = errors.New("crypto: root key must be 32 bytes")
	// ErrUnwrap is returned when wrapped material fails authentication: it was
	// altered, wrapped for another purpose or id, or wrapped by another root key.
	ErrUnwrap = errors.New("crypto: wrapped material failed authentication")
)

// Purpose names what a wrapped secret is. It is bound into the wrapping (as
// AAD and through a purpose-specific subkey), so material wrapped for one
// purpose or one id can never be unwrapped as another.
type Purpose uint8

// Purposes of wrapped material.
const (
	PurposeKeyMaterial     Purpose = 1 // a software key version's material; id = KeyVersionId
	PurposeAccessKeySecret Purpose = 2 // an AccessKey secret; id = AccessKeyId
)

func (p Purpose) label() string {
	switch p {
	case PurposeKeyMaterial:
		return "raftkms/wrap/key-material/v1"
	case PurposeAccessKeySecret:
		return "raftkms/wrap/access-key-secret/v1"
	}
	return ""
}

// Wrapper wraps secrets before they are written to the Raft log and unwraps
// them when a node needs them in memory. RootKey implements it with a key
// file; an HSM-held root key implements it in package hsm.
type Wrapper interface {
	// Wrap seals secret for purpose and id. The result is safe to store
	// anywhere: it reveals nothing about secret but its length.
	Wrap(p Purpose, id string, secret []byte) ([]byte, error)
	// Unwrap reverses Wrap. It returns ErrUnwrap when wrapped was not made by
	// this root key for this purpose and id.
	Unwrap(p Purpose, id string, wrapped []byte) ([]byte, error)
	// Derive returns a 32-byte subkey for a named use (for example the
	// cluster join proof). Different labels give independent keys.
	Derive(label string) ([]byte, error)
}

// wrapFormatV1 is the first byte of every wrapped secret, so the format can
// change (for example to an HSM root key) without ambiguity.
const wrapFormatV1 = 0x01

// RootKey is a root key held in process memory, loaded from a 32-byte file
// or environment. Its material is only reachable through Derive.
type RootKey struct {
	secret [RootKeySize]byte
	aeads  map[Purpose]cipher.AEAD
}

var _ Wrapper = (*RootKey)(nil)

// NewRootKey builds a RootKey from 32 bytes of material. The caller should
// zero its copy of b afterwards.
func NewRootKey(b []byte) (*RootKey, error) {
	if len(b) != RootKeySize {
		return nil, ErrRootKeySize
	}
	r := &RootKey{aeads: make(map[Purpose]cipher.AEAD)}
	copy(r.secret[:], b)
	for _, p := range []Purpose{PurposeKeyMaterial, PurposeAccessKeySecret} {
		sub, err := r.Derive(p.label())
		if err != nil {
			return nil, err
		}
		block, err := aes.NewCipher(sub)
		clear(sub)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		r.aeads[p] = aead
	}
	return r, nil
}

// Derive returns HKDF-SHA256(root key, info = "raftkms/" + label), 32 bytes.
func (r *RootKey) Derive(label string) ([]byte, error) {
	return hkdf.Key(sha256.New, r.secret[:], nil, "raftkms/"+label, 32)
}

// Wrap implements Wrapper: version byte ‖ IV[12] ‖ AES-256-GCM(secret) ‖ tag,
// with AAD = purpose label ‖ 0x00 ‖ id.
func (r *RootKey) Wrap(p Purpose, id string, secret []byte) ([]byte, error) {
	aead, ok := r.aeads[p]
	if !ok {
		return nil, fmt.Errorf("crypto: unknown wrap purpose %d", p)
	}
	out := make([]byte, 1+IVSize, 1+IVSize+len(secret)+TagSize)
	out[0] = wrapFormatV1
	if _, err := rand.Read(out[1 : 1+IVSize]); err != nil {
		return nil, err
	}
	return aead.Seal(out, out[1:1+IVSize], secret, wrapAAD(p, id)), nil
}

// Unwrap implements Wrapper.
func (r *RootKey) Unwrap(p Purpose, id string, wrapped []byte) ([]byte, error) {
	aead, ok := r.aeads[p]
	if !ok {
		return nil, fmt.Errorf("crypto: unknown wrap purpose %d", p)
	}
	if len(wrapped) < 1+IVSize+TagSize || wrapped[0] != wrapFormatV1 {
		return nil, ErrUnwrap
	}
	out, err := aead.Open(nil, wrapped[1:1+IVSize], wrapped[1+IVSize:], wrapAAD(p, id))
	if err != nil {
		return nil, ErrUnwrap
	}
	return out, nil
}

func wrapAAD(p Purpose, id string) []byte {
	l := p.label()
	b := make([]byte, 0, len(l)+1+len(id))
	b = append(b, l...)
	b = append(b, 0)
	return append(b, id...)
}

// LoadRootKeyFile reads a root key file: exactly 32 raw bytes. It refuses a
// file that other users can read, because whoever reads it can unwrap every
// key in the cluster.
func LoadRootKeyFile(path string) (*RootKey, error) {
	b, err := readRootKeyFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	return NewRootKey(b)
}

// readRootKeyFile returns a root key file's bytes, checked as
// LoadRootKeyFile says.
func readRootKeyFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("crypto: root key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("crypto: root key file %s has mode %v: it must not be readable by group or others (chmod 600)", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("crypto: root key file: %w", err)
	}
	if len(b) != RootKeySize {
		clear(b)
		return nil, fmt.Errorf("crypto: root key file %s holds %d bytes: %w", path, len(b), ErrRootKeySize)
	}
	return b, nil
}

// CreateRootKeyFile writes 32 fresh random bytes to path with mode 0600. It
// fails if the file exists, so an existing root key is never overwritten.
func CreateRootKeyFile(path string) error {
	b := make([]byte, RootKeySize)
	defer clear(b)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	return writeRootKeyFile(path, b)
}

// CopyRootKeyFile copies the root key file from (checked as LoadRootKeyFile
// checks it) to to, creating to's directory: a joining node keeps the
// cluster's root key in its data directory. It never overwrites a file.
func CopyRootKeyFile(from, to string) error {
	b, err := readRootKeyFile(from)
	if err != nil {
		return err
	}
	defer clear(b)
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	return writeRootKeyFile(to, b)
}

// writeRootKeyFile writes b to a new file path with mode 0600 and syncs it.
func writeRootKeyFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("crypto: root key file %s already exists: %w", path, err)
		}
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
