package bench

import (
	"os"
	"path/filepath"
	"testing"
)

func TestListGivesBackEveryItemAsAppended(t *testing.T) {
	items := []string{"key-1", "", "a much longer ciphertext blob", "x"}
	l := NewList(items...)
	if l.Len() != len(items) {
		t.Fatalf("Len = %d, want %d", l.Len(), len(items))
	}
	for i, want := range items {
		if got := l.At(i); got != want {
			t.Errorf("At(%d) = %q, want %q", i, got, want)
		}
	}
	// An item's bytes end where it does: appending to them cannot reach the next.
	b := append(l.Bytes(0), "!!!"...)
	if l.At(1) != "" || l.At(2) != items[2] || string(b) != "key-1!!!" {
		t.Errorf("appending to item 0 changed the list: %q, %q", l.At(1), l.At(2))
	}
	same := NewList("key-1", "key-2", "key-3")
	if same.At(0) != "key-1" || same.At(2) != "key-3" || string(append(same.Bytes(1), '!')) != "key-2!" || same.At(2) != "key-3" {
		t.Errorf("items of one length read back %q %q %q", same.At(0), same.At(1), same.At(2))
	}
	var zero List
	if zero.Len() != 0 {
		t.Errorf("zero List has %d items", zero.Len())
	}
}

func TestReadKeysSkipsBlankLinesAndSpaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.txt")
	if err := os.WriteFile(path, []byte("key-a\n\n  key-b \r\nkey-c"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := ReadKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	if l.Len() != 3 || l.At(0) != "key-a" || l.At(1) != "key-b" || l.At(2) != "key-c" {
		t.Fatalf("read %d keys: %q %q %q", l.Len(), l.At(0), l.At(1), l.At(2))
	}
	if err := os.WriteFile(path, []byte("\n \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKeys(path); err == nil {
		t.Error("ReadKeys accepted a file without key ids")
	}
}
