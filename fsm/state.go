package fsm

import (
	"strings"

	"github.com/google/btree"
)

// treeDegree trades path-copy size (smaller is cheaper per write) against
// depth (larger is cheaper per read); 16 gives depth 5 at a million keys.
const treeDegree = 16

type aliasItem struct {
	account, name string
	a             *Alias
}

// keyAliasItem indexes aliases by the key they name.
type keyAliasItem struct {
	account, keyID, name string
	a                    *Alias
}

// DueKind says what is due for a key.
type DueKind uint8

// Scheduled changes the leader carries out.
const (
	DueDeletion  DueKind = 1 // DeleteDate reached: destroy the key
	DueRotation  DueKind = 2 // automatic rotation interval elapsed
	DueExhausted DueKind = 3 // the primary version passed RotateAtSeals: rotate now
)

// dueItem indexes keys by the time their next scheduled change is due. It
// is derived from the keys (rebuilt on restore, not in snapshots).
type dueItem struct {
	at          int64
	kind        DueKind
	account, id string
}

// pairItem keys a record by two strings (account and name).
type pairItem[T any] struct {
	a, b string
	v    T
}

func pairLess[T any](x, y pairItem[T]) bool {
	if x.a != y.a {
		return x.a < y.a
	}
	return x.b < y.b
}

// tripleItem keys a record by three strings.
type tripleItem[T any] struct {
	a, b, c string
	v       T
}

func tripleLess[T any](x, y tripleItem[T]) bool {
	if x.a != y.a {
		return x.a < y.a
	}
	if x.b != y.b {
		return x.b < y.b
	}
	return x.c < y.c
}

type accountItem struct {
	id string
	a  *Account
}

type accessKeyItem struct {
	id string
	k  *AccessKey
}

// keyLess and versionLess order items as their (account and) ids.
func keyLess(a, b keyItem) bool {
	if a.account != b.account { // equal accounts share one string (State.accountID): no load
		return a.account < b.account
	}
	return compareIDs(a.id[:], b.id[:], a.n, b.n) < 0
}
func versionLess(a, b versionItem) bool { return compareIDs(a.id[:], b.id[:], a.n, b.n) < 0 }
func aliasLess(a, b aliasItem) bool {
	if a.account != b.account {
		return a.account < b.account
	}
	return a.name < b.name
}
func keyAliasLess(a, b keyAliasItem) bool {
	if a.account != b.account {
		return a.account < b.account
	}
	if a.keyID != b.keyID {
		return a.keyID < b.keyID
	}
	return a.name < b.name
}
func dueLess(a, b dueItem) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	if a.kind != b.kind {
		return a.kind < b.kind
	}
	if a.account != b.account {
		return a.account < b.account
	}
	return a.id < b.id
}
func accountLess(a, b accountItem) bool     { return a.id < b.id }
func accessKeyLess(a, b accessKeyItem) bool { return a.id < b.id }

// State is one immutable version of the replicated state. Every read method
// is safe for concurrent use and takes no lock; a State obtained from
// FSM.State never changes.
type State struct {
	index uint64 // last applied Raft index
	// changeIndex is the Raft index of the last applied command that was
	// not a trail append: what a fenced write waits for lease holders to
	// apply. Derived (a restored state starts at its index).
	changeIndex uint64
	now         int64 // time of the last applied command (unix ns, never decreasing)

	keys     *btree.BTreeG[keyItem]
	versions *btree.BTreeG[versionItem]
	arena    *arena // the records of keys and versions; the writer's alone
	// lookup finds records in a published state (index.go); the writer's
	// own state has none and reads its trees.
	lookup     indexView
	aliases    *btree.BTreeG[aliasItem]
	keyAliases *btree.BTreeG[keyAliasItem]
	accounts   *btree.BTreeG[accountItem]
	accessKeys *btree.BTreeG[accessKeyItem]
	due        *btree.BTreeG[dueItem]

	users    *btree.BTreeG[pairItem[*User]]             // (account, name)
	services *btree.BTreeG[pairItem[*ServicePrincipal]] // (account, product)
	policies *btree.BTreeG[tripleItem[*UserPolicy]]     // (account, user, name)
	modules  *btree.BTreeG[pairItem[*RegoModule]]       // ("", name)
	// principalKeys indexes AccessKeys by owner: (account, kind+principal, id).
	principalKeys *btree.BTreeG[tripleItem[*AccessKey]]

	// trail is the window of the audit trail, by seq; trailSeq and
	// trailHash are the newest record's, kept when it leaves the window.
	trail     trailWindow
	trailSeq  uint64
	trailHash [32]byte

	// policyVersion is the Raft index of the last change to identities,
	// AccessKeys, user policies or Rego modules: decisions made under an
	// older version are stale.
	policyVersion uint64
}

