package trail

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// ---- helpers shared by the package's tests ----

var eventNames = [...]string{"Encrypt", "Decrypt", "GenerateDataKey"}

// fullEvent returns an event with every field set and several params,
// different for every i, including characters JSON escapes.
func fullEvent(i uint64) Event {
	o := Outcome(1 + i%3)
	e := Event{
		EventID:       fmt.Sprintf("9f0c-%06d", i),
		Time:          1_700_000_000_123_456_789 + int64(i)*1_001,
		EventName:     eventNames[i%uint64(len(eventNames))],
		Account:       "1234567890123456",
		PrincipalType: "RamUser",
		PrincipalName: "alice@example",
		AccessKeyID:   "LTAI5tEXAMPLE",
		SourceIP:      "192.0.2.7",
		UserAgent:     "kmsctl/1.0 (linux; amd64) \"quoted\"",
		RequestID:     fmt.Sprintf("req-%d", i),
		Node:          "node-2",
		KeyID:         "key-hzz6a3b1c2d3e4f5",
		KeyVersionID:  fmt.Sprintf("ver-%d", i%7),
		ResourceARN:   "acs:kms:cn-hangzhou:1234567890123456:key/key-hzz6a3b1c2d3e4f5",
		Outcome:       o,
		Params: SortParams([]Param{
			{"KeyId", "key-hzz6a3b1c2d3e4f5"},
			{"EncryptionContext", `{"tenant":"<a&b>","n":` + fmt.Sprint(i) + `}`},
			{"Algorithm", "AES_256"},
			{"Note", "ключ ✓ \\ \u2028 end"},
			{"Empty", ""},
		}),
	}
	if o != Success {
		e.ErrorCode = "Forbidden.KeyNotFound"
	}
	return e
}

func encode(e Event) []byte { return AppendEvent(nil, &e) }

// commitTimeOf is the commit time the helpers give record seq.
func commitTimeOf(seq uint64) int64 { return 1_700_000_100_000_000_000 + int64(seq)*1_000_000_007 }

// sealRange seals the events mk gives for seqs from..to into a chain whose
// first record links to prev.
func sealRange(t testing.TB, prev [32]byte, from, to uint64, mk func(uint64) Event) []Sealed {
	t.Helper()
	var out []Sealed
	for seq := from; seq <= to; seq++ {
		s, err := Seal(seq, commitTimeOf(seq), prev, encode(mk(seq)))
		if err != nil {
			t.Fatalf("Seal(%d): %v", seq, err)
		}
		out = append(out, s)
		prev = s.Hash
	}
	return out
}

// sealChain seals records 1..n of a trail of full events.
func sealChain(t testing.TB, n int) []Sealed {
	t.Helper()
	return sealRange(t, [32]byte{}, 1, uint64(n), fullEvent)
}

// eventsEqual compares events, taking nil and empty params as equal.
func eventsEqual(a, b Event) bool {
	type scalars struct {
		EventID                                            string
		Time                                               int64
		EventName                                          string
		Account, PrincipalType, PrincipalName, AccessKeyID string
		SourceIP, UserAgent, RequestID, Node               string
		KeyID, KeyVersionID, ResourceARN                   string
		Outcome                                            Outcome
		ErrorCode                                          string
	}
	of := func(e Event) scalars {
		return scalars{e.EventID, e.Time, e.EventName, e.Account, e.PrincipalType, e.PrincipalName, e.AccessKeyID,
			e.SourceIP, e.UserAgent, e.RequestID, e.Node, e.KeyID, e.KeyVersionID, e.ResourceARN, e.Outcome, e.ErrorCode}
	}
	return of(a) == of(b) && slices.Equal(a.Params, b.Params)
}

func recordsEqual(a, b Record) bool {
	return a.Seq == b.Seq && a.CommitTime == b.CommitTime && a.PrevHash == b.PrevHash && a.Hash == b.Hash &&
		eventsEqual(a.Event, b.Event)
}

func sealedEqual(a, b Sealed) bool {
	return a.Seq == b.Seq && a.CommitTime == b.CommitTime && a.Hash == b.Hash && bytes.Equal(a.Content, b.Content)
}

// ---- record.go ----

