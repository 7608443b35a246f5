package api

import (
	"encoding/json"
	"testing"
)

func FuzzAppendJSONStringMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\" back\\slash", "<&>", "\x00\x1f\x7f", "日本語 ✓", "\u2028\u2029", "\xff\xfe bad utf8", "tab\tnl\ncr\r"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Fatalf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
	})
}

func TestFastRepliesAreTheJSONOfTheirFields(t *testing.T) {
	cases := []any{
		&cipherReply{reply{"r-1"}, "key-1", "v-1", "QUJD"},
		&dataKeyReply{reply{"r-2"}, "key-2", "v-2", "QUJD", "a2V5"},
		&decryptReply{reply{"r-3"}, "key-3", "v-3", "hello \"world\" <\u2028> \xff"},
	}
	for _, c := range cases {
		want, _ := json.Marshal(c)
		if got := c.(jsonAppender).appendJSON(nil); string(got) != string(want) {
			t.Fatalf("appendJSON = %s\nencoding/json = %s", got, want)
		}
	}
}
