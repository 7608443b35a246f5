package fsm

import (
	"encoding/binary"
	"fmt"
)

// CmdType identifies a command in the log.
type CmdType uint8

// Command types. Numbers are part of the log format: never reuse one.
const (
	CmdCreateAccount         CmdType = 1
	CmdCreateKey             CmdType = 2
	CmdUpdateKeyDescription  CmdType = 3
	CmdEnableKey             CmdType = 4
	CmdDisableKey            CmdType = 5
	CmdScheduleKeyDeletion   CmdType = 6
	CmdCancelKeyDeletion     CmdType = 7
	CmdSetDeletionProtection CmdType = 8
	CmdDestroyKey            CmdType = 9
	CmdCreateAlias           CmdType = 10
	CmdUpdateAlias           CmdType = 11
	CmdDeleteAlias           CmdType = 12
	CmdRotateKey             CmdType = 13
	CmdReserveSeals          CmdType = 14
	CmdNoop                  CmdType = 15
)

// codecVersion is the first byte of every command. A node that reads
// another value halts rather than guess.
const codecVersion = 1

// headerSize is the size of the fixed header before the body:
//
//	[0] codec version  [1] type  [2] body schema version
//	[3:11] time  [11:27] request id  [27:35] nonce fingerprint  [35:43] nonce minute
const headerSize = 43

// Header carries what every command has besides its body.
type Header struct {
	// Time is the command's time in unix nanoseconds. The leader stamps it
	// (StampTime) just before proposing; Apply uses max(Time, previous time)
	// so state time never goes backwards across leader changes.
	Time int64
	// RequestID identifies the client request. A retried command with a
	// request id applied in the last RequestWindow returns the first result
	// and changes nothing.
	RequestID [16]byte
	// NonceFP is a keyed 64-bit fingerprint of (AccessKeyId, signature
	// nonce), 0 for commands not made from a signed request. Apply refuses a
	// fingerprint already applied for the same NonceMinute, so a request
	// replayed to another node cannot change state twice.
	NonceFP uint64
	// NonceMinute is the signed request timestamp in unix minutes.
	NonceMinute int64
}

// Command is one state change. Implementations are the exported structs in
// this file; Apply dispatches on the concrete type.
type Command interface {
	// Type returns the command's type byte.
	Type() CmdType
	encodeBody(*encoder)
	decodeBody(*decoder)
	apply(*txn) Result
}

// Result is what Apply returns for one command (the value of the raft
// ApplyFuture's Response).
type Result struct {
	Err     error
	Key     *Key     // the key a key command created or changed
	Account *Account // the account CreateAccount created
	Codes   []uint16 // ReserveSealsBatch: each item's ErrorCode
	// Index is the Raft index of the entry, set by cluster.Node for the
	// commands it commits.
	Index uint64
}

// Encode returns the log entry for a command.
func Encode(h Header, c Command) []byte {
	size := 128
	if s, ok := c.(interface{ sizeHint() int }); ok {
		size = headerSize + s.sizeHint()
	}
	e := encoder{b: make([]byte, headerSize, size)}
	e.b[0] = codecVersion
	e.b[1] = byte(c.Type())
	e.b[2] = 1 // every body schema is at version 1 so far
	binary.BigEndian.PutUint64(e.b[3:], uint64(h.Time))
	copy(e.b[11:27], h.RequestID[:])
	binary.BigEndian.PutUint64(e.b[27:], h.NonceFP)
	binary.BigEndian.PutUint64(e.b[35:], uint64(h.NonceMinute))
	c.encodeBody(&e)
	return e.b
}

// StampTime sets the time of an encoded command in place. The leader calls
// it just before proposing, so the time that enters the log is the leader's.
func StampTime(entry []byte, t int64) error {
	if len(entry) < headerSize || entry[0] != codecVersion {
		return fmt.Errorf("%w: not a command", ErrCodec)
	}
	binary.BigEndian.PutUint64(entry[3:], uint64(t))
	return nil
}

