package crypto

import (
	"strings"
	"testing"
)

func TestIDsHaveTheirDocumentedForm(t *testing.T) {
	if id := NewUUID(); !IsUUID([]byte(id)) || strings.ToLower(id) != id {
		t.Fatalf("NewUUID() = %q", id)
	}
	if id := NewKeyID(); len(id) != 24 || !strings.HasPrefix(id, "key-") {
		t.Fatalf("NewKeyID() = %q", id)
	}
	if id := NewAccountID(); len(id) != 16 || id[0] == '0' {
		t.Fatalf("NewAccountID() = %q", id)
	}
	if a, b := NewAccessKeySecret(), NewAccessKeySecret(); a == b || len(a) != 30 {
		t.Fatalf("NewAccessKeySecret() = %q, %q", a, b)
	}
}

func TestRandomPassword(t *testing.T) {
	all := []string{PasswordLower, PasswordUpper, PasswordDigits, PasswordPunctuation}
	for range 200 {
		p, err := RandomPassword(8, all, "abcXYZ019", true)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != 8 || strings.ContainsAny(p, "abcXYZ019") || !containsEach(p, []string{PasswordLower[3:], PasswordUpper[:23], "2345678", PasswordPunctuation}) {
			t.Fatalf("RandomPassword = %q", p)
		}
	}
	if _, err := RandomPassword(8, []string{PasswordDigits}, PasswordDigits, true); err == nil {
		t.Fatal("RandomPassword succeeded with every character excluded")
	}
	if _, err := RandomPassword(3, all, "", true); err == nil {
		t.Fatal("RandomPassword succeeded with fewer characters than required classes")
	}
	p, err := RandomPassword(16, []string{PasswordDigits}, "", false)
	if err != nil || strings.Trim(p, PasswordDigits) != "" {
		t.Fatalf("digits-only password = %q, %v", p, err)
	}
}