func TestAppendEventDecodeEventRoundTrip(t *testing.T) {
	many := make([]Param, MaxParams)
	for i := range many {
		many[i] = Param{fmt.Sprintf("p%02d", i), strings.Repeat("v", i)}
	}
	tests := []struct {
		name string
		e    Event
	}{
		{"every field and several params", fullEvent(1)},
		{"denied with an error code", fullEvent(2)},
		{"failed", fullEvent(3)},
		{"only the outcome", Event{Outcome: Failed}},
		{"negative time", Event{EventID: "x", Time: -1, Outcome: Success}},
		{"largest time", Event{Time: math.MaxInt64, Outcome: Success}},
		{"smallest time", Event{Time: math.MinInt64, Outcome: Denied}},
		{"unicode everywhere", Event{EventID: "日本", EventName: "Ω", PrincipalName: "émile", Outcome: Success,
			Params: []Param{{"ä", "ö"}, {"ü", "🙂"}}}},
		{"the most params", Event{Outcome: Success, Params: many}},
		{"a long string", Event{UserAgent: strings.Repeat("long ", 3000), Outcome: Success}},
	}
	for _, tt := range tests {
		for _, view := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/view=%v", tt.name, view), func(t *testing.T) {
				b := encode(tt.e)
				got, err := DecodeEvent(b, view)
				if err != nil {
					t.Fatalf("DecodeEvent: %v", err)
				}
				if !eventsEqual(got, tt.e) {
					t.Fatalf("DecodeEvent gave\n%+v\nwant\n%+v", got, tt.e)
				}
				if again := encode(got); !bytes.Equal(again, b) {
					t.Fatalf("encoding the decoded event differs:\n%x\n%x", again, b)
				}
			})
		}
	}
}

func TestAppendEventAppendsToWhatIsThere(t *testing.T) {
	e := fullEvent(4)
	prefix := []byte("prefix")
	b := AppendEvent(slices.Clone(prefix), &e)
	if !bytes.HasPrefix(b, prefix) || !bytes.Equal(b[len(prefix):], encode(e)) {
		t.Fatalf("AppendEvent did not append the encoding after the existing bytes")
	}
}

// pointsInto reports whether s's bytes lie inside b's memory.
func pointsInto(s string, b []byte) bool {
	if len(s) == 0 || len(b) == 0 {
		return false
	}
	p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return p >= lo && p < lo+uintptr(len(b))
}

