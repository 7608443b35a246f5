package crypto

import (
	"crypto/rand"
	"errors"
	"math/big"
	"strings"

	"github.com/google/uuid"
)

// Random returns n bytes from the system CSPRNG.
func Random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails since Go 1.24: it crashes the process instead
	return b
}

// Fill fills b from the system CSPRNG.
func Fill(b []byte) { rand.Read(b) }

// NewUUID returns a random (version 4) UUID in canonical lower-case text form.
// Key version ids, request ids and event ids use it.
func NewUUID() string { return uuid.Must(uuid.NewRandom()).String() }

const (
	lowerAlnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	upperAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	base62     = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	digits     = "0123456789"
)

// randomString returns n characters drawn uniformly from alphabet.
func randomString(n int, alphabet string) string {
	var sb strings.Builder
	sb.Grow(n)
	max := big.NewInt(int64(len(alphabet)))
	for range n {
		i, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(err) // crypto/rand does not fail
		}
		sb.WriteByte(alphabet[i.Int64()])
	}
	return sb.String()
}

// NewKeyID returns a key id in the KMS 3.0 form "key-" + 20 random lower-case
// letters and digits (103 bits).
func NewKeyID() string { return "key-" + randomString(20, lowerAlnum) }

// NewAccessKeyID returns an AccessKeyId: "RK" + 22 upper-case letters and
// digits. It identifies a credential; it is not secret.
func NewAccessKeyID() string { return "RK" + randomString(22, upperAlnum) }

// NewAccessKeySecret returns an AccessKey secret: 30 base62 characters
// (178 bits).
func NewAccessKeySecret() string { return randomString(30, base62) }

// NewAccountID returns a 16-digit account id (Alibaba Cloud UIDs have this form).
func NewAccountID() string { return randomString(1, "123456789") + randomString(15, digits) }

// Character classes of GetRandomPassword.
const (
	PasswordLower       = "abcdefghijklmnopqrstuvwxyz"
	PasswordUpper       = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	PasswordDigits      = "0123456789"
	PasswordPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
)

// ErrPasswordClasses is returned when exclusions leave no usable character,
// or leave an included class empty while every class is required.
var ErrPasswordClasses = errors.New("crypto: no characters left to build the password from")

// RandomPassword returns a password of length characters drawn uniformly
// from the given classes minus the characters in exclude. With requireEach,
// it holds at least one character of every class: passwords are drawn again
// until one does (rejection sampling keeps the result uniform over such
// passwords; with length ≥ 8 a draw fails rarely).
func RandomPassword(length int, classes []string, exclude string, requireEach bool) (string, error) {
	var all strings.Builder
	var usable []string
	for _, c := range classes {
		var kept strings.Builder
		for _, r := range c {
			if !strings.ContainsRune(exclude, r) {
				kept.WriteRune(r)
			}
		}
		if kept.Len() == 0 {
			if requireEach {
				return "", ErrPasswordClasses
			}
			continue
		}
		usable = append(usable, kept.String())
		all.WriteString(kept.String())
	}
	if all.Len() == 0 || (requireEach && len(usable) > length) {
		return "", ErrPasswordClasses
	}
	for range 100000 {
		p := randomString(length, all.String())
		if !requireEach || containsEach(p, usable) {
			return p, nil
		}
	}
	return "", ErrPasswordClasses
}

func containsEach(p string, classes []string) bool {
	for _, c := range classes {
		if !strings.ContainsAny(p, c) {
			return false
		}
	}
	return true
}
