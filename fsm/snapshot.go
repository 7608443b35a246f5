package fsm

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/hashicorp/raft"

	"github.com/raftkms/raftkms/trail"
)

// Snapshot format (version 3):
//
//	"RKMSSNAP" ‖ version byte ‖ sections ‖ SHA-256 of everything before it
//
// The sections are meta, accounts, access keys, keys, versions, aliases,
// users, service principals, user policies, Rego modules, the trail head,
// the trail window, dedup and the journal marks (TrailShip; not in version 2, which Restore
// still reads), in that order. Each holds a uvarint count, then that many records,
// each a uvarint length and the record. Records are written in key order,
// so equal states give equal bytes (the determinism test compares them).
// Secrets inside are only ever root-key-wrapped, as in the log.
const (
	snapshotMagic   = "RKMSSNAP"
	snapshotVersion = 3
)

// ErrSnapshot is returned (wrapped) by Restore for a damaged or foreign snapshot.
var ErrSnapshot = errors.New("fsm: invalid snapshot")

// Snapshot implements raft.FSM. It captures the published State (a pointer:
// the state is immutable) and a view of the duplicate filters (a pointer
// per chunk of request ids and per minute of nonces); Persist encodes and
// writes them while Apply goes on. Apply waits for Snapshot, so Snapshot
// does nothing that grows with the state.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var j encoder
	f.dd.encodeJournals(&j) // a mark per node: small
	return &snapshot{st: f.cur.Load(), dedup: f.dd.capture(), journals: j.b, beforePersist: f.cfg.BeforePersist}, nil
}

type snapshot struct {
	st            *State
	dedup         dedupView // encoded by Persist, not by Snapshot, which holds up Apply
	journals      []byte
	beforePersist func() error
}

// Persist implements raft.FSMSnapshot.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if s.beforePersist != nil {
		if err := s.beforePersist(); err != nil {
			sink.Cancel()
			return err
		}
	}
	if err := s.write(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s *snapshot) Release() {}

// WriteSnapshot writes a snapshot of the current state to w, in the format
// Restore reads. (It is what `kmsctl cluster snapshot save` downloads.)
func (f *FSM) WriteSnapshot(w io.Writer) error {
	s, err := f.Snapshot()
	if err != nil {
		return err
	}
	return s.(*snapshot).write(w)
}

// write writes the snapshot to w.
func (s *snapshot) write(w io.Writer) error {
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 1<<16)
	sw := sectionWriter{w: bw}
	bw.WriteString(snapshotMagic)
	bw.WriteByte(snapshotVersion)
	st := s.st

	sw.section(1, func(e *encoder) {
		e.uvarint(st.index)
		e.varint(st.now)
		e.uvarint(st.policyVersion)
	})
	sw.begin(st.accounts.Len())
	st.accounts.Ascend(func(it accountItem) bool {
		a := it.a
		return sw.record(func(e *encoder) { e.str(a.ID); e.str(a.Name); e.varint(a.Created); e.bool(a.System) })
	})
	sw.begin(st.accessKeys.Len())
	st.accessKeys.Ascend(func(it accessKeyItem) bool {
		k := it.k
		return sw.record(func(e *encoder) {
			e.str(k.ID)
			e.str(k.Account)
			e.u8(uint8(k.Kind))
			e.str(k.Principal)
			e.bool(k.Active)
			e.bytes(k.Secret)
			e.varint(k.Created)
			e.varint(k.LastUsed)
		})
	})
	sw.begin(st.keys.Len())
	var k Key
	st.keys.Ascend(func(it keyItem) bool {
		decodeKeyRecord(st.record(it.ref), it.account, &k)
		return sw.record(func(e *encoder) { k.encode(e, snapshotKey) })
	})
	sw.begin(st.versions.Len())
	st.versions.Ascend(func(it versionItem) bool { // a version's record is its snapshot record
		return sw.record(func(e *encoder) { e.b = append(e.b, st.record(it.ref)...) })
	})
	sw.begin(st.aliases.Len())
	st.aliases.Ascend(func(it aliasItem) bool {
		a := it.a
		return sw.record(func(e *encoder) {
			e.str(a.Account)
			e.str(a.Name)
			e.str(a.KeyID)
			e.varint(a.Created)
			e.varint(a.Updated)
		})
	})
	sw.begin(st.users.Len())
	st.users.Ascend(func(it pairItem[*User]) bool {
		u := it.v
		return sw.record(func(e *encoder) { e.str(u.Account); e.str(u.Name); e.varint(u.Created) })
	})
	sw.begin(st.services.Len())
	st.services.Ascend(func(it pairItem[*ServicePrincipal]) bool {
		sp := it.v
		return sw.record(func(e *encoder) { e.str(sp.Account); e.str(sp.Product); e.varint(sp.Created) })
	})
	sw.begin(st.policies.Len())
	st.policies.Ascend(func(it tripleItem[*UserPolicy]) bool {
		p := it.v
		return sw.record(func(e *encoder) {
			e.str(p.Account)
			e.str(p.User)
			e.str(p.Name)
			e.str(p.Document)
			e.varint(p.Created)
			e.varint(p.Updated)
		})
	})
	sw.begin(st.modules.Len())
	st.modules.Ascend(func(it pairItem[*RegoModule]) bool {
		m := it.v
		return sw.record(func(e *encoder) { e.str(m.Name); e.str(m.Source); e.varint(m.Created); e.varint(m.Updated) })
	})
	sw.section(1, func(e *encoder) { e.uvarint(st.trailSeq); e.b = append(e.b, st.trailHash[:]...) })
	sw.begin(st.trail.n)
	st.trail.ascend(0, func(s trail.Sealed) bool {
		return sw.record(func(e *encoder) { e.bytes(s.Content); e.b = append(e.b, s.Hash[:]...) })
	})
	sw.section(1, s.dedup.encode)
	sw.section(1, func(e *encoder) { e.b = append(e.b, s.journals...) })
	if sw.err != nil {
		return sw.err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	_, err := w.Write(h.Sum(nil))
	return err
}