func newState() *State {
	return &State{
		keys:       btree.NewG(treeDegree, keyLess),
		versions:   btree.NewG(treeDegree, versionLess),
		arena:      &arena{index: newHashIndex()},
		aliases:    btree.NewG(treeDegree, aliasLess),
		keyAliases: btree.NewG(treeDegree, keyAliasLess),
		accounts:   btree.NewG(treeDegree, accountLess),
		accessKeys: btree.NewG(treeDegree, accessKeyLess),
		due:        btree.NewG(treeDegree, dueLess),

		users:         btree.NewG(treeDegree, pairLess[*User]),
		services:      btree.NewG(treeDegree, pairLess[*ServicePrincipal]),
		policies:      btree.NewG(treeDegree, tripleLess[*UserPolicy]),
		modules:       btree.NewG(treeDegree, pairLess[*RegoModule]),
		principalKeys: btree.NewG(treeDegree, tripleLess[*AccessKey]),
	}
}

// clone returns a State sharing every tree node with s. Writes to either
// copy nodes first (copy-on-write), so a published clone stays immutable
// while the writer keeps changing s.
func (s *State) clone() *State {
	return &State{
		index:       s.index,
		changeIndex: s.changeIndex,
		now:         s.now,
		keys:        s.keys.Clone(),
		versions:    s.versions.Clone(),
		arena:       s.arena,
		lookup:      s.arena.index.view(s.arena.byID),
		aliases:     s.aliases.Clone(),
		keyAliases:  s.keyAliases.Clone(),
		accounts:    s.accounts.Clone(),
		accessKeys:  s.accessKeys.Clone(),
		due:         s.due.Clone(),

		users:         s.users.Clone(),
		services:      s.services.Clone(),
		policies:      s.policies.Clone(),
		modules:       s.modules.Clone(),
		principalKeys: s.principalKeys.Clone(),
		trail:         s.trail.snapshot(),
		trailSeq:      s.trailSeq,
		trailHash:     s.trailHash,
		policyVersion: s.policyVersion,
	}
}

// Index returns the Raft index of the last command applied to this State.
func (s *State) Index() uint64 { return s.index }

// ChangeIndex returns the Raft index of the last command applied to this
// State that was not a trail append (TrailAppend changes nothing a read
// depends on, and is committed without fencing).
func (s *State) ChangeIndex() uint64 { return s.changeIndex }

// Now returns the leader-stamped time (unix ns) of the last applied command.
func (s *State) Now() int64 { return s.now }

// Key returns the key with id in account, including keys pending deletion
// (callers check Key.Gone with their clock).
func (s *State) Key(account, id string) (*Key, bool) { return s.key(account, id, true, nil) }

// KeyWithoutPrimaryInto is Key for a caller that uses another of the
// key's versions, as Decrypt does: it spares the lookup of the primary
// version (k's Primary is nil), and reads into k, a Key the caller owns
// (its Versions' array is reused), so the fast path allocates no Key per
// request. k's strings view the state's records, never k.
func (s *State) KeyWithoutPrimaryInto(account, id string, k *Key) bool {
	_, ok := s.key(account, id, false, k)
	return ok
}

// key reads the key into k, or into a new Key if k is nil.
func (s *State) key(account, id string, primary bool, k *Key) (*Key, bool) {
	rec, ok := s.lookup.find(arenaKey, account, id)
	if !ok {
		it, found := s.keys.Get(searchKey(account, id))
		if !found {
			return nil, false
		}
		rec = s.record(it.ref)
	}
	if k == nil {
		k = new(Key)
	}
	pref := decodeKeyRecord(rec, account, k)
	if primary {
		s.setPrimary(k, pref)
	}
	return k, true
}

