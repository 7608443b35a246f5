package fsm

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkms/raftkms/trail"
)

// Limits Apply enforces.
const (
	MaxAliasesPerKey  = 50
	MaxVersionsPerKey = 1000
	MinPendingDays    = 7
	MaxPendingDays    = 366

	// MaxSeals caps the encryptions reserved per key version. NIST SP
	// 800-38D allows 2^32 AES-GCM invocations with random IVs per key; the
	// 2^28 headroom covers what nodes may seal while a reservation is in
	// flight (at most one grant each).
	MaxSeals = 1<<32 - 1<<28
	// RotateAtSeals is where the leader rotates a key so its new primary
	// version takes over long before MaxSeals.
	RotateAtSeals = 1 << 31
)

// Config configures an FSM.
type Config struct {
	// OnDestroy, if set, is called after Apply destroyed key versions, with
	// their ids, so a node can drop their material from memory. It runs on
	// the apply goroutine and must be quick.
	OnDestroy func(versionIDs []string)
	// OnRestore, if set, is called after Restore replaced the whole state.
	OnRestore func()
	// OnTrail, if set, is called after Apply sealed trail records, with
	// them in seq order, so a node can write them to its segment files
	// (trail.Archive) before they leave the state's window. It runs on the
	// apply goroutine, in commit order; records is reused once it returns.
	OnTrail func(records []trail.Sealed)
	// BeforePersist, if set, is called before a snapshot is written: the
	// records that left the window before the snapshot must be durable in
	// the segment files before the log entries that hold them are dropped.
	BeforePersist func() error
}

// FSM is the replicated state machine. It implements raft.BatchingFSM.
type FSM struct {
	cfg Config

	mu sync.Mutex // serialises Apply, Snapshot and Restore
	w  *State     // the writer's state; shares nodes with published ones
	dd dedup

	cur     atomic.Pointer[State]         // the published, immutable state
	changed atomic.Pointer[chan struct{}] // closed when a new state is published

	entries, bytes atomic.Uint64 // log entries applied since start, and their data's size

	// sealed is the slice the last batch handed to OnTrail, emptied, for
	// the next batch's records (under mu).
	sealed []trail.Sealed
}

var _ raft.BatchingFSM = (*FSM)(nil)

// New returns an FSM with empty state.
func New(cfg Config) *FSM {
	f := &FSM{cfg: cfg, w: newState(), dd: newDedup()}
	ch := make(chan struct{})
	f.changed.Store(&ch)
	f.cur.Store(f.w.clone())
	return f
}

// EntrySize returns the average size in bytes of the log entries this FSM
// applied since it started, or 0 before the first.
func (f *FSM) EntrySize() uint64 {
	n := f.entries.Load()
	if n == 0 {
		return 0
	}
	return f.bytes.Load() / n
}

// publish makes st the current state and wakes everyone waiting for a change.
func (f *FSM) publish(st *State) {
	f.cur.Store(st)
	ch := make(chan struct{})
	close(*f.changed.Swap(&ch))
}

// Changed returns a channel that is closed when a newer state is published.
func (f *FSM) Changed() <-chan struct{} { return *f.changed.Load() }

