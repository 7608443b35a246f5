package fsm

import (
	"encoding/binary"
	"unsafe"
)

// The key store keeps every key and key version as one encoded record: an
// immutable string whose bytes hold no pointers. At a million keys this is
// what keeps the collector cheap — it marks a record but never scans it,
// where a Key struct of strings and slices cost it a dozen pointers, and
// each of those another object — and it saved a quarter of the heap. The
// records themselves sit in large chunks (arena.go), not one object each.
// The B-tree items carry the first 8 bytes of the id, so lookups compare
// numbers in the tree's nodes and read a record only on a tie.
//
// Reading a key decodes its record into a fresh Key whose strings view the
// record (no copies); a change encodes a new record. Records never change,
// so a State published to readers stays immutable.

// keyItem indexes a key by (account, id). rec is the key's record and prim
// its primary version's, so encrypting needs one tree lookup, not two. In
// the item a lookup compares with (search), rec is the bare id.
type keyItem struct {
	idp       uint64
	account   string
	rec, prim string
	search    bool
}

// searchKey is the item a lookup of (account, id) compares with.
func searchKey(account, id string) keyItem {
	return keyItem{idp: prefix8(id), account: account, rec: id, search: true}
}

func (it keyItem) id() string {
	if it.search {
		return it.rec
	}
	return recordID(it.rec)
}

// versionItem indexes a key version by id; rec is the version's record, or
// the bare id in a search item.
type versionItem struct {
	idp    uint64
	rec    string
	search bool
}

func searchVersion(id string) versionItem {
	return versionItem{idp: prefix8(id), rec: id, search: true}
}

func (it versionItem) id() string {
	if it.search {
		return it.rec
	}
	return recordID(it.rec)
}

// prefix8 is s's first 8 bytes as a big-endian number, zero-padded: for any
// two strings, prefix8(a) < prefix8(b) implies a < b, and a < b implies
// prefix8(a) <= prefix8(b).
func prefix8(s string) uint64 {
	var b [8]byte
	copy(b[:], s)
	return binary.BigEndian.Uint64(b[:])
}

// recordID returns the id a record starts with, viewing the record.
func recordID(rec string) string {
	if n := int(rec[0]); n < 0x80 && n < len(rec) { // a one-byte length
		return rec[1 : 1+n]
	}
	d := viewDecoder(rec)
	return d.str()
}

// viewDecoder decodes rec with strings and byte slices that view it.
func viewDecoder(rec string) decoder {
	return decoder{b: unsafe.Slice(unsafe.StringData(rec), len(rec)), view: true}
}

// The enumerations every key repeats take one byte in its record: their
// index in internedValues plus one, or 0 followed by the string itself.
func (e *encoder) enum(s string) {
	for i, c := range internedValues {
		if s == c {
			e.u8(uint8(i + 1))
			return
		}
	}
	e.u8(0)
	e.str(s)
}

func (d *decoder) enum() string {
	c := d.u8()
	switch {
	case c == 0:
		return d.str()
	case int(c) <= len(internedValues):
		return internedValues[c-1]
	}
	d.fail("enumeration")
	return ""
}

// keyFormat says how a key is encoded: in a snapshot, every field spelled
// out; or as a key store record, without its account (the item's), the
// enumerations in a byte each, and the primary version in a byte when it is
// the newest version, as CreateKey and RotateKey make it.
type keyFormat bool

const (
	snapshotKey keyFormat = false
	recordKey   keyFormat = true
)

func (e *encoder) enumIn(f keyFormat, s string) {
	if f == recordKey {
		e.enum(s)
	} else {
		e.str(s)
	}
}

func (d *decoder) enumIn(f keyFormat) string {
	if f == recordKey {
		return d.enum()
	}
	return intern(d.str())
}

// encode appends k in format f.
func (k *Key) encode(e *encoder, f keyFormat) {
	if f == snapshotKey {
		e.str(k.Account)
	}
	e.str(k.ID)
	e.str(k.Description)
	for _, s := range [...]string{k.Spec, k.Usage, k.Origin, k.Protection, k.CreatorType} {
		e.enumIn(f, s)
	}
	e.str(k.Product)
	e.u8(uint8(k.State))
	e.varint(k.Created)
	e.varint(k.DeleteDate)
	e.bool(k.DeletionProtection)
	e.str(k.DeletionProtectionDescription)
	if n := len(k.Versions); f == snapshotKey {
		e.str(k.PrimaryVersion)
	} else if n > 0 && k.Versions[n-1] == k.PrimaryVersion {
		e.bool(false)
	} else {
		e.bool(true)
		e.str(k.PrimaryVersion)
	}
	e.uvarint(k.PrimarySeals)
	e.strs(k.Versions)
	e.varint(k.LastRotation)
	e.varint(k.RotationInterval)
	encodeTags(e, k.Tags)
	e.uvarint(k.Revision)
}