// Decode parses a log entry. It fails, never panics, on any input. The
// events of a TrailAppend or TrailShip view b; nothing else does.
func Decode(b []byte) (Header, Command, error) {
	var h Header
	if len(b) < headerSize {
		return h, nil, fmt.Errorf("%w: %d bytes is shorter than the header", ErrCodec, len(b))
	}
	if b[0] != codecVersion {
		return h, nil, fmt.Errorf("%w: unknown codec version %d", ErrCodec, b[0])
	}
	typ, schema := CmdType(b[1]), b[2]
	c := newCommand(typ)
	if c == nil || schema != 1 {
		return h, nil, fmt.Errorf("%w: unknown command type %d schema %d", ErrCodec, typ, schema)
	}
	h.Time = int64(binary.BigEndian.Uint64(b[3:]))
	copy(h.RequestID[:], b[11:27])
	h.NonceFP = binary.BigEndian.Uint64(b[27:])
	h.NonceMinute = int64(binary.BigEndian.Uint64(b[35:]))
	// A trail command's events are read only while it is applied (sealing
	// copies each into its record): they view b instead of being copied.
	d := decoder{b: b[headerSize:], view: typ == CmdTrailAppend || typ == CmdTrailShip}
	c.decodeBody(&d)
	if err := d.done(fmt.Sprintf("command type %d", typ)); err != nil {
		return h, nil, err
	}
	return h, c, nil
}

func newCommand(t CmdType) Command {
	switch t {
	case CmdCreateAccount:
		return &CreateAccount{}
	case CmdCreateKey:
		return &CreateKey{}
	case CmdUpdateKeyDescription:
		return &UpdateKeyDescription{}
	case CmdEnableKey:
		return &EnableKey{}
	case CmdDisableKey:
		return &DisableKey{}
	case CmdScheduleKeyDeletion:
		return &ScheduleKeyDeletion{}
	case CmdCancelKeyDeletion:
		return &CancelKeyDeletion{}
	case CmdSetDeletionProtection:
		return &SetDeletionProtection{}
	case CmdDestroyKey:
		return &DestroyKey{}
	case CmdCreateAlias:
		return &CreateAlias{}
	case CmdUpdateAlias:
		return &UpdateAlias{}
	case CmdDeleteAlias:
		return &DeleteAlias{}
	case CmdRotateKey:
		return &RotateKey{}
	case CmdReserveSeals:
		return &ReserveSeals{}
	case CmdNoop:
		return &Noop{}
	}
	return identityCommand(t)
}

// CreateAccount creates an account and its administrator's AccessKey.
type CreateAccount struct {
	ID, Name    string
	AccessKeyID string
	Secret      []byte // wrapped by the root key
	// System marks the cluster's own account, the first one: its root
	// principal administers the cluster (members, snapshots).
	System bool
}

// Type implements Command.
func (*CreateAccount) Type() CmdType { return CmdCreateAccount }
func (c *CreateAccount) encodeBody(e *encoder) {
	e.str(c.ID)
	e.str(c.Name)
	e.str(c.AccessKeyID)
	e.bytes(c.Secret)
	e.bool(c.System)
}
func (c *CreateAccount) decodeBody(d *decoder) {
	c.ID, c.Name, c.AccessKeyID, c.Secret, c.System = d.str(), d.str(), d.str(), d.bytes(), d.bool()
}

// CreateKey creates a key with its first version.
type CreateKey struct {
	Account, ID                     string
	Description                     string
	Spec, Usage, Origin, Protection string
	CreatorType                     string
	RotationInterval                int64 // seconds; 0 = no automatic rotation
	Tags                            []Tag
	VersionID                       string
	Material                        []byte // wrapped by the root key
}

// Type implements Command.
func (*CreateKey) Type() CmdType { return CmdCreateKey }
func (c *CreateKey) encodeBody(e *encoder) {
	e.str(c.Account)
	e.str(c.ID)
	e.str(c.Description)
	e.str(c.Spec)
	e.str(c.Usage)
	e.str(c.Origin)
	e.str(c.Protection)
	e.str(c.CreatorType)
	e.varint(c.RotationInterval)
	encodeTags(e, c.Tags)
	e.str(c.VersionID)
	e.bytes(c.Material)
}
func (c *CreateKey) decodeBody(d *decoder) {
	c.Account, c.ID, c.Description = d.str(), d.str(), d.str()
	c.Spec, c.Usage, c.Origin, c.Protection = intern(d.str()), intern(d.str()), intern(d.str()), intern(d.str())
	c.CreatorType = intern(d.str())
	c.RotationInterval = d.varint()
	c.Tags = decodeTags(d)
	c.VersionID, c.Material = d.str(), d.bytes()
}

func encodeTags(e *encoder, tags []Tag) {
	e.uvarint(uint64(len(tags)))
	for _, t := range tags {
		e.str(t.Key)
		e.str(t.Value)
	}
}

func decodeTags(d *decoder) []Tag {
	n := d.length(2)
	if n == 0 {
		return nil
	}
	tags := make([]Tag, n)
	for i := range tags {
		tags[i] = Tag{d.str(), d.str()}
	}
	return tags
}

// intern returns the shared copy of the enumeration values that every key
// repeats, so a million keys do not hold a million copies of them.
func intern(s string) string {
	for _, c := range internedValues {
		if s == c {
			return c
		}
	}
	return s
}