// WaitIndex waits until the published state has applied index i.
func (f *FSM) WaitIndex(ctx context.Context, i uint64) error {
	for {
		ch := f.Changed()
		if f.State().Index() >= i {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// State returns the current published state. It never changes; call State
// again to see later writes.
func (f *FSM) State() *State { return f.cur.Load() }

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch implements raft.BatchingFSM. It applies the commands in order
// and publishes one new State for the batch. An entry that does not decode
// halts the node: skipping it would make this replica diverge silently.
func (f *FSM) ApplyBatch(logs []*raft.Log) []interface{} {
	f.mu.Lock()
	out := make([]interface{}, len(logs))
	t := txn{st: f.w, dd: &f.dd, sealed: f.sealed}
	f.sealed = nil
	var size uint64
	for i, l := range logs {
		size += uint64(len(l.Data))
		t.index = l.Index
		if l.Type == raft.LogCommand {
			h, c, err := Decode(l.Data)
			if err != nil {
				panic(fmt.Sprintf("fsm: cannot apply committed entry at index %d term %d (type byte %d): %v",
					l.Index, l.Term, typeByte(l.Data), err))
			}
			out[i] = t.run(h, c)
			switch c.(type) {
			case *TrailAppend, *TrailShip: // records change nothing a read depends on
			default:
				f.w.changeIndex = l.Index
			}
		}
		f.w.index = l.Index
	}
	f.w.compact()
	f.publish(f.w.clone())
	destroyed, sealed := t.destroyed, t.sealed
	f.mu.Unlock()
	f.entries.Add(uint64(len(logs)))
	f.bytes.Add(size)
	if len(destroyed) > 0 && f.cfg.OnDestroy != nil {
		f.cfg.OnDestroy(destroyed)
	}
	if len(sealed) > 0 && f.cfg.OnTrail != nil {
		f.cfg.OnTrail(sealed)
	}
	clear(sealed) // the records' contents are the window's now
	f.mu.Lock()
	f.sealed = sealed[:0]
	f.mu.Unlock()
	return out
}

func typeByte(b []byte) int {
	if len(b) < 2 {
		return -1
	}
	return int(b[1])
}

// txn applies commands to the writer state.
type txn struct {
	st        *State
	dd        *dedup
	index     uint64 // Raft index of the command being applied
	now       int64
	destroyed []string
	sealed    []trail.Sealed // trail records sealed by this batch
	content   []byte         // where their contents go (reserveContent)
}

func (t *txn) run(h Header, c Command) Result {
	t.now = max(t.st.now, h.Time)
	t.st.now = t.now
	t.dd.expire(t.now)
	if e, ok := t.dd.request(h.RequestID); ok {
		r := Result{Err: CodeError(e.code)}
		if e.keyID != "" {
			r.Key, _ = t.st.Key(e.account, e.keyID)
		}
		return r
	}
	var r Result
	if h.NonceFP != 0 {
		r.Err = t.dd.checkNonce(h.NonceFP, h.NonceMinute, t.now)
	}
	if r.Err == nil {
		r = c.apply(t)
	}
	e := reqEntry{time: t.now, code: ErrorCode(r.Err)}
	if r.Key != nil {
		e.account, e.keyID = r.Key.Account, r.Key.ID
	}
	t.dd.recordRequest(h.RequestID, e)
	return r
}

func fail(err error) Result { return Result{Err: err} }

// key returns a live key of account by id or alias: a key whose deletion is
// due counts as not found.
func (t *txn) key(account, ref string) (*Key, error) {
	k, err := t.st.ResolveKey(account, ref)
	if err != nil {
		return nil, err
	}
	if k.Gone(t.now) {
		return nil, ErrKeyNotFound
	}
	return k, nil
}

// putKey stores k, replacing old (nil for a new key), and keeps the due
// index in step.
func (t *txn) putKey(old, k *Key) Result {
	k.Revision = t.index
	return t.storeKey(old, k)
}

// storeKey is putKey keeping k's revision: for changes no policy decides on.
func (t *txn) storeKey(old, k *Key) Result {
	if old != nil {
		for _, d := range dueItems(old) {
			t.st.due.Delete(d)
		}
	}
	// What the state keeps owns its strings: a key read from the state
	// views its arena record and carries the account id its command named,
	// so a changed key would otherwise pin a dropped chunk from the due
	// index, and give each key item an account string of its own — a
	// million small objects for the collector to mark at a million keys,
	// and two string loads in every comparison of the keys' tree.
	k.Account = t.st.accountID(k.Account)
	for _, d := range dueItems(k) {
		d.id = strings.Clone(d.id)
		t.st.due.ReplaceOrInsert(d)
	}
	t.st.putKey(k)
	return Result{Key: k}
}

// change applies edit to a copy of the key ref names and stores it.
func (t *txn) change(account, ref string, edit func(k *Key) error) Result {
	old, err := t.key(account, ref)
	if err != nil {
		return fail(err)
	}
	k := old.clone()
	if err := edit(k); err != nil {
		return fail(err)
	}
	return t.putKey(old, k)
}

func (c *CreateAccount) apply(t *txn) Result {
	if c.ID == "" || c.AccessKeyID == "" || len(c.Secret) == 0 {
		return fail(ErrInvalidCommand)
	}
	if _, ok := t.st.Account(c.ID); ok {
		return fail(ErrAccountExists)
	}
	if _, ok := t.st.AccessKey(c.AccessKeyID); ok {
		return fail(ErrAccessKeyExists)
	}
	if c.System {
		sys := false
		t.st.Accounts(func(a *Account) bool { sys = a.System; return !sys })
		if sys {
			return fail(ErrAccountExists) // there is one system account
		}
	}
	a := &Account{ID: c.ID, Name: c.Name, Created: t.now, System: c.System}
	t.st.accounts.ReplaceOrInsert(accountItem{a.ID, a})
	t.putAccessKey(&AccessKey{ID: c.AccessKeyID, Account: c.ID, Kind: PrincipalRoot, Active: true, Secret: c.Secret, Created: t.now})
	t.bumpPolicy()
	return Result{Account: a}
}

func (c *CreateKey) apply(t *txn) Result {
	if !validIDs(c.ID, c.VersionID) || len(c.Material) == 0 || strings.HasPrefix(c.ID, AliasPrefix) {
		return fail(ErrInvalidCommand)
	}
	if _, ok := t.st.Account(c.Account); !ok {
		return fail(ErrAccountNotFound)
	}
	if _, ok := t.st.Key(c.Account, c.ID); ok {
		return fail(ErrKeyExists)
	}
	if _, ok := t.st.Version(c.VersionID); ok {
		return fail(ErrVersionExists)
	}
	k := &Key{
		Account: c.Account, ID: c.ID, Description: c.Description,
		Spec: c.Spec, Usage: c.Usage, Origin: c.Origin, Protection: c.Protection, CreatorType: c.CreatorType,
		State: KeyEnabled, Created: t.now,
		PrimaryVersion: c.VersionID, Versions: []string{c.VersionID}, LastRotation: t.now,
		RotationInterval: c.RotationInterval, Tags: c.Tags,
	}
	v := &Version{ID: c.VersionID, Account: t.st.accountID(c.Account), KeyID: c.ID, Created: t.now, Material: c.Material}
	t.st.putVersion(v)
	k.primary = v
	return t.putKey(nil, k)
}

// userChange is change for the changes users make: a service key's
// lifecycle belongs to its product.
func (t *txn) userChange(account, ref string, edit func(k *Key) error) Result {
	return t.change(account, ref, func(k *Key) error {
		if k.IsServiceKey() {
			return ErrServiceKey
		}
		return edit(k)
	})
}

func (c *UpdateKeyDescription) apply(t *txn) Result {
	return t.userChange(c.Account, c.KeyRef, func(k *Key) error {
		k.Description = c.Description
		return nil
	})
}

// setEnabled is EnableKey and DisableKey: both are refused while the key is
// pending deletion or pending import (Rejected.StateModifiedFailed).
func setEnabled(t *txn, r keyRef, to KeyState) Result {
	return t.userChange(r.Account, r.KeyRef, func(k *Key) error {
		if k.State != KeyEnabled && k.State != KeyDisabled {
			return ErrStateConflict
		}
		k.State = to
		return nil
	})
}

func (c *EnableKey) apply(t *txn) Result  { return setEnabled(t, c.keyRef, KeyEnabled) }
func (c *DisableKey) apply(t *txn) Result { return setEnabled(t, c.keyRef, KeyDisabled) }

func (c *ScheduleKeyDeletion) apply(t *txn) Result {
	if c.PendingDays < MinPendingDays || c.PendingDays > MaxPendingDays {
		return fail(ErrInvalidCommand)
	}
	return t.userChange(c.Account, c.KeyRef, func(k *Key) error {
		if k.State == KeyPendingDeletion {
			return ErrStateConflict
		}
		if k.DeletionProtection {
			return ErrDeletionProtect
		}
		k.State = KeyPendingDeletion
		k.DeleteDate = t.now + c.PendingDays*int64(24*time.Hour)
		return nil
	})
}

func (c *CancelKeyDeletion) apply(t *txn) Result {
	return t.userChange(c.Account, c.KeyRef, func(k *Key) error {
		if k.State != KeyPendingDeletion {
			return ErrStateConflict
		}
		k.State = KeyEnabled
		k.DeleteDate = 0
		return nil
	})
}

func (c *SetDeletionProtection) apply(t *txn) Result {
	return t.userChange(c.Account, c.KeyRef, func(k *Key) error {
		if k.State == KeyPendingDeletion {
			return ErrStateConflict
		}
		k.DeletionProtection = c.Enable
		k.DeletionProtectionDescription = ""
		if c.Enable {
			k.DeletionProtectionDescription = c.Description
		}
		return nil
	})
}

func (c *DestroyKey) apply(t *txn) Result {
	k, ok := t.st.Key(c.Account, c.KeyID)
	if !ok {
		return fail(ErrKeyNotFound)
	}
	if k.State != KeyPendingDeletion || t.now < k.DeleteDate {
		return fail(ErrNotDue)
	}
	var aliases []*Alias
	t.st.KeyAliases(k.Account, k.ID, func(a *Alias) bool {
		aliases = append(aliases, a)
		return true
	})
	for _, a := range aliases {
		t.deleteAlias(a)
	}
	for _, v := range k.Versions {
		t.st.deleteVersion(v)
	}
	t.st.deleteKey(k.Account, k.ID)
	for _, d := range dueItems(k) {
		t.st.due.Delete(d)
	}
	t.destroyed = append(t.destroyed, k.Versions...)
	return Result{}
}

func (t *txn) putAlias(a *Alias) {
	a.Account, a.KeyID = t.st.accountID(a.Account), strings.Clone(a.KeyID) // KeyID may view a key's record (storeKey)
	t.st.aliases.ReplaceOrInsert(aliasItem{a.Account, a.Name, a})
	t.st.keyAliases.ReplaceOrInsert(keyAliasItem{a.Account, a.KeyID, a.Name, a})
}

func (t *txn) deleteAlias(a *Alias) {
	t.st.aliases.Delete(aliasItem{account: a.Account, name: a.Name})
	t.st.keyAliases.Delete(keyAliasItem{account: a.Account, keyID: a.KeyID, name: a.Name})
}

// aliasTarget resolves the key an alias command points at and checks that
// it can take one more alias.
func (t *txn) aliasTarget(account, ref string) (*Key, error) {
	if strings.HasPrefix(ref, AliasPrefix) {
		return nil, ErrInvalidCommand // an alias names a key, not another alias
	}
	k, err := t.key(account, ref)
	if err != nil {
		return nil, err
	}
	if k.IsServiceKey() {
		return nil, ErrServiceKey
	}
	n := 0
	t.st.KeyAliases(account, k.ID, func(*Alias) bool { n++; return true })
	if n >= MaxAliasesPerKey {
		return nil, ErrAliasLimit
	}
	return k, nil
}

func (c *CreateAlias) apply(t *txn) Result {
	if !strings.HasPrefix(c.Name, AliasPrefix) {
		return fail(ErrInvalidCommand)
	}
	if strings.HasPrefix(c.Name, ServiceAliasPrefix) {
		return fail(ErrServiceKey)
	}
	k, err := t.aliasTarget(c.Account, c.KeyRef)
	if err != nil {
		return fail(err)
	}
	if k.State == KeyPendingDeletion {
		return fail(ErrStateConflict)
	}
	if _, ok := t.st.Alias(c.Account, c.Name); ok {
		return fail(ErrAliasExists)
	}
	t.putAlias(&Alias{Account: c.Account, Name: c.Name, KeyID: k.ID, Created: t.now, Updated: t.now})
	return Result{Key: k}
}

func (c *UpdateAlias) apply(t *txn) Result {
	old, ok := t.st.Alias(c.Account, c.Name)
	if !ok {
		return fail(ErrAliasNotFound)
	}
	if strings.HasPrefix(c.Name, ServiceAliasPrefix) {
		return fail(ErrServiceKey)
	}
	k, err := t.aliasTarget(c.Account, c.KeyRef)
	if err != nil {
		return fail(err)
	}
	if k.State == KeyPendingDeletion {
		return fail(ErrPendingDeletion)
	}
	t.deleteAlias(old)
	t.putAlias(&Alias{Account: c.Account, Name: c.Name, KeyID: k.ID, Created: old.Created, Updated: t.now})
	return Result{Key: k}
}

func (c *DeleteAlias) apply(t *txn) Result {
	a, ok := t.st.Alias(c.Account, c.Name)
	if !ok {
		return fail(ErrAliasNotFound)
	}
	if strings.HasPrefix(c.Name, ServiceAliasPrefix) {
		return fail(ErrServiceKey)
	}
	t.deleteAlias(a)
	return Result{}
}

func (c *RotateKey) apply(t *txn) Result {
	if c.VersionID == "" || len(c.VersionID) > maxVersionIDLen || len(c.Material) == 0 { // KeyID may name an alias
		return fail(ErrInvalidCommand)
	}
	if _, ok := t.st.Version(c.VersionID); ok {
		return fail(ErrVersionExists)
	}
	v := &Version{ID: c.VersionID, Account: t.st.accountID(c.Account), KeyID: c.KeyID, Created: t.now, Material: c.Material}
	return t.change(c.Account, c.KeyID, func(k *Key) error {
		switch {
		case c.Reason == RotateScheduled && (k.RotationInterval == 0 || k.State != KeyEnabled || t.now < k.NextRotation()):
			return ErrNotDue
		case c.Reason == RotateExhausted && (k.State != KeyEnabled || k.PrimarySeals < RotateAtSeals):
			return ErrNotDue
		case k.State != KeyEnabled:
			return ErrStateConflict
		case len(k.Versions) >= MaxVersionsPerKey:
			return ErrVersionLimit
		}
		k.Versions = append(k.Versions[:len(k.Versions):len(k.Versions)], c.VersionID)
		k.PrimaryVersion, k.primary = c.VersionID, v
		k.PrimarySeals = 0
		k.LastRotation = t.now
		t.st.putVersion(v) // checks passed: the key is stored next
		return nil
	})
}

func (c *ReserveSeals) apply(t *txn) Result {
	if c.Count == 0 || c.Count > MaxSeals {
		return fail(ErrInvalidCommand)
	}
	old, err := t.key(c.Account, c.KeyID)
	switch {
	case err != nil:
		return fail(err)
	case old.PrimaryVersion != c.VersionID:
		return fail(ErrNotPrimary)
	case old.PrimarySeals+c.Count > MaxSeals:
		return fail(ErrSealLimit)
	}
	k := old.clone()
	k.PrimarySeals += c.Count
	return t.storeKey(old, k) // a seal count is not what policies decide on
}

// apply reserves each item, recording each one's outcome in Codes.
func (c *ReserveSealsBatch) apply(t *txn) Result {
	if len(c.Items) == 0 || len(c.Items) > MaxReserveBatch {
		return fail(ErrInvalidCommand)
	}
	r := Result{Codes: make([]uint16, len(c.Items))}
	for i := range c.Items {
		r.Codes[i] = ErrorCode(c.Items[i].apply(t).Err)
	}
	return r
}