// decode sets k's fields, all but the primary version, from d in format f,
// reusing k.Versions' array; a record's account is k.Account.
func (k *Key) decode(d *decoder, f keyFormat) {
	account, versions := k.Account, k.Versions[:0]
	*k = Key{Account: account}
	if f == snapshotKey {
		k.Account = d.str()
	}
	k.ID, k.Description = d.str(), d.str()
	k.Spec, k.Usage, k.Origin, k.Protection, k.CreatorType = d.enumIn(f), d.enumIn(f), d.enumIn(f), d.enumIn(f), d.enumIn(f)
	k.Product = d.str()
	k.State = KeyState(d.u8())
	k.Created, k.DeleteDate = d.varint(), d.varint()
	k.DeletionProtection, k.DeletionProtectionDescription = d.bool(), d.str()
	explicit := f == snapshotKey || d.bool()
	if explicit {
		k.PrimaryVersion = d.str()
	}
	k.PrimarySeals = d.uvarint()
	n := d.length(1) // each id takes at least its length byte
	for range n {
		versions = append(versions, d.str())
	}
	if n > 0 {
		k.Versions = versions
		if last := versions[n-1]; !explicit || last == k.PrimaryVersion {
			k.PrimaryVersion = last // one copy, as CreateKey and RotateKey make
		}
	}
	k.LastRotation, k.RotationInterval = d.varint(), d.varint()
	k.Tags = decodeTags(d)
	k.Revision = d.uvarint()
	if !k.State.valid() && d.err == nil {
		d.fail("key state")
	}
}

// key decodes the item's key. Records are written only by putKey, so a
// record that does not decode is a bug, not bad input.
func (it keyItem) key() *Key {
	k := new(Key)
	it.decodeInto(k)
	it.setPrimary(k)
	return k
}

// setPrimary sets k's primary version to the item's.
func (it keyItem) setPrimary(k *Key) {
	if it.prim != "" {
		k.pv = versionItem{rec: it.prim}.decode()
		k.primary = &k.pv
	}
}

// decodeInto sets k's fields from the item's record, all but the primary
// version, reusing k.Versions' array. It returns the arena ref of the
// primary version's entry the record holds (0: none).
func (it keyItem) decodeInto(k *Key) uint64 {
	d := viewDecoder(it.rec)
	k.Account = it.account
	k.decode(&d, recordKey)
	pref := d.u64()
	if err := d.done("key record"); err != nil {
		panic(err)
	}
	return pref
}

// A key's record ends with the arena ref of its primary version's entry, so
// a reader of the hash index finds the version without probing the index
// for it: one cache miss fewer per GenerateDataKey and Encrypt at a million
// keys. The writer keeps the ref exact — putKey looks it up, and moving the
// version (evacuate) rewrites the key's record — so a published state's key
// record names the version entry current in that state, in a chunk its
// chunks-by-id table holds. 0 when the index does not hold the version
// (refs beyond its 20 bits, or a key restored before its versions, until
// Restore fills it in: setPrimaryRef).
const primaryRefSize = 8

// setPrimaryRef writes ref into rec, a key record Restore just added to an
// arena no state has published yet: the one time a record changes.
func setPrimaryRef(rec string, ref uint64) {
	b := unsafe.Slice(unsafe.StringData(rec), len(rec))
	binary.BigEndian.PutUint64(b[len(b)-primaryRefSize:], ref)
}

// encodeRecord appends v's record. It is also the version's snapshot
// record: Persist writes it as it is (the golden snapshot test guards both).
func (v *Version) encodeRecord(e *encoder) {
	e.str(v.ID)
	e.str(v.Account)
	e.str(v.KeyID)
	e.varint(v.Created)
	e.bytes(v.Material)
}

// putVersion stores v, which then knows its record, and returns its
// entry's ref.
func (s *State) putVersion(v *Version) uint64 {
	e := s.arena.encoder()
	v.encodeRecord(&e)
	var ref uint64
	v.rec, ref = s.arena.put(arenaVersion, "", v.ID, e.b)
	if old, ok := s.versions.ReplaceOrInsert(versionItem{idp: prefix8(v.ID), rec: v.rec}); ok {
		s.arena.release(arenaVersion, "", old.rec)
	}
	return ref
}

// deleteVersion removes the version with id.
func (s *State) deleteVersion(id string) {
	if old, ok := s.versions.Delete(searchVersion(id)); ok {
		s.arena.drop(arenaVersion, "", id, old.rec)
	}
}

// decode returns the item's version.
func (it versionItem) decode() Version {
	d := viewDecoder(it.rec)
	v := Version{ID: d.str(), Account: d.str(), KeyID: d.str(), Created: d.varint(), Material: d.bytes(), rec: it.rec}
	if err := d.done("version record"); err != nil {
		panic(err)
	}
	return v
}

// putKey stores k, whose primary version is stored already.
func (s *State) putKey(k *Key) {
	e := s.arena.encoder()
	k.encode(&e, recordKey)
	e.u64(s.arena.index.ref(s.arena.byID, arenaVersion, "", k.PrimaryVersion))
	it := keyItem{idp: prefix8(k.ID), account: k.Account}
	it.rec, _ = s.arena.put(arenaKey, k.Account, k.ID, e.b)
	if p := k.primary; p != nil && p.rec != "" && p.ID == k.PrimaryVersion {
		it.prim = p.rec
	} else if v, ok := s.versions.Get(searchVersion(k.PrimaryVersion)); ok {
		it.prim = v.rec
	}
	if old, ok := s.keys.ReplaceOrInsert(it); ok {
		s.arena.release(arenaKey, old.account, old.rec)
	}
}

// deleteKey removes the key with id in account.
func (s *State) deleteKey(account, id string) {
	if old, ok := s.keys.Delete(searchKey(account, id)); ok {
		s.arena.drop(arenaKey, old.account, id, old.rec)
	}
}
