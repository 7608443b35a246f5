package crypto

import "errors"

// Sizes of the parts of a symmetric CiphertextBlob.
const (
	VersionIDSize = 36 // KeyVersionId as UUID text
	IVSize        = 12 // AES-GCM nonce
	TagSize       = 16 // AES-GCM tag

	// MinBlobSize is the decoded size of a blob with an empty plaintext.
	MinBlobSize = VersionIDSize + IVSize + TagSize
)

// Errors of blob parsing and opening.
var (
	// ErrMalformedBlob is returned for bytes that cannot be a CiphertextBlob:
	// too short, or a prefix that is not a KeyVersionId.
	ErrMalformedBlob = errors.New("crypto: malformed ciphertext blob")
	// ErrDecrypt is returned when a blob fails authentication: it was altered,
	// or the EncryptionContext differs from the one it was sealed with.
	ErrDecrypt = errors.New("crypto: ciphertext failed authentication")
)

// SplitBlob splits decoded CiphertextBlob bytes
//
//	KeyVersionId[36 ASCII] ‖ IV[12] ‖ AES-GCM ciphertext ‖ tag[16]
//
// into the version id and the sealed part (IV ‖ ciphertext ‖ tag) that
// KeyBackend.Open takes. Both alias b. This is the layout Alibaba's own
// compatibility SDKs build, so blobs interchange with them.
func SplitBlob(b []byte) (versionID, sealed []byte, err error) {
	if len(b) < MinBlobSize || !IsUUID(b[:VersionIDSize]) {
		return nil, nil, ErrMalformedBlob
	}
	return b[:VersionIDSize], b[VersionIDSize:], nil
}

// IsUUID reports whether b is a UUID in canonical text form (8-4-4-4-12
// lower- or upper-case hex digits).
func IsUUID(b []byte) bool {
	if len(b) != VersionIDSize {
		return false
	}
	for i, c := range b {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