func TestDecodeEventViewsTheInputOnlyInViewMode(t *testing.T) {
	e := fullEvent(5)
	b := encode(e)
	copied, err := DecodeEvent(b, false)
	if err != nil {
		t.Fatal(err)
	}
	viewed, err := DecodeEvent(b, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{copied.EventID, copied.EventName, copied.ResourceARN, copied.Params[0].Name, copied.Params[0].Value} {
		if pointsInto(s, b) {
			t.Errorf("copy mode: %q views the input", s)
		}
	}
	for _, s := range []string{viewed.EventID, viewed.EventName, viewed.ResourceARN, viewed.Params[0].Name, viewed.Params[0].Value} {
		if !pointsInto(s, b) {
			t.Errorf("view mode: %q is a copy", s)
		}
	}
	// A copy outlives the buffer being reused.
	clear(b)
	if !eventsEqual(copied, e) {
		t.Errorf("copy mode: the event changed when the input was overwritten")
	}
}

func TestDecodeEventRefusesMalformedEvents(t *testing.T) {
	valid := fullEvent(1)
	with := func(f func(*Event)) []byte {
		e := fullEvent(1)
		e.Params = slices.Clone(e.Params)
		f(&e)
		return encode(e)
	}
	tooMany := make([]Param, MaxParams+1)
	for i := range tooMany {
		tooMany[i] = Param{fmt.Sprintf("p%02d", i), ""}
	}
	// An encoding of fewer params than it announces, and a count past
	// what any input could hold.
	hugeCount := encode(Event{Outcome: Success})
	hugeCount = append(hugeCount[:len(hugeCount)-1], 0xff, 0xff, 0xff, 0xff, 0x0f)
	// A string length beyond the input.
	longLen := append([]byte{0x80, 0x80, 0x04}, encode(valid)...)
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty input", nil},
		{"unsorted param names", with(func(e *Event) { e.Params[0], e.Params[1] = e.Params[1], e.Params[0] })},
		{"duplicate param names", with(func(e *Event) { e.Params[1].Name = e.Params[0].Name })},
		{"duplicate param names, equal values", encode(Event{Outcome: Success, Params: []Param{{"a", "1"}, {"a", "1"}}})},
		{"outcome 0", with(func(e *Event) { e.Outcome = 0 })},
		{"outcome 4", with(func(e *Event) { e.Outcome = 4 })},
		{"outcome 255", with(func(e *Event) { e.Outcome = 255 })},
		{"non-UTF-8 event id", with(func(e *Event) { e.EventID = "a\xffb" })},
		{"non-UTF-8 event name", with(func(e *Event) { e.EventName = "\xc3" })},
		{"non-UTF-8 resource ARN", with(func(e *Event) { e.ResourceARN = "\xed\xa0\x80" })}, // a surrogate
		{"non-UTF-8 error code", with(func(e *Event) { e.ErrorCode = "\x80" })},
		{"non-UTF-8 param name", with(func(e *Event) { e.Params[0].Name = "\xfe" })},
		{"non-UTF-8 param value", with(func(e *Event) { e.Params[2].Value = "ok\xffok" })},
		{"one trailing byte", append(encode(valid), 0)},
		{"a second event after it", append(encode(valid), encode(valid)...)},
		{"more than MaxParams params", encode(Event{Outcome: Success, Params: tooMany})},
		{"a huge param count", hugeCount},
		{"a string longer than the input", longLen},
		{"over MaxEventBytes", encode(Event{Outcome: Success, Params: []Param{{"big", strings.Repeat("x", MaxEventBytes)}}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, view := range []bool{false, true} {
				_, err := DecodeEvent(tt.b, view)
				if !errors.Is(err, ErrFormat) {
					t.Errorf("DecodeEvent(view=%v) = %v, want an ErrFormat", view, err)
				}
			}
		})
	}
}

func TestDecodeEventRefusesEveryTruncation(t *testing.T) {
	for _, e := range []Event{fullEvent(1), fullEvent(2), {Outcome: Success}} {
		b := encode(e)
		for n := range len(b) {
			if _, err := DecodeEvent(b[:n:n], false); !errors.Is(err, ErrFormat) {
				t.Fatalf("DecodeEvent of the first %d of %d bytes = %v, want an ErrFormat", n, len(b), err)
			}
		}
	}
}

// eventOfSize returns an event whose encoding is exactly n bytes.
func eventOfSize(t *testing.T, n int) Event {
	t.Helper()
	e := Event{EventID: "id", Outcome: Success, Params: []Param{{"pad", ""}}}
	for v := n - len(encode(e)); v >= 0; v-- {
		e.Params[0].Value = strings.Repeat("p", v)
		if len(encode(e)) == n {
			return e
		}
	}
	t.Fatalf("no event of %d bytes", n)
	return e
}

func TestDecodeEventAcceptsUpToMaxEventBytes(t *testing.T) {
	e := eventOfSize(t, MaxEventBytes)
	if _, err := DecodeEvent(encode(e), false); err != nil {
		t.Fatalf("an event of exactly MaxEventBytes: %v", err)
	}
	e = eventOfSize(t, MaxEventBytes+1)
	if _, err := DecodeEvent(encode(e), false); !errors.Is(err, ErrFormat) {
		t.Fatalf("an event of MaxEventBytes+1: %v, want an ErrFormat", err)
	}
}

func TestDecodeEventAcceptsUpToMaxParams(t *testing.T) {
	ps := make([]Param, MaxParams)
	for i := range ps {
		ps[i] = Param{fmt.Sprintf("p%03d", i), "v"}
	}
	e := Event{Outcome: Success, Params: ps}
	got, err := DecodeEvent(encode(e), false)
	if err != nil || len(got.Params) != MaxParams {
		t.Fatalf("an event of MaxParams params: %d params, %v", len(got.Params), err)
	}
}

// TestDecodeEventRefusesNonMinimalVarints: AppendEvent's doc promises that
// DecodeEvent refuses anything but the canonical encoding, "so every event
// has exactly one encoding". Varints padded with 0x80 continuation bytes
// decode to the same numbers, so they must be refused.
func TestDecodeEventRefusesNonMinimalVarints(t *testing.T) {
	e := Event{EventID: "id", Time: 5, EventName: "Encrypt", Outcome: Success, Params: []Param{{"a", "b"}}}
	canon := encode(e)
	// canon: 02 'i' 'd' | 0a (time 5) | 07 "Encrypt" | 11×00 | 01 | 00 | 01 (count) 01 'a' 01 'b'
	timeAt := 3
	countAt := len(canon) - 5
	if canon[0] != 2 || canon[timeAt] != 0x0a || canon[countAt] != 1 {
		t.Fatalf("unexpected canonical layout %x", canon)
	}
	splice := func(at int, repl ...byte) []byte {
		return slices.Concat(canon[:at], repl, canon[at+1:])
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"a string length padded", splice(0, 0x82, 0x00)},
		{"the time padded", splice(timeAt, 0x8a, 0x00)},
		{"the param count padded", splice(countAt, 0x81, 0x80, 0x00)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeEvent(tt.b, false)
			if err == nil {
				t.Errorf("DecodeEvent(%x) accepted a second encoding of %+v (canonical %x)", tt.b, got, canon)
			}
		})
	}
}

