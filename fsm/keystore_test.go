package fsm

import (
	"reflect"
	"testing"
)

// A key read back from the key store is the key that was stored, field for
// field — also the rare shapes the record encodes specially: enumeration
// values outside the interned set and a primary version that is not the
// newest.
func TestKeyRecordsKeepEveryField(t *testing.T) {
	for _, k := range []*Key{
		{Account: "acct", ID: "key-1", Spec: "Aliyun_AES_256", Usage: "ENCRYPT/DECRYPT", Origin: "Aliyun_KMS",
			Protection: "SOFTWARE", CreatorType: "User", State: KeyEnabled, Created: 1, PrimaryVersion: "v1",
			Versions: []string{"v1"}, LastRotation: 1},
		{Account: "acct", ID: "key-2", Description: "d", Spec: "Some_Future_Spec", Usage: "SIGN/VERIFY",
			Origin: "EXTERNAL", Protection: "HSM", CreatorType: "Service", Product: "oss", State: KeyPendingDeletion,
			Created: -5, DeleteDate: 1 << 62, DeletionProtection: true, DeletionProtectionDescription: "keep",
			PrimaryVersion: "v1", PrimarySeals: 1 << 40, Versions: []string{"v1", "v2"}, LastRotation: 7,
			RotationInterval: 86400, Tags: []Tag{{"a", "1"}, {"b", ""}}, Revision: 99},
	} {
		st := newState()
		st.putKey(k)
		got, ok := st.Key(k.Account, k.ID)
		if !ok || !reflect.DeepEqual(got, k) {
			t.Errorf("stored %+v\nread   %+v", k, got)
		}
	}
}

// A version read back is the version stored, and knows its record.
func TestVersionRecordsKeepEveryField(t *testing.T) {
	st := newState()
	v := &Version{ID: "v1", Account: "acct", KeyID: "key-1", Created: 3, Material: []byte{1, 2, 3}}
	st.putVersion(v)
	got, ok := st.Version("v1")
	if !ok || !reflect.DeepEqual(got, v) {
		t.Fatalf("stored %+v, read %+v (%v)", v, got, ok)
	}
}