var internedValues = [...]string{
	"Aliyun_AES_256", "Aliyun_AES_128", "ENCRYPT/DECRYPT", "Aliyun_KMS", "EXTERNAL",
	"SOFTWARE", "HSM", "User", "Service",
}

// keyRef is the body of commands that name a key by id or alias.
type keyRef struct {
	Account string
	KeyRef  string // key id or "alias/…"
}

func (c *keyRef) encodeBody(e *encoder) { e.str(c.Account); e.str(c.KeyRef) }
func (c *keyRef) decodeBody(d *decoder) { c.Account, c.KeyRef = d.str(), d.str() }

// UpdateKeyDescription replaces a key's description.
type UpdateKeyDescription struct {
	Account, KeyRef, Description string
}

// Type implements Command.
func (*UpdateKeyDescription) Type() CmdType { return CmdUpdateKeyDescription }
func (c *UpdateKeyDescription) encodeBody(e *encoder) {
	e.str(c.Account)
	e.str(c.KeyRef)
	e.str(c.Description)
}
func (c *UpdateKeyDescription) decodeBody(d *decoder) {
	c.Account, c.KeyRef, c.Description = d.str(), d.str(), d.str()
}

// EnableKey enables a key.
type EnableKey struct{ keyRef }

// NewEnableKey returns an EnableKey command.
func NewEnableKey(account, ref string) *EnableKey { return &EnableKey{keyRef{account, ref}} }

// Type implements Command.
func (*EnableKey) Type() CmdType { return CmdEnableKey }

// DisableKey disables a key.
type DisableKey struct{ keyRef }

// NewDisableKey returns a DisableKey command.
func NewDisableKey(account, ref string) *DisableKey { return &DisableKey{keyRef{account, ref}} }

// Type implements Command.
func (*DisableKey) Type() CmdType { return CmdDisableKey }

// CancelKeyDeletion cancels a scheduled deletion.
type CancelKeyDeletion struct{ keyRef }

// NewCancelKeyDeletion returns a CancelKeyDeletion command.
func NewCancelKeyDeletion(account, ref string) *CancelKeyDeletion {
	return &CancelKeyDeletion{keyRef{account, ref}}
}

// Type implements Command.
func (*CancelKeyDeletion) Type() CmdType { return CmdCancelKeyDeletion }

// ScheduleKeyDeletion puts a key in PendingDeletion for PendingDays days.
type ScheduleKeyDeletion struct {
	Account, KeyRef string
	PendingDays     int64
}

// Type implements Command.
func (*ScheduleKeyDeletion) Type() CmdType { return CmdScheduleKeyDeletion }
func (c *ScheduleKeyDeletion) encodeBody(e *encoder) {
	e.str(c.Account)
	e.str(c.KeyRef)
	e.varint(c.PendingDays)
}
func (c *ScheduleKeyDeletion) decodeBody(d *decoder) {
	c.Account, c.KeyRef, c.PendingDays = d.str(), d.str(), d.varint()
}

// SetDeletionProtection turns deletion protection on or off.
type SetDeletionProtection struct {
	Account, KeyRef string
	Enable          bool
	Description     string
}

// Type implements Command.
func (*SetDeletionProtection) Type() CmdType { return CmdSetDeletionProtection }
func (c *SetDeletionProtection) encodeBody(e *encoder) {
	e.str(c.Account)
	e.str(c.KeyRef)
	e.bool(c.Enable)
	e.str(c.Description)
}
func (c *SetDeletionProtection) decodeBody(d *decoder) {
	c.Account, c.KeyRef, c.Enable, c.Description = d.str(), d.str(), d.bool(), d.str()
}

// DestroyKey removes a key whose deletion is due, with its versions and
// aliases. The leader proposes it; Apply refuses it (ErrNotDue) before the
// key's DeleteDate, judged by the command's own time.
type DestroyKey struct {
	Account, KeyID string
}

// Type implements Command.
func (*DestroyKey) Type() CmdType           { return CmdDestroyKey }
func (c *DestroyKey) encodeBody(e *encoder) { e.str(c.Account); e.str(c.KeyID) }
func (c *DestroyKey) decodeBody(d *decoder) { c.Account, c.KeyID = d.str(), d.str() }

// aliasBody is the body of the alias commands.
type aliasBody struct {
	Account, Name, KeyRef string
}

func (c *aliasBody) encodeBody(e *encoder) { e.str(c.Account); e.str(c.Name); e.str(c.KeyRef) }
func (c *aliasBody) decodeBody(d *decoder) { c.Account, c.Name, c.KeyRef = d.str(), d.str(), d.str() }