func TestSortParams(t *testing.T) {
	tests := []struct {
		name    string
		in, out []Param
	}{
		{"nothing", nil, nil},
		{"sorted stays", []Param{{"a", "1"}, {"b", "2"}}, []Param{{"a", "1"}, {"b", "2"}}},
		{"reversed", []Param{{"c", "3"}, {"b", "2"}, {"a", "1"}}, []Param{{"a", "1"}, {"b", "2"}, {"c", "3"}}},
		{"byte order, not case-folded", []Param{{"b", ""}, {"B", ""}, {"a", ""}, {"A", ""}},
			[]Param{{"A", ""}, {"B", ""}, {"a", ""}, {"b", ""}}},
		{"a duplicate keeps its first value", []Param{{"b", "first"}, {"a", "x"}, {"b", "second"}, {"b", "third"}},
			[]Param{{"a", "x"}, {"b", "first"}}},
		{"first value even when it sorts last", []Param{{"k", "z"}, {"k", "a"}}, []Param{{"k", "z"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SortParams(slices.Clone(tt.in))
			if !slices.Equal(got, tt.out) {
				t.Fatalf("SortParams(%v) = %v, want %v", tt.in, got, tt.out)
			}
			// What it gives is what DecodeEvent accepts.
			if _, err := DecodeEvent(encode(Event{Outcome: Success, Params: got}), false); err != nil {
				t.Fatalf("the sorted params do not decode: %v", err)
			}
		})
	}
}

func TestSealThenDecodeGivesBackTheRecord(t *testing.T) {
	prev := sha256.Sum256([]byte("previous"))
	tests := []struct {
		name       string
		seq        uint64
		commitTime int64
		prev       [32]byte
		e          Event
	}{
		{"the first record", 1, 1_700_000_000_000_000_001, [32]byte{}, fullEvent(1)},
		{"a later record", 42, 1_700_000_000_999_999_999, prev, fullEvent(42)},
		{"the largest seq and a negative time", math.MaxUint64, -5, prev, fullEvent(7)},
		{"a bare event", 3, 0, prev, Event{Outcome: Denied}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Seal(tt.seq, tt.commitTime, tt.prev, encode(tt.e))
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if s.Seq != tt.seq || s.CommitTime != tt.commitTime {
				t.Errorf("Sealed seq/time = %d/%d, want %d/%d", s.Seq, s.CommitTime, tt.seq, tt.commitTime)
			}
			if s.Hash != sha256.Sum256(s.Content) || !s.Valid() {
				t.Errorf("the hash is not the SHA-256 of the content")
			}
			r, err := s.Decode()
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			want := Record{Seq: tt.seq, CommitTime: tt.commitTime, PrevHash: tt.prev, Event: tt.e, Hash: s.Hash}
			if !recordsEqual(r, want) {
				t.Errorf("Decode gave\n%+v\nwant\n%+v", r, want)
			}
			if !bytes.Equal(r.Content(), s.Content) {
				t.Errorf("Record.Content differs from the sealed content")
			}
			if r.ComputeHash() != s.Hash {
				t.Errorf("Record.ComputeHash differs from the sealed hash")
			}
			if back := r.Seal(); !sealedEqual(back, s) {
				t.Errorf("Record.Seal gave %+v, want %+v", back, s)
			}
			seq, ct, p, err := PeekHeader(s.Content)
			if err != nil || seq != tt.seq || ct != tt.commitTime || p != tt.prev {
				t.Errorf("PeekHeader = %d, %d, %x, %v; want %d, %d, %x", seq, ct, p, err, tt.seq, tt.commitTime, tt.prev)
			}
		})
	}
}