func decodeKey(d *decoder) *Key {
	k := new(Key)
	k.decode(d, snapshotKey)
	return k
}

// sectionWriter writes counted, length-prefixed records, reusing one buffer.
type sectionWriter struct {
	w   *bufio.Writer
	e   encoder
	err error
}

func (s *sectionWriter) begin(n int) {
	var b [binary.MaxVarintLen64]byte
	_, err := s.w.Write(b[:binary.PutUvarint(b[:], uint64(n))])
	s.setErr(err)
}

func (s *sectionWriter) record(fill func(*encoder)) bool {
	s.e.b = s.e.b[:0]
	fill(&s.e)
	var b [binary.MaxVarintLen64]byte
	_, err := s.w.Write(b[:binary.PutUvarint(b[:], uint64(len(s.e.b)))])
	s.setErr(err)
	_, err = s.w.Write(s.e.b)
	s.setErr(err)
	return s.err == nil
}

func (s *sectionWriter) section(n int, fill func(*encoder)) {
	s.begin(n)
	s.record(fill)
}

func (s *sectionWriter) setErr(err error) {
	if s.err == nil {
		s.err = err
	}
}

// Restore implements raft.FSM: it reads a whole snapshot, checks its
// checksum, and only then replaces the state, so a damaged snapshot
// changes nothing.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, dd, err := readSnapshot(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.w, f.dd = st, dd
	f.publish(st.clone())
	f.mu.Unlock()
	if f.cfg.OnRestore != nil {
		f.cfg.OnRestore()
	}
	return nil
}

// sectionReader reads what sectionWriter wrote while hashing it.
type sectionReader struct {
	r   *bufio.Reader
	h   hash.Hash
	buf []byte
	err error
}

func (s *sectionReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.h.Write(p[:n])
	return n, err
}

func (s *sectionReader) ReadByte() (byte, error) {
	b, err := s.r.ReadByte()
	if err == nil {
		s.h.Write([]byte{b})
	}
	return b, err
}

func (s *sectionReader) count() int {
	if s.err != nil {
		return 0
	}
	n, err := binary.ReadUvarint(s)
	if err != nil || n > 1<<40 {
		s.fail("count", err)
		return 0
	}
	return int(n)
}

// records calls fn with a decoder over each record of the next section.
func (s *sectionReader) records(what string, fn func(d *decoder)) {
	n := s.count()
	for i := 0; i < n && s.err == nil; i++ {
		l, err := binary.ReadUvarint(s)
		if err != nil || l > 1<<30 {
			s.fail(what, err)
			return
		}
		if cap(s.buf) < int(l) {
			s.buf = make([]byte, l)
		}
		s.buf = s.buf[:l]
		if _, err := io.ReadFull(s, s.buf); err != nil {
			s.fail(what, err)
			return
		}
		d := decoder{b: s.buf}
		fn(&d)
		if err := d.done(what); err != nil {
			s.fail(what, err)
		}
	}
}

func (s *sectionReader) fail(what string, err error) {
	if s.err == nil {
		s.err = fmt.Errorf("%w: %s: %v", ErrSnapshot, what, err)
	}
}

