package api

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseStringObject(t *testing.T) {
	good := map[string]map[string]string{
		`{}`:                               {},
		` { "a" : "1" , "b":"2" } `:        {"a": "1", "b": "2"},
		`{"esc":"q\"b\\s\/n\nt\tu\u00e9"}`: {"esc": "q\"b\\s/n\nt\tué"},
		`{"pair":"\ud83d\ude00"}`:          {"pair": "😀"},
		`{"lone":"\ud83dx"}`:               {"lone": "\ufffdx"},
		`{"":""}`:                          {"": ""},
	}
	for in, want := range good {
		pairs, err := parseStringObject([]byte(in), nil)
		if err != nil {
			t.Fatalf("parse(%s): %v", in, err)
		}
		got := map[string]string{}
		for _, p := range pairs {
			got[p.Key] = p.Value
		}
		if len(got) != len(want) {
			t.Fatalf("parse(%s) = %v, want %v", in, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("parse(%s)[%q] = %q, want %q", in, k, got[k], v)
			}
		}
	}
	for _, in := range []string{``, `[]`, `"s"`, `{"a":1}`, `{"a":null}`, `{"a":{"b":"c"}}`, `{"a":["b"]}`, `{"a":"1",}`,
		`{"a" "1"}`, `{"a":"1"} x`, `{"a":"1"}{}`, `{a:"1"}`, `{"a":"\x"}`, `{"a":"\u12"}`, "{\"a\":\"\x01\"}", `{"a":"1"`, `{"a":true}`} {
		if _, err := parseStringObject([]byte(in), nil); err == nil {
			t.Errorf("parse(%q) accepted bad input", in)
		}
	}
}

// FuzzParseStringObjectAgreesWithEncodingJSON holds the hand-written
// parser to encoding/json's answers on every input.
func FuzzParseStringObjectAgreesWithEncodingJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":"1","b":"2"}`, `{"a":1}`, `{"u":"\u00e9\ud83d\ude00"}`, `{"a":"1"} `, `{"a":"x","a":"y"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // the caller checks UTF-8 first
		}
		pairs, err := parseStringObject([]byte(s), nil)
		var m map[string]string
		jerr := json.Unmarshal([]byte(s), &m)
		if err != nil {
			if jerr == nil && m != nil && !hasDuplicateKeys(s) {
				t.Fatalf("parse(%q) = %v but encoding/json accepts %v", s, err, m)
			}
			return
		}
		if jerr != nil || m == nil {
			t.Fatalf("parse(%q) accepted what encoding/json refuses (%v)", s, jerr)
		}
		seen := map[string]string{}
		for _, p := range pairs {
			seen[p.Key] = p.Value
		}
		if len(seen) == len(pairs) { // no duplicates: must match exactly
			if len(seen) != len(m) {
				t.Fatalf("parse(%q) = %v, encoding/json = %v", s, seen, m)
			}
			for k, v := range m {
				if seen[k] != v {
					t.Fatalf("parse(%q)[%q] = %q, encoding/json %q", s, k, seen[k], v)
				}
			}
		}
	})
}

// hasDuplicateKeys reports whether encoding/json's map lost a key, which is
// the only case where the strict parser may refuse what it accepts.
func hasDuplicateKeys(s string) bool {
	d := json.NewDecoder(strings.NewReader(s))
	d.Token()
	seen := map[string]bool{}
	for d.More() {
		k, err := d.Token()
		if err != nil {
			return false
		}
		ks, _ := k.(string)
		if seen[ks] {
			return true
		}
		seen[ks] = true
		var skip json.RawMessage
		if d.Decode(&skip) != nil {
			return false
		}
	}
	return false
}
