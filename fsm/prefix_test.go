package fsm

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// The trees order by prefix8 first: it must never disagree with the
// strings' own order, or a lookup would miss a key that is there.
func TestIDPrefixOrdersAsTheIDs(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := "\x00\x01ab-kz09\xff"
	gen := func() string {
		var b strings.Builder
		for range r.IntN(12) {
			b.WriteByte(alphabet[r.IntN(len(alphabet))])
		}
		return b.String()
	}
	for range 200000 {
		a, b := gen(), gen()
		pa, pb := prefix8(a), prefix8(b)
		if (pa < pb && a >= b) || (a < b && pa > pb) {
			t.Fatalf("prefix8 orders %q (%x) and %q (%x) against the strings", a, pa, b, pb)
		}
		ka, kb := searchKey("acct", a), searchKey("acct", b)
		if keyLess(ka, kb) != (a < b) || versionLess(searchVersion(a), searchVersion(b)) != (a < b) {
			t.Fatalf("tree order of %q and %q differs from the ids'", a, b)
		}
	}
}
