//go:build !race

// The race detector makes sync.Pool drop items at random, so the allocation
// counts are only checked without it.

package sign

import "testing"

func TestVerifyAllocs(t *testing.T) {
	v3Query := parseQuery(t, v3EncryptQuery)
	v3Header := headerFunc(v3EncryptHeaders)
	v1Params := parseQuery(t, v1CreateKeyQuery)
	v1Sig := getKV(v1Params, "Signature")
	// Inputs are heap slices, as in the server: a []byte(constant) passed to
	// the hash would escape and count as an allocation of the test.
	auth, secret := []byte(v3EncryptAuth), []byte(testSecret)
	method, path, payload := []byte("POST"), []byte("/"), []byte(emptySHA256)
	buf := make([]byte, 0, 1024)
	sts := make([]byte, 0, 1024)
	tests := []struct {
		name string
		fn   func()
	}{
		{"V3", func() {
			a, err := ParseV3Authorization(auth)
			if err != nil {
				t.Fatal(err)
			}
			buf = AppendV3CanonicalRequest(buf[:0], method, path, v3Query, a.SignedHeaders, v3Header, payload)
			sts = AppendV3StringToSign(sts[:0], buf)
			if !VerifyV3(secret, sts, a.Signature) {
				t.Fatal("VerifyV3: got false, want true")
			}
		}},
		{"V1", func() {
			sts = AppendV1StringToSign(sts[:0], method, v1Params)
			if !VerifyV1(secret, sts, v1Sig) {
				t.Fatal("VerifyV1: got false, want true")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := testing.AllocsPerRun(100, tt.fn); got != 0 {
				t.Errorf("got %v allocs/op, want 0", got)
			}
		})
	}
}