func readSnapshot(r io.Reader) (*State, dedup, error) {
	sr := &sectionReader{r: bufio.NewReaderSize(r, 1<<16), h: sha256.New()}
	head := make([]byte, len(snapshotMagic)+1)
	if _, err := io.ReadFull(sr, head); err != nil || string(head[:len(snapshotMagic)]) != snapshotMagic {
		return nil, dedup{}, fmt.Errorf("%w: not a raftkms snapshot", ErrSnapshot)
	}
	version := head[len(snapshotMagic)]
	if version != snapshotVersion && version != 2 {
		return nil, dedup{}, fmt.Errorf("%w: unknown version %d", ErrSnapshot, version)
	}
	st := newState()
	dd := newDedup()
	sr.records("meta", func(d *decoder) {
		st.index, st.now, st.policyVersion = d.uvarint(), d.varint(), d.uvarint()
		st.changeIndex = st.index
	})
	sr.records("account", func(d *decoder) {
		a := &Account{ID: d.str(), Name: d.str(), Created: d.varint(), System: d.bool()}
		st.accounts.ReplaceOrInsert(accountItem{a.ID, a})
	})
	sr.records("access key", func(d *decoder) {
		k := &AccessKey{ID: d.str(), Account: d.str(), Kind: PrincipalKind(d.u8()), Principal: d.str(),
			Active: d.bool(), Secret: d.bytes(), Created: d.varint(), LastUsed: d.varint()}
		st.accessKeys.ReplaceOrInsert(accessKeyItem{k.ID, k})
		st.principalKeys.ReplaceOrInsert(tripleItem[*AccessKey]{k.Account, principalKey(k.Kind, k.Principal), k.ID, k})
	})
	// A restored state shares its accounts' copies of their ids among its
	// keys and versions, as applied commands do: at a million keys, tens of
	// MB, and key lookups compare accounts without reading memory.
	sr.records("key", func(d *decoder) {
		k := decodeKey(d)
		if d.err == nil && !validIDs(k.ID, k.PrimaryVersion) {
			d.fail("key (an id longer than the key store holds)")
			return
		}
		k.Account = st.accountID(k.Account)
		st.putKey(k) // its primary version follows in the next section
		for _, di := range dueItems(k) {
			st.due.ReplaceOrInsert(di)
		}
	})
	sr.records("version", func(d *decoder) {
		v := &Version{ID: d.str(), Account: d.str(), KeyID: d.str(), Created: d.varint(), Material: d.bytes()}
		if d.err == nil && !validIDs(v.KeyID, v.ID) {
			d.fail("version (an id longer than the key store holds)")
			return
		}
		ref := st.putVersion(v)
		if it, ok := st.keys.Get(searchKey(v.Account, v.KeyID)); ok {
			var k Key
			rec := st.record(it.ref)
			if decodeKeyRecord(rec, it.account, &k) == 0 && k.PrimaryVersion == v.ID {
				setPrimaryRef(rec, ref)
			}
		}
	})
	sr.records("alias", func(d *decoder) {
		a := &Alias{Account: d.str(), Name: d.str(), KeyID: d.str(), Created: d.varint(), Updated: d.varint()}
		a.Account = st.accountID(a.Account)
		st.aliases.ReplaceOrInsert(aliasItem{a.Account, a.Name, a})
		st.keyAliases.ReplaceOrInsert(keyAliasItem{a.Account, a.KeyID, a.Name, a})
	})
	sr.records("user", func(d *decoder) {
		u := &User{Account: d.str(), Name: d.str(), Created: d.varint()}
		st.users.ReplaceOrInsert(pairItem[*User]{u.Account, u.Name, u})
	})
	sr.records("service principal", func(d *decoder) {
		sp := &ServicePrincipal{Account: d.str(), Product: d.str(), Created: d.varint()}
		st.services.ReplaceOrInsert(pairItem[*ServicePrincipal]{sp.Account, sp.Product, sp})
	})
	sr.records("user policy", func(d *decoder) {
		p := &UserPolicy{Account: d.str(), User: d.str(), Name: d.str(), Document: d.str(), Created: d.varint(), Updated: d.varint()}
		st.policies.ReplaceOrInsert(tripleItem[*UserPolicy]{p.Account, p.User, p.Name, p})
	})
	sr.records("rego module", func(d *decoder) {
		m := &RegoModule{Name: d.str(), Source: d.str(), Created: d.varint(), Updated: d.varint()}
		st.modules.ReplaceOrInsert(pairItem[*RegoModule]{b: m.Name, v: m})
	})
	sr.records("trail head", func(d *decoder) {
		st.trailSeq = d.uvarint()
		copy(st.trailHash[:], d.fixed(32))
	})
	sr.records("trail record", func(d *decoder) {
		ts := trail.Sealed{Content: d.bytes()}
		copy(ts.Hash[:], d.fixed(32))
		var err error
		if ts.Seq, ts.CommitTime, _, err = trail.PeekHeader(ts.Content); err != nil || st.trail.push(ts) != nil {
			d.fail("trail record")
		}
	})
	sr.records("dedup", func(d *decoder) { dd.decode(d) })
	if version >= 3 {
		sr.records("journal marks", func(d *decoder) { dd.decodeJournals(d) })
	}
	if sr.err != nil {
		return nil, dedup{}, sr.err
	}
	want := sr.h.Sum(nil)
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(sr.r, got); err != nil || !bytes.Equal(got, want) {
		return nil, dedup{}, fmt.Errorf("%w: checksum mismatch", ErrSnapshot)
	}
	if _, err := sr.r.ReadByte(); err != io.EOF {
		return nil, dedup{}, fmt.Errorf("%w: trailing bytes after checksum", ErrSnapshot)
	}
	return st, dd, nil
}
