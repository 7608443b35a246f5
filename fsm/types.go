package fsm

import "time"

// KeyState is the lifecycle state of a key.
type KeyState uint8

// Key states, with the Alibaba names their String methods return.
const (
	KeyEnabled         KeyState = 1
	KeyDisabled        KeyState = 2
	KeyPendingDeletion KeyState = 3
	KeyPendingImport   KeyState = 4
)

// String returns the Alibaba name of the state.
func (s KeyState) String() string {
	switch s {
	case KeyEnabled:
		return "Enabled"
	case KeyDisabled:
		return "Disabled"
	case KeyPendingDeletion:
		return "PendingDeletion"
	case KeyPendingImport:
		return "PendingImport"
	}
	return "Unknown"
}

func (s KeyState) valid() bool { return s >= KeyEnabled && s <= KeyPendingImport }

// Tag is a key tag.
type Tag struct{ Key, Value string }

// Key is a customer master key. Values published in a State are never
// modified: Apply replaces the pointer.
type Key struct {
	Account     string // owning account id
	ID          string
	Description string
	Spec        string // KeySpec, e.g. Aliyun_AES_256
	Usage       string // KeyUsage, e.g. ENCRYPT/DECRYPT
	Origin      string // Aliyun_KMS or EXTERNAL
	Protection  string // ProtectionLevel: SOFTWARE or HSM
	CreatorType string // User or Service
	Product     string // for a service key: the product code whose key it is
	State       KeyState
	Created     int64 // unix nanoseconds, stamped by the leader
	DeleteDate  int64 // unix nanoseconds; set while PendingDeletion

	DeletionProtection            bool
	DeletionProtectionDescription string

	PrimaryVersion   string
	PrimarySeals     uint64   // encryptions reserved with the primary version, cluster-wide
	Versions         []string // ids, oldest first; the last is primary
	LastRotation     int64    // unix nanoseconds
	RotationInterval int64    // seconds; 0 when automatic rotation is off
	Tags             []Tag
	// Revision is the Raft index of the key's last change that a policy
	// can see (everything but its seal count): decisions cached for an
	// older revision are stale.
	Revision uint64

	// primary is the Version PrimaryVersion names, so encrypting needs one
	// tree lookup, not two (at a million keys each is a few cache misses);
	// a Key read from a State holds it in pv.
	primary *Version
	pv      Version
}

// Primary returns the key's primary version: the Version that
// PrimaryVersion names, in every Key the state machine made. It is nil in
// a Key made elsewhere; look the version up by PrimaryVersion then.
func (k *Key) Primary() *Version { return k.primary }

// IsServiceKey reports whether the key is a service key: its lifecycle
// belongs to its product, not to the account's users.
func (k *Key) IsServiceKey() bool { return k.CreatorType == "Service" }

// Gone reports whether the key must read as not found at time now (unix
// nanoseconds): its deletion is due even if the leader has not yet
// destroyed it.
func (k *Key) Gone(now int64) bool {
	return k.State == KeyPendingDeletion && now >= k.DeleteDate
}

// NextRotation returns when automatic rotation is next due, or 0 if it is off.
func (k *Key) NextRotation() int64 {
	if k.RotationInterval == 0 {
		return 0
	}
	return k.LastRotation + k.RotationInterval*int64(time.Second)
}

func (k *Key) clone() *Key {
	c := *k
	if k.primary == &k.pv {
		c.primary = &c.pv
	}
	return &c
}

// Version is one key version. Material is the version's key material
// wrapped by the root key (crypto.PurposeKeyMaterial, bound to ID).
type Version struct {
	ID       string
	Account  string
	KeyID    string
	Created  int64
	Material []byte
}

// Alias names a key inside an account.
type Alias struct {
	Account string
	Name    string // "alias/…"
	KeyID   string
	Created int64
	Updated int64
}

// Account is a tenant. Every key, alias and principal belongs to one.
type Account struct {
	ID      string
	Name    string
	Created int64
	System  bool // the cluster's own account (see CreateAccount)
}

// PrincipalKind says who holds an AccessKey.
type PrincipalKind uint8

// Principal kinds.
const (
	PrincipalRoot    PrincipalKind = 1 // the account's administrator
	PrincipalUser    PrincipalKind = 2
	PrincipalService PrincipalKind = 3 // a cloud product acting in the account
)

// String returns the name policies see in input.principal.type.
func (p PrincipalKind) String() string {
	switch p {
	case PrincipalRoot:
		return "root"
	case PrincipalUser:
		return "user"
	case PrincipalService:
		return "service"
	}
	return "unknown"
}

// AccessKey is an AccessKey pair. Secret is wrapped by the root key
// (crypto.PurposeAccessKeySecret, bound to ID).
type AccessKey struct {
	ID        string
	Account   string
	Kind      PrincipalKind
	Principal string // user name or product code; empty for root
	Active    bool
	Secret    []byte
	Created   int64
	LastUsed  int64 // unix ns, reported by the nodes about once a minute; 0 = never
}

// User is a user inside an account.
type User struct {
	Account, Name string
	Created       int64
}

// ServicePrincipal is a cloud product (its product code, e.g. ecs) acting
// inside an account.
type ServicePrincipal struct {
	Account, Product string
	Created          int64
}

// UserPolicy is a RAM-style JSON policy document attached to a user.
type UserPolicy struct {
	Account, User, Name string
	Document            string
	Created, Updated    int64
}

// RegoModule is a policy author's Rego module (package kms.custom…),
// applied to every request in the cluster.
type RegoModule struct {
	Name, Source     string
	Created, Updated int64
}
