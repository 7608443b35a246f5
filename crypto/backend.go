package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"slices"
)

// KeyBackend seals and opens data with the material of one key version. The
// software implementation is SoftwareKey; HSM-held versions implement it in
// package hsm, where the material never leaves the device.
type KeyBackend interface {
	// Seal appends IV[12] ‖ AES-GCM ciphertext ‖ tag[16] of plaintext, bound
	// to aad, to dst. The IV is random.
	Seal(dst, plaintext, aad []byte) ([]byte, error)
	// Open takes IV ‖ ciphertext ‖ tag as produced by Seal and appends the
	// plaintext to dst. It returns ErrDecrypt when authentication fails.
	Open(dst, sealed, aad []byte) ([]byte, error)
}

// ErrKeySize is returned for key material of a size AES does not take.
var ErrKeySize = errors.New("crypto: key material must be 16, 24 or 32 bytes")

// SoftwareKey is a KeyBackend over AES-GCM material held in process memory.
type SoftwareKey struct {
	aead cipher.AEAD
}

var _ KeyBackend = (*SoftwareKey)(nil)

// NewSoftwareKey builds a SoftwareKey. It does not keep material: the caller
// zeroes it afterwards (the expanded AES key schedule stays inside
// crypto/aes, where Go gives no way to zero it).
func NewSoftwareKey(material []byte) (*SoftwareKey, error) {
	switch len(material) {
	case 16, 24, 32:
	default:
		return nil, ErrKeySize
	}
	block, err := aes.NewCipher(material)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &SoftwareKey{aead: aead}, nil
}

// Seal implements KeyBackend.
func (k *SoftwareKey) Seal(dst, plaintext, aad []byte) ([]byte, error) {
	dst = slices.Grow(dst, IVSize+len(plaintext)+TagSize)
	n := len(dst)
	dst = dst[:n+IVSize]
	if _, err := rand.Read(dst[n:]); err != nil {
		return nil, err
	}
	return k.aead.Seal(dst, dst[n:n+IVSize], plaintext, aad), nil
}

// Open implements KeyBackend.
func (k *SoftwareKey) Open(dst, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < IVSize+TagSize {
		return nil, ErrDecrypt
	}
	out, err := k.aead.Open(dst, sealed[:IVSize], sealed[IVSize:], aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return out, nil
}
