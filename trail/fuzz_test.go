package trail

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzDecodeEvent: DecodeEvent never panics, copy and view modes agree,
// and whatever it accepts is the one canonical encoding of the event it
// returns.
func FuzzDecodeEvent(f *testing.F) {
	for i := range uint64(4) {
		f.Add(encode(fullEvent(i)))
	}
	f.Add(encode(Event{Outcome: Success}))
	f.Add(encode(Event{EventID: "日本", Time: -1, Outcome: Denied, Params: []Param{{"a", ""}, {"b", "<&>"}}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		e, err := DecodeEvent(b, false)
		ev, errv := DecodeEvent(b, true)
		if !bytes.Equal(in, b) {
			t.Fatal("DecodeEvent changed its input")
		}
		if (err == nil) != (errv == nil) {
			t.Fatalf("copy mode: %v; view mode: %v", err, errv)
		}
		if rid, cerr := CheckEvent(b); (cerr == nil) != (err == nil) || (err == nil && rid != e.RequestID) {
			t.Fatalf("CheckEvent = %q, %v; DecodeEvent: %v", rid, cerr, err)
		}
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("DecodeEvent error %v is not an ErrFormat", err)
			}
			return
		}
		if !eventsEqual(e, ev) {
			t.Fatalf("copy mode gave %+v, view mode %+v", e, ev)
		}
		if e.Outcome < Success || e.Outcome > Failed || len(e.Params) > MaxParams {
			t.Fatalf("DecodeEvent accepted %+v", e)
		}
		s, err := Seal(3, 4, [32]byte{5: 6}, b)
		if err != nil || !sealedEqual(s, SealEvent(3, 4, [32]byte{5: 6}, &e)) || !s.Valid() {
			t.Fatalf("Seal of an event DecodeEvent accepts: %v, or not SealEvent of the decoded event", err)
		}
		if again := encode(e); !bytes.Equal(again, b) {
			t.Fatalf("DecodeEvent accepted %x, which is not the encoding of the event it gives (%x)", b, again)
		}
	})
}

// FuzzSealedDecode: Decode and PeekHeader never panic and agree, and a
// record that decodes has the content it was decoded from, so its hash
// is the stored one.
func FuzzSealedDecode(f *testing.F) {
	for _, s := range sealChain(f, 3) {
		f.Add(s.Content)
	}
	prev := [32]byte{0: 1, 31: 2}
	s, err := Seal(1<<40, -7, prev, encode(Event{Outcome: Failed, ErrorCode: "E"}))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(s.Content)
	f.Add([]byte{contentVersion})
	f.Fuzz(func(t *testing.T, content []byte) {
		in := bytes.Clone(content)
		s := Sealed{Content: content, Hash: sha256.Sum256(content)}
		seq, ct, prev, perr := PeekHeader(content)
		r, err := s.Decode()
		if !bytes.Equal(in, content) {
			t.Fatal("Decode changed its input")
		}
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("Decode error %v is not an ErrFormat", err)
			}
			return
		}
		if perr != nil || seq != r.Seq || ct != r.CommitTime || prev != r.PrevHash {
			t.Fatalf("PeekHeader = %d, %d, %x, %v; Decode = %d, %d, %x", seq, ct, prev, perr, r.Seq, r.CommitTime, r.PrevHash)
		}
		if !s.Valid() || r.Hash != s.Hash {
			t.Fatal("the decoded record lost the stored hash")
		}
		if again := r.Content(); !bytes.Equal(again, content) {
			t.Fatalf("Decode accepted %x, which is not the content of the record it gives (%x)", content, again)
		}
		if r.ComputeHash() != s.Hash {
			t.Fatal("a valid stored record decodes to a record with another hash")
		}
	})
}

// FuzzVerifyExport: VerifyExport never panics, names a bad line with a
// *BadRecordError, and its summary of an accepted export is consistent.
func FuzzVerifyExport(f *testing.F) {
	recs := sealChain(f, 4)
	lines := exportLines(f, recs)
	f.Add([]byte(joinLines(lines)))
	f.Add([]byte(joinLines(lines[1:3])))
	f.Add([]byte(strings.Join(lines, "\r\n")))
	f.Add([]byte(joinLines([]string{lines[0], lines[2]})))
	f.Add([]byte(joinLines([]string{lines[0], lines[0]})))
	f.Add([]byte(lines[0] + "\n\n"))
	f.Add([]byte("{}\n"))
	f.Add([]byte("null"))
	f.Fuzz(func(t *testing.T, export []byte) {
		v, err := VerifyExport(bytes.NewReader(export))
		if v == nil {
			t.Fatal("VerifyExport returned no verifier")
		}
		if err != nil {
			var bad *BadRecordError
			if !errors.As(err, &bad) {
				t.Fatalf("VerifyExport error %v is not a *BadRecordError", err)
			}
			if bad.Line < 1 || uint64(bad.Line) != v.Count+1 {
				t.Fatalf("bad line %d after %d good records", bad.Line, v.Count)
			}
			return
		}
		if v.Count == 0 {
			if len(bytes.TrimSpace(export)) != 0 {
				t.Fatalf("an export of %d bytes verified with no records", len(export))
			}
			return
		}
		if v.Last-v.First+1 != v.Count {
			t.Fatalf("verified %d records from %d to %d", v.Count, v.First, v.Last)
		}
		if v.First == 1 && v.FirstPrev != ([32]byte{}) {
			t.Fatal("a trail from seq 1 with a non-zero first PrevHash verified")
		}
		// The last line is the record the summary names.
		last := bytes.TrimRight(export, "\r\n")
		if i := bytes.LastIndexByte(last, '\n'); i >= 0 {
			last = last[i+1:]
		}
		var r Record
		if err := json.Unmarshal(last, &r); err != nil || r.Seq != v.Last || r.Hash != v.LastHash {
			t.Fatalf("the last line is not the last record verified: %v", err)
		}
	})
}