// CreateAlias creates an alias for a key.
type CreateAlias struct{ aliasBody }

// NewCreateAlias returns a CreateAlias command.
func NewCreateAlias(account, name, keyRef string) *CreateAlias {
	return &CreateAlias{aliasBody{account, name, keyRef}}
}

// Type implements Command.
func (*CreateAlias) Type() CmdType { return CmdCreateAlias }

// UpdateAlias points an existing alias at another key.
type UpdateAlias struct{ aliasBody }

// NewUpdateAlias returns an UpdateAlias command.
func NewUpdateAlias(account, name, keyRef string) *UpdateAlias {
	return &UpdateAlias{aliasBody{account, name, keyRef}}
}

// Type implements Command.
func (*UpdateAlias) Type() CmdType { return CmdUpdateAlias }

// DeleteAlias deletes an alias.
type DeleteAlias struct{ Account, Name string }

// Type implements Command.
func (*DeleteAlias) Type() CmdType           { return CmdDeleteAlias }
func (c *DeleteAlias) encodeBody(e *encoder) { e.str(c.Account); e.str(c.Name) }
func (c *DeleteAlias) decodeBody(d *decoder) { c.Account, c.Name = d.str(), d.str() }

// RotateReason says why a key rotates.
type RotateReason uint8

// Rotation reasons.
const (
	RotateManual    RotateReason = 0 // asked for by a user
	RotateScheduled RotateReason = 1 // the automatic rotation interval elapsed
	RotateExhausted RotateReason = 2 // the primary version approaches its encryption limit
)

// RotateKey adds a version to a key and makes it primary. For a scheduled
// or exhausted rotation Apply checks that it is due (else ErrNotDue), so a
// rotation proposed twice happens once.
type RotateKey struct {
	Account, KeyID string
	VersionID      string
	Material       []byte // wrapped by the root key
	Reason         RotateReason
}

// Type implements Command.
func (*RotateKey) Type() CmdType { return CmdRotateKey }
func (c *RotateKey) encodeBody(e *encoder) {
	e.str(c.Account)
	e.str(c.KeyID)
	e.str(c.VersionID)
	e.bytes(c.Material)
	e.u8(uint8(c.Reason))
}
func (c *RotateKey) decodeBody(d *decoder) {
	c.Account, c.KeyID, c.VersionID, c.Material, c.Reason = d.str(), d.str(), d.str(), d.bytes(), RotateReason(d.u8())
	if c.Reason > RotateExhausted && d.err == nil {
		d.fail("rotation reason")
	}
}

// ReserveSeals reserves Count encryptions with a key's primary version for
// the node that asks. AES-GCM with random 96-bit IVs must not seal more than
// 2^32 messages under one key: nodes reserve budget here before they use it
// (see MaxSeals), and the leader rotates a key whose primary version passes
// RotateAtSeals.
type ReserveSeals struct {
	Account, KeyID, VersionID string
	Count                     uint64
}

// Type implements Command.
func (*ReserveSeals) Type() CmdType { return CmdReserveSeals }
func (c *ReserveSeals) encodeBody(e *encoder) {
	e.str(c.Account)
	e.str(c.KeyID)
	e.str(c.VersionID)
	e.uvarint(c.Count)
}
func (c *ReserveSeals) decodeBody(d *decoder) {
	c.Account, c.KeyID, c.VersionID, c.Count = d.str(), d.str(), d.str(), d.uvarint()
}

// MaxReserveBatch bounds the items of one ReserveSealsBatch.
const MaxReserveBatch = 1024

// ReserveSealsBatch is ReserveSeals for many key versions in one entry:
// a node that starts using many keys reserves for all of them at once.
type ReserveSealsBatch struct{ Items []ReserveSeals }

// Type implements Command.
func (*ReserveSealsBatch) Type() CmdType { return CmdReserveSealsBatch }
func (c *ReserveSealsBatch) encodeBody(e *encoder) {
	e.uvarint(uint64(len(c.Items)))
	for i := range c.Items {
		c.Items[i].encodeBody(e)
	}
}
func (c *ReserveSealsBatch) decodeBody(d *decoder) {
	n := d.length(4)
	c.Items = make([]ReserveSeals, n)
	for i := range c.Items {
		c.Items[i].decodeBody(d)
	}
}

// Noop changes nothing. A leader commits one to fence a point in the log:
// once it is acknowledged, every node holding a lease has applied all
// before it (used after a snapshot restore).
type Noop struct{}

// Type implements Command.
func (*Noop) Type() CmdType       { return CmdNoop }
func (*Noop) encodeBody(*encoder) {}
func (*Noop) decodeBody(*decoder) {}
func (*Noop) apply(*txn) Result   { return Result{} }