// Version returns a key version by its id.
func (s *State) Version(id string) (*Version, bool) {
	v := new(Version)
	if !s.VersionInto(id, v) {
		return nil, false
	}
	return v, true
}

// VersionInto is Version reading into v, a Version the caller owns.
func (s *State) VersionInto(id string, v *Version) bool {
	rec, ok := s.versionRecord(id)
	if ok {
		*v = decodeVersionRecord(rec)
	}
	return ok
}

func (s *State) versionRecord(id string) (string, bool) {
	if rec, ok := s.lookup.find(arenaVersion, "", id); ok {
		return rec, true
	}
	it, ok := s.versions.Get(searchVersion(id))
	if !ok {
		return "", false
	}
	return s.record(it.ref), true
}

// Alias returns an alias of account by name ("alias/…").
func (s *State) Alias(account, name string) (*Alias, bool) {
	it, ok := s.aliases.Get(aliasItem{account: account, name: name})
	return it.a, ok
}

// AliasPrefix starts every alias name.
const AliasPrefix = "alias/"

// ResolveKey finds the key a KeyId parameter names inside account: a key id
// or an alias name. (ARNs are parsed into one of these by the API layer.)
// It returns ErrKeyNotFound or ErrAliasNotFound.
func (s *State) ResolveKey(account, ref string) (*Key, error) {
	return s.ResolveKeyInto(account, ref, nil)
}

// ResolveKeyInto is ResolveKey reading into k, a Key the caller owns (nil:
// a new one), as KeyWithoutPrimaryInto does.
func (s *State) ResolveKeyInto(account, ref string, k *Key) (*Key, error) {
	id := ref
	if strings.HasPrefix(ref, AliasPrefix) {
		a, ok := s.Alias(account, ref)
		if !ok {
			return nil, ErrAliasNotFound
		}
		id = a.KeyID
	}
	k, ok := s.key(account, id, true, k)
	if !ok {
		return nil, ErrKeyNotFound
	}
	return k, nil
}

// Keys calls fn for the keys of account in id order, starting after the key
// id after ("" for the first), until fn returns false.
func (s *State) Keys(account, after string, fn func(*Key) bool) {
	from := searchKey(account, after)
	s.keys.AscendGreaterOrEqual(from, func(it keyItem) bool {
		if it.account != account {
			return false
		}
		if it.id == from.id && it.n == from.n {
			return true
		}
		k := new(Key)
		s.setPrimary(k, decodeKeyRecord(s.record(it.ref), it.account, k))
		return fn(k)
	})
}

// Aliases calls fn for the aliases of account in name order until fn
// returns false.
func (s *State) Aliases(account string, fn func(*Alias) bool) {
	s.aliases.AscendGreaterOrEqual(aliasItem{account: account}, func(it aliasItem) bool {
		return it.account == account && fn(it.a)
	})
}

// KeyAliases calls fn for the aliases of a key in name order until fn
// returns false.
func (s *State) KeyAliases(account, keyID string, fn func(*Alias) bool) {
	s.keyAliases.AscendGreaterOrEqual(keyAliasItem{account: account, keyID: keyID}, func(it keyAliasItem) bool {
		return it.account == account && it.keyID == keyID && fn(it.a)
	})
}

// Due calls fn, in time order, for every scheduled change due at or before
// upTo (unix ns), until fn returns false.
func (s *State) Due(upTo int64, fn func(kind DueKind, account, keyID string) bool) {
	s.due.Ascend(func(it dueItem) bool {
		return it.at <= upTo && fn(it.kind, it.account, it.id)
	})
}

// dueItems lists the scheduled changes of a key.
func dueItems(k *Key) []dueItem {
	var out []dueItem
	if k.State == KeyPendingDeletion {
		out = append(out, dueItem{k.DeleteDate, DueDeletion, k.Account, k.ID})
	}
	if k.State == KeyEnabled && k.RotationInterval > 0 {
		out = append(out, dueItem{k.NextRotation(), DueRotation, k.Account, k.ID})
	}
	if k.State == KeyEnabled && k.PrimarySeals >= RotateAtSeals {
		out = append(out, dueItem{0, DueExhausted, k.Account, k.ID})
	}
	return out
}