func TestSealedDecodeCopiesItsStrings(t *testing.T) {
	s := sealChain(t, 1)[0]
	r, err := s.Decode()
	if err != nil {
		t.Fatal(err)
	}
	if pointsInto(r.EventName, s.Content) || pointsInto(r.Params[0].Value, s.Content) {
		t.Fatalf("Decode's strings view the sealed content")
	}
}

func TestSealCanonicalisesTheEvent(t *testing.T) {
	// The same event with a padded varint (see
	// TestDecodeEventRefusesNonMinimalVarints) seals to the same content.
	e := Event{EventID: "id", Time: 5, Outcome: Success}
	canon := encode(e)
	padded := slices.Concat([]byte{0x82, 0x00}, canon[1:])
	a, errA := Seal(1, 1, [32]byte{}, canon)
	b, errB := Seal(1, 1, [32]byte{}, padded)
	if errA != nil {
		t.Fatal(errA)
	}
	if errB == nil && !sealedEqual(a, b) {
		t.Fatalf("Seal kept a non-canonical encoding: %x, want %x", b.Content, a.Content)
	}
}

func TestSealEventIsSealOfTheEncodedEvent(t *testing.T) {
	prev := sha256.Sum256([]byte("prev"))
	for i := range uint64(5) {
		e := fullEvent(i)
		want, err := Seal(i+1, commitTimeOf(i+1), prev, encode(e))
		if err != nil {
			t.Fatal(err)
		}
		if got := SealEvent(i+1, commitTimeOf(i+1), prev, &e); !sealedEqual(got, want) {
			t.Fatalf("SealEvent(%d) = %x, Seal gave %x", i+1, got.Content, want.Content)
		}
	}
}

func TestSealRefusesAMalformedEvent(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":          nil,
		"bad outcome":    encode(Event{Outcome: 9}),
		"trailing bytes": append(encode(fullEvent(1)), 1),
		"too large":      encode(Event{Outcome: Success, ErrorCode: strings.Repeat("e", MaxEventBytes)}),
	} {
		if _, err := Seal(1, 1, [32]byte{}, b); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: Seal = %v, want an ErrFormat", name, err)
		}
	}
}

func TestSealedHashCoversEverything(t *testing.T) {
	base := fullEvent(1)
	other := sha256.Sum256([]byte("other"))
	changedParam := fullEvent(1)
	changedParam.Params = slices.Clone(changedParam.Params)
	changedParam.Params[1].Value += "!"
	renamed := fullEvent(1)
	renamed.EventName = "ScheduleKeyDeletion"
	variants := []struct {
		name string
		seq  uint64
		ct   int64
		prev [32]byte
		e    Event
	}{
		{"base", 1, 100, [32]byte{}, base},
		{"another seq", 2, 100, [32]byte{}, base},
		{"another commit time", 1, 101, [32]byte{}, base},
		{"another prev hash", 1, 100, other, base},
		{"one prev bit", 1, 100, [32]byte{31: 1}, base},
		{"another event name", 1, 100, [32]byte{}, renamed},
		{"another param value", 1, 100, [32]byte{}, changedParam},
		{"another event", 1, 100, [32]byte{}, fullEvent(2)},
	}
	seen := map[[32]byte]string{}
	for _, v := range variants {
		s, err := Seal(v.seq, v.ct, v.prev, encode(v.e))
		if err != nil {
			t.Fatal(err)
		}
		if was, dup := seen[s.Hash]; dup {
			t.Errorf("%q and %q have the same hash", v.name, was)
		}
		seen[s.Hash] = v.name
	}
}

