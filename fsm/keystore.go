package fsm

import (
	"cmp"
	"encoding/binary"
	"fmt"
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

// Tree items hold no pointer but a key's account, whose string every key
// of the account shares: the collector scans the trees' nodes every
// cycle, and at a million keys items holding their records (and a key its
// primary version's) as strings were three million pointers into arena
// chunks for it to look up. A forced collection over a million keys and
// versions on one core took 103 ms with them, 50 ms without (a throw-away
// test; numbering accounts would save 5 ms more). So an item holds its id
// inline, packed into words
// (packID), and its record's arena entry as a ref, which a state resolves
// through the chunks by id of its time (State.record): the trees' less
// functions, shared by every clone, cannot. Ids are therefore bounded:
// crypto.NewKeyID makes 24-byte key ids and versions are named by 36-byte
// UUIDs; the state machine refuses longer ones (validIDs).
const (
	maxKeyIDLen     = 32
	maxVersionIDLen = 40
)

// keyItem indexes a key by (account, id).
type keyItem struct {
	account string
	id      [maxKeyIDLen / 8]uint64 // packID
	n       uint8                   // the id's length; maxKeyIDLen+1 in a search for a longer id
	ref     uint64                  // the key's arena entry
}

// searchKey is the item a lookup of (account, id) compares with. An id too
// long to store orders as its packed prefix with a length beyond the
// longest stored id's, so it equals no item and ranges over items still
// start where they would for the full id.
func searchKey(account, id string) keyItem {
	it := keyItem{account: account}
	it.n = packID(it.id[:], id)
	return it
}

// versionItem indexes a key version by id.
type versionItem struct {
	id  [maxVersionIDLen / 8]uint64
	n   uint8
	ref uint64 // the version's arena entry
}

func searchVersion(id string) versionItem {
	var it versionItem
	it.n = packID(it.id[:], id)
	return it
}

// validIDs reports whether the key store can hold a key and a version with
// these ids.
func validIDs(keyID, versionID string) bool {
	return keyID != "" && versionID != "" && len(keyID) <= maxKeyIDLen && len(versionID) <= maxVersionIDLen
}

// packID sets w to id's bytes, big-endian and zero-padded, and returns
// id's length, or len(w)*8+1 for an id longer than w holds (w then holds
// its prefix).
func packID(w []uint64, id string) uint8 {
	var b [maxVersionIDLen]byte
	n := min(len(id), 8*len(w)+1)
	copy(b[:8*len(w)], id)
	for i := range w {
		w[i] = binary.BigEndian.Uint64(b[8*i:])
	}
	return uint8(n)
}

// compareIDs orders packed ids as their strings: by their words, then by
// length (zero padding sorts below every byte, and an id's own zero bytes
// are told apart from padding by its length).
func compareIDs(a, b []uint64, an, bn uint8) int {
	for i := range a {
		if a[i] != b[i] {
			return cmp.Compare(a[i], b[i])
		}
	}
	return cmp.Compare(an, bn)
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

// chunks returns the chunks by id that s's items' refs resolve through:
// the arena's current ones for the writer's state, those of its time for
// a published one.
func (s *State) chunks() [][]byte {
	if s.lookup.tab != nil {
		return s.lookup.chunks
	}
	return s.arena.byID
}

// record returns the record of the arena entry at ref, an item's. Items
// are written only by the writer, with refs of entries it wrote, so a ref
// that names no entry is a bug, not bad input.
func (s *State) record(ref uint64) string {
	_, _, rec, ok := entryAt(s.chunks(), ref)
	if !ok {
		panic(fmt.Sprintf("fsm: a key store item names no arena entry (ref %#x)", ref))
	}
	return rec
}

// decodeKeyRecord sets k's fields from rec, a key record of account, all
// but the primary version, reusing k.Versions' array. It returns the arena
// ref of the primary version's entry the record holds (0: none). Records
// are written only by putKey, so a record that does not decode is a bug,
// not bad input.
func decodeKeyRecord(rec, account string, k *Key) uint64 {
	d := viewDecoder(rec)
	k.Account = account
	k.decode(&d, recordKey)
	pref := d.u64()
	if err := d.done("key record"); err != nil {
		panic(err)
	}
	return pref
}

// setPrimary sets k's primary version: the entry at pref, the ref k's
// record holds, or else the version's own entry.
func (s *State) setPrimary(k *Key, pref uint64) {
	if k.PrimaryVersion == "" {
		return
	}
	rec, ok := versionAt(s.chunks(), pref, k.PrimaryVersion)
	if !ok {
		if rec, ok = s.versionRecord(k.PrimaryVersion); !ok {
			return
		}
	}
	k.pv = decodeVersionRecord(rec)
	k.primary = &k.pv
}

// A key's record ends with the arena ref of its primary version's entry, so
// a reader finds the version without looking it up by id: one cache miss
// fewer per GenerateDataKey and Encrypt at a million keys. The writer keeps
// the ref exact — putKey takes it from the version's item, and moving the
// version (evacuate) rewrites the key's record — so a key record names the
// version entry current in the states that hold the record, in a chunk
// their chunks by id hold. 0 for a key restored before its versions, until
// Restore fills it in (setPrimaryRef).
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

// putVersion stores v and returns its entry's ref.
func (s *State) putVersion(v *Version) uint64 {
	e := s.arena.encoder()
	v.encodeRecord(&e)
	it := searchVersion(v.ID)
	it.ref = s.arena.put(arenaVersion, "", v.ID, e.b)
	if old, ok := s.versions.ReplaceOrInsert(it); ok {
		s.arena.release(old.ref)
	}
	return it.ref
}

// deleteVersion removes the version with id.
func (s *State) deleteVersion(id string) {
	if old, ok := s.versions.Delete(searchVersion(id)); ok {
		s.arena.drop(arenaVersion, "", id, old.ref)
	}
}

// decodeVersionRecord returns the version a version record holds.
func decodeVersionRecord(rec string) Version {
	d := viewDecoder(rec)
	v := Version{ID: d.str(), Account: d.str(), KeyID: d.str(), Created: d.varint(), Material: d.bytes()}
	if err := d.done("version record"); err != nil {
		panic(err)
	}
	return v
}

// putKey stores k, whose primary version is stored already.
func (s *State) putKey(k *Key) {
	e := s.arena.encoder()
	k.encode(&e, recordKey)
	var pref uint64
	if v, ok := s.versions.Get(searchVersion(k.PrimaryVersion)); ok && k.PrimaryVersion != "" {
		pref = v.ref
	}
	e.u64(pref)
	it := searchKey(k.Account, k.ID)
	it.ref = s.arena.put(arenaKey, k.Account, k.ID, e.b)
	if old, ok := s.keys.ReplaceOrInsert(it); ok {
		s.arena.release(old.ref)
	}
}

// deleteKey removes the key with id in account.
func (s *State) deleteKey(account, id string) {
	if old, ok := s.keys.Delete(searchKey(account, id)); ok {
		s.arena.drop(arenaKey, account, id, old.ref)
	}
}
