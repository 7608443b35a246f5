package fsm

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func sampleCommands() []Command {
	return []Command{
		&CreateAccount{ID: "1", Name: "root", AccessKeyID: "AK", Secret: []byte{1, 2}, System: true},
		&CreateKey{Account: "1", ID: "key-x", Description: "d", Spec: "Aliyun_AES_256", Usage: "ENCRYPT/DECRYPT",
			Origin: "Aliyun_KMS", Protection: "SOFTWARE", CreatorType: "User", RotationInterval: 604800,
			Tags: []Tag{{"env", "prod"}}, VersionID: "v", Material: []byte{9}},
		&UpdateKeyDescription{Account: "1", KeyRef: "alias/x", Description: "new"},
		NewEnableKey("1", "key-x"),
		NewDisableKey("1", "key-x"),
		&ScheduleKeyDeletion{Account: "1", KeyRef: "key-x", PendingDays: 30},
		NewCancelKeyDeletion("1", "key-x"),
		&SetDeletionProtection{Account: "1", KeyRef: "key-x", Enable: true, Description: "why"},
		&DestroyKey{Account: "1", KeyID: "key-x"},
		NewCreateAlias("1", "alias/a", "key-x"),
		NewUpdateAlias("1", "alias/a", "key-y"),
		&DeleteAlias{Account: "1", Name: "alias/a"},
		&RotateKey{Account: "1", KeyID: "key-x", VersionID: "v2", Material: []byte{3}, Reason: RotateScheduled},
		&ReserveSeals{Account: "1", KeyID: "key-x", VersionID: "v2", Count: 1 << 20},
		&Noop{},
		&DeleteAccount{ID: "2"},
		&CreateUser{Account: "1", Name: "alice"},
		&DeleteUser{Account: "1", Name: "alice"},
		&CreateServicePrincipal{Account: "1", Product: "ecs", AccessKeyID: "AKECS", Secret: []byte("wrapped")},
		&DeleteServicePrincipal{Account: "1", Product: "ecs"},
		&CreateAccessKey{Account: "1", Kind: PrincipalUser, Principal: "alice", AccessKeyID: "AK2", Secret: []byte{5}},
		&SetAccessKeyStatus{Account: "1", AccessKeyID: "AK2", Active: true},
		&DeleteAccessKey{Account: "1", AccessKeyID: "AK2"},
		&TouchAccessKeys{IDs: []string{"AK1", "AK2"}, Times: []int64{1, 2}},
		&PutUserPolicy{Account: "1", User: "alice", Name: "p", Document: "{}"},
		&DeleteUserPolicy{Account: "1", User: "alice", Name: "p"},
		&PutRegoModule{Name: "m", Source: "package kms.custom"},
		&DeleteRegoModule{Name: "m"},
		&CreateServiceKey{Account: "1", Product: "ecs", KeyID: "key-s", VersionID: "vs", Material: []byte{6}},
		&TrailAppend{Retention: Retention{MaxRecords: 100, MaxAge: 3600e9}, Events: [][]byte{{1, 2}, {3}}},
		&TrailShip{Retention: Retention{MaxRecords: 100}, Journal: [16]byte{9, 8}, First: 7, Events: [][]byte{{1, 2}, {3}}},
		&Audited{Retention: Retention{MaxRecords: 5}, Event: []byte{7}, Cmd: &CreateUser{Account: "1", Name: "bob"}},
		&ReserveSealsBatch{Items: []ReserveSeals{{Account: "1", KeyID: "key-x", VersionID: "v", Count: 1 << 20}, {Account: "2", KeyID: "k", VersionID: "w", Count: 5}}},
	}
}

func TestEveryCommandRoundTrips(t *testing.T) {
	hd := Header{Time: t0, RequestID: [16]byte{1, 2, 3}, NonceFP: 77, NonceMinute: 12345}
	seen := map[CmdType]bool{}
	for _, c := range sampleCommands() {
		b := Encode(hd, c)
		gh, gc, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(%T): %v", c, err)
		}
		if gh != hd || !reflect.DeepEqual(gc, c) {
			t.Fatalf("Decode(Encode(%+v)) = %+v, %+v", c, gh, gc)
		}
		seen[c.Type()] = true
	}
	for typ := CmdType(1); newCommand(typ) != nil; typ++ {
		if !seen[typ] {
			t.Errorf("command type %d has no round-trip sample", typ)
		}
	}
}

func TestDecodeRejectsDamagedEntries(t *testing.T) {
	good := Encode(Header{Time: 1}, NewEnableKey("1", "key-x"))
	cases := map[string][]byte{
		"empty":            nil,
		"short header":     good[:headerSize-1],
		"unknown codec":    append([]byte{9}, good[1:]...),
		"unknown type":     append([]byte{codecVersion, 200}, good[2:]...),
		"unknown schema":   append([]byte{codecVersion, byte(CmdEnableKey), 2}, good[3:]...),
		"truncated body":   good[:len(good)-1],
		"trailing bytes":   append(bytes.Clone(good), 0),
		"huge length":      append(bytes.Clone(good[:headerSize]), 0xff, 0xff, 0xff, 0xff, 0x0f),
		"bool that is not": badBool(),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, _, err := Decode(b); !errors.Is(err, ErrCodec) {
				t.Fatalf("Decode err = %v, want ErrCodec", err)
			}
		})
	}
}

// badBool is a SetDeletionProtection whose Enable byte is 2.
func badBool() []byte {
	b := Encode(Header{}, &SetDeletionProtection{})
	b[len(b)-2] = 2
	return b
}

func TestStampTimeRewritesOnlyTheTime(t *testing.T) {
	b := Encode(Header{Time: 1, NonceFP: 5}, NewDisableKey("1", "k"))
	if err := StampTime(b, t0); err != nil {
		t.Fatal(err)
	}
	h, c, err := Decode(b)
	if err != nil || h.Time != t0 || h.NonceFP != 5 || c.(*DisableKey).KeyRef != "k" {
		t.Fatalf("after StampTime: %+v %+v %v", h, c, err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range sampleCommands() {
		f.Add(Encode(Header{Time: t0, NonceFP: 1}, c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, c, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to a canonical form that decodes to
		// the same command.
		again := Encode(h, c)
		h2, c2, err := Decode(again)
		if err != nil || h2 != h || !reflect.DeepEqual(c, c2) {
			t.Fatalf("re-decode of %x: %v", again, err)
		}
		if !bytes.Equal(Encode(h2, c2), again) {
			t.Fatal("encoding is not canonical")
		}
	})
}