// Account returns an account by id.
// accountID returns the account's own copy of id when the account exists:
// keys stored with it share one string, and compare equal accounts without
// reading memory.
func (s *State) accountID(id string) string {
	if it, ok := s.accounts.Get(accountItem{id: id}); ok {
		return it.a.ID
	}
	return id
}

func (s *State) Account(id string) (*Account, bool) {
	it, ok := s.accounts.Get(accountItem{id: id})
	return it.a, ok
}

// Accounts calls fn for every account in id order until fn returns false.
func (s *State) Accounts(fn func(*Account) bool) {
	s.accounts.Ascend(func(it accountItem) bool { return fn(it.a) })
}

// PolicyVersion returns the Raft index of the last change to identities,
// AccessKeys, user policies or Rego modules.
func (s *State) PolicyVersion() uint64 { return s.policyVersion }

// User returns a user of account.
func (s *State) User(account, name string) (*User, bool) {
	it, ok := s.users.Get(pairItem[*User]{a: account, b: name})
	return it.v, ok
}

// Users calls fn for the users of account in name order until fn returns false.
func (s *State) Users(account string, fn func(*User) bool) {
	s.users.AscendGreaterOrEqual(pairItem[*User]{a: account}, func(it pairItem[*User]) bool {
		return it.a == account && fn(it.v)
	})
}

// ServicePrincipal returns the service principal of product in account.
func (s *State) ServicePrincipal(account, product string) (*ServicePrincipal, bool) {
	it, ok := s.services.Get(pairItem[*ServicePrincipal]{a: account, b: product})
	return it.v, ok
}

// ServicePrincipals calls fn for the service principals of account.
func (s *State) ServicePrincipals(account string, fn func(*ServicePrincipal) bool) {
	s.services.AscendGreaterOrEqual(pairItem[*ServicePrincipal]{a: account}, func(it pairItem[*ServicePrincipal]) bool {
		return it.a == account && fn(it.v)
	})
}

// UserPolicies calls fn for the policies attached to a user, in name order.
func (s *State) UserPolicies(account, user string, fn func(*UserPolicy) bool) {
	s.policies.AscendGreaterOrEqual(tripleItem[*UserPolicy]{a: account, b: user}, func(it tripleItem[*UserPolicy]) bool {
		return it.a == account && it.b == user && fn(it.v)
	})
}

// AllUserPolicies calls fn for every user policy in the cluster.
func (s *State) AllUserPolicies(fn func(*UserPolicy) bool) {
	s.policies.Ascend(func(it tripleItem[*UserPolicy]) bool { return fn(it.v) })
}

// RegoModules calls fn for every published Rego module in name order.
func (s *State) RegoModules(fn func(*RegoModule) bool) {
	s.modules.Ascend(func(it pairItem[*RegoModule]) bool { return fn(it.v) })
}

// RegoModule returns a published Rego module by name.
func (s *State) RegoModule(name string) (*RegoModule, bool) {
	it, ok := s.modules.Get(pairItem[*RegoModule]{b: name})
	return it.v, ok
}

// principalKey is the middle key of the principalKeys index.
func principalKey(kind PrincipalKind, principal string) string {
	return string(rune('0'+kind)) + "/" + principal
}

// PrincipalAccessKeys calls fn for the AccessKeys of one principal of
// account (kind, and the user name or product code; "" for root).
func (s *State) PrincipalAccessKeys(account string, kind PrincipalKind, principal string, fn func(*AccessKey) bool) {
	pk := principalKey(kind, principal)
	s.principalKeys.AscendGreaterOrEqual(tripleItem[*AccessKey]{a: account, b: pk}, func(it tripleItem[*AccessKey]) bool {
		return it.a == account && it.b == pk && fn(it.v)
	})
}

// AccessKey returns an AccessKey by its id.
func (s *State) AccessKey(id string) (*AccessKey, bool) {
	it, ok := s.accessKeys.Get(accessKeyItem{id: id})
	return it.k, ok
}