func TestSealedDecodeRefusesMalformedContent(t *testing.T) {
	good := sealChain(t, 1)[0]
	badEvent := append(appendHeader(nil, 1, 1, [32]byte{}), encode(Event{Outcome: 0})...)
	tests := []struct {
		name    string
		content []byte
	}{
		{"empty", nil},
		{"an unknown version", append([]byte{2}, good.Content[1:]...)},
		{"version 0", append([]byte{0}, good.Content[1:]...)},
		{"a trailing byte", append(slices.Clone(good.Content), 0)},
		{"a bad event", badEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := (Sealed{Content: tt.content}).Decode(); !errors.Is(err, ErrFormat) {
				t.Errorf("Decode = %v, want an ErrFormat", err)
			}
		})
	}
	t.Run("every truncation", func(t *testing.T) {
		for n := range len(good.Content) {
			if _, err := (Sealed{Content: good.Content[:n:n]}).Decode(); !errors.Is(err, ErrFormat) {
				t.Fatalf("Decode of the first %d of %d bytes = %v, want an ErrFormat", n, len(good.Content), err)
			}
		}
	})
}

func TestPeekHeaderRefusesAShortOrUnknownHeader(t *testing.T) {
	good := sealChain(t, 1)[0]
	headerLen := len(appendHeader(nil, 1, good.CommitTime, [32]byte{}))
	for n := range headerLen {
		if _, _, _, err := PeekHeader(good.Content[:n:n]); !errors.Is(err, ErrFormat) {
			t.Errorf("PeekHeader of %d header bytes = %v, want an ErrFormat", n, err)
		}
	}
	if _, _, _, err := PeekHeader(good.Content[:headerLen]); err != nil {
		t.Errorf("PeekHeader of the whole header: %v", err)
	}
	if _, _, _, err := PeekHeader(append([]byte{7}, good.Content[1:]...)); !errors.Is(err, ErrFormat) {
		t.Errorf("PeekHeader of version 7 = %v, want an ErrFormat", err)
	}
}

func TestValidIsFalseForAnyChange(t *testing.T) {
	s := sealChain(t, 1)[0]
	if !s.Valid() {
		t.Fatal("a sealed record is not valid")
	}
	for i := range s.Content {
		c := s
		c.Content = slices.Clone(s.Content)
		c.Content[i] ^= 0x01
		if c.Valid() {
			t.Fatalf("flipping a bit of content byte %d keeps the record valid", i)
		}
	}
	c := s
	c.Hash[0] ^= 0x80
	if c.Valid() {
		t.Fatal("a changed hash keeps the record valid")
	}
}

func TestRecordSealKeepsTheHashOfAChangedRecord(t *testing.T) {
	s := sealChain(t, 1)[0]
	r, err := s.Decode()
	if err != nil {
		t.Fatal(err)
	}
	r.EventName = "Forged"
	back := r.Seal()
	if back.Hash != s.Hash {
		t.Fatalf("Record.Seal changed the hash")
	}
	if back.Valid() || r.ComputeHash() == r.Hash {
		t.Fatalf("a changed record still matches its hash")
	}
}

func TestOutcomeNames(t *testing.T) {
	tests := []struct {
		o    Outcome
		name string
		ok   bool
	}{
		{Success, "success", true},
		{Denied, "denied", true},
		{Failed, "failed", true},
		{0, "outcome(0)", false},
		{4, "outcome(4)", false},
		{255, "outcome(255)", false},
	}
	for _, tt := range tests {
		if got := tt.o.String(); got != tt.name {
			t.Errorf("Outcome(%d).String() = %q, want %q", uint8(tt.o), got, tt.name)
		}
		o, ok := ParseOutcome(tt.name)
		if ok != tt.ok || (ok && o != tt.o) {
			t.Errorf("ParseOutcome(%q) = %v, %v", tt.name, o, ok)
		}
	}
	for _, s := range []string{"", "Success", "SUCCESS", " success", "denied ", "outcome(1)"} {
		if o, ok := ParseOutcome(s); ok {
			t.Errorf("ParseOutcome(%q) = %v, want refused", s, o)
		}
	}
}

// TestSealedDecodeRefusesNonCanonicalContent: a stored record that is
// Valid (its hash covers its bytes) and decodes must be one whose decoded
// Record hashes the same, or an export of it fails verification while the
// archive holds it as good. Padded varints in the header break that.
func TestSealedDecodeRefusesNonCanonicalContent(t *testing.T) {
	good := sealChain(t, 1)[0]
	if good.Content[1] != 1 { // seq 1 is one byte after the version
		t.Fatalf("unexpected header %x", good.Content[:4])
	}
	padded := Sealed{Seq: 1, CommitTime: good.CommitTime, Content: slices.Concat(good.Content[:1], []byte{0x81, 0x00}, good.Content[2:])}
	padded.Hash = sha256.Sum256(padded.Content)
	r, err := padded.Decode()
	if err != nil {
		return // refused: fine
	}
	if r.ComputeHash() != padded.Hash {
		t.Errorf("a valid stored record (seq padded to %x) decodes to a record whose hash differs from the stored one", padded.Content[1:3])
	}
}

// TestSealCheckedEqualsSealForEveryAcceptedEvent: the state machine seals
// an event's bytes as they are once CheckEvent accepts them; that must be
// exactly what decoding and encoding again would seal.
func TestSealCheckedEqualsSealForEveryAcceptedEvent(t *testing.T) {
	for i, e := range []Event{{EventID: "e", EventName: "Decrypt", Outcome: Success},
		{EventID: "x", Time: -5, EventName: "ñ", RequestID: "00000000-0000-4000-8000-000000000001", Outcome: Denied,
			ErrorCode: "Forbidden.NoPermission", Params: []Param{{"A", "1"}, {"B", "<&>"}}}} {
		b := AppendEvent(nil, &e)
		rid, err := CheckEvent(b)
		if err != nil || rid != e.RequestID {
			t.Fatalf("event %d: CheckEvent = %q, %v", i, rid, err)
		}
		want, err := Seal(uint64(i+1), 7, [32]byte{1}, b)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := SealChecked(nil, uint64(i+1), 7, [32]byte{1}, b)
		if !bytes.Equal(got.Content, want.Content) || got.Hash != want.Hash {
			t.Fatalf("event %d: SealChecked differs from Seal", i)
		}
	}
	bad := AppendEvent(nil, &Event{EventID: "e", Outcome: Success, Params: []Param{{"B", "1"}, {"A", "2"}}})
	if _, err := CheckEvent(bad); err == nil {
		t.Fatal("CheckEvent accepted unsorted parameters")
	}
}

// TestRecordsSealedIntoOneBufferKeepTheirOwnContent: the state machine
// seals a batch's records into one buffer; each record's content must stay
// as sealed whatever is appended to the buffer after it, and its hash must
// be that of the record sealed alone, with the header at its largest too.
func TestRecordsSealedIntoOneBufferKeepTheirOwnContent(t *testing.T) {
	events := [][]byte{
		AppendEvent(nil, &Event{EventID: "a", EventName: "Decrypt", Outcome: Success}),
		AppendEvent(nil, &Event{EventID: "b", EventName: "GenerateDataKey", Outcome: Denied, Params: []Param{{"KeyId", "k"}}}),
		AppendEvent(nil, &Event{EventID: "c", EventName: "Encrypt", Outcome: Success}),
	}
	seqs := []uint64{1, 1 << 40, math.MaxUint64}
	times := []int64{7, math.MinInt64, math.MaxInt64}
	size := 0
	for _, ev := range events {
		size += MaxHeaderBytes + len(ev)
	}
	buf := make([]byte, 0, size)
	first := &buf[:1][0]
	var got []Sealed
	for i, ev := range events {
		var s Sealed
		s, buf = SealChecked(buf, seqs[i], times[i], [32]byte{byte(i)}, ev)
		got = append(got, s)
	}
	if &buf[:1][0] != first {
		t.Fatal("the records did not fit in MaxHeaderBytes+len(event) each")
	}
	buf = append(buf, bytes.Repeat([]byte{0xff}, 4096)...) // grows past the capacity
	for i := range got {
		got[i].Content = append(got[i].Content, 0xee) // must copy, not write into the next record
	}
	for i, ev := range events {
		want, _ := SealChecked(nil, seqs[i], times[i], [32]byte{byte(i)}, ev)
		if !bytes.Equal(got[i].Content[:len(got[i].Content)-1], want.Content) || got[i].Hash != want.Hash {
			t.Fatalf("record %d changed after its buffer was appended to", i)
		}
	}
}
