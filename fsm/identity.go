package fsm

import "strings"

// Identity and policy commands: accounts, users, service principals,
// AccessKeys, user policies and Rego modules. Each bumps the policy
// version, so cached policy decisions made before it are not reused.

// Command types of identity and policy changes.
const (
	CmdDeleteAccount          CmdType = 16
	CmdCreateUser             CmdType = 17
	CmdDeleteUser             CmdType = 18
	CmdCreateServicePrincipal CmdType = 19
	CmdDeleteServicePrincipal CmdType = 20
	CmdCreateAccessKey        CmdType = 21
	CmdSetAccessKeyStatus     CmdType = 22
	CmdDeleteAccessKey        CmdType = 23
	CmdTouchAccessKeys        CmdType = 24
	CmdPutUserPolicy          CmdType = 25
	CmdDeleteUserPolicy       CmdType = 26
	CmdPutRegoModule          CmdType = 27
	CmdDeleteRegoModule       CmdType = 28
	CmdCreateServiceKey       CmdType = 29
)

// Limits of identities.
const (
	MaxAccessKeysPerPrincipal = 5
	MaxPoliciesPerUser        = 20
)

func identityCommand(t CmdType) Command {
	switch t {
	case CmdDeleteAccount:
		return &DeleteAccount{}
	case CmdCreateUser:
		return &CreateUser{}
	case CmdDeleteUser:
		return &DeleteUser{}
	case CmdCreateServicePrincipal:
		return &CreateServicePrincipal{}
	case CmdDeleteServicePrincipal:
		return &DeleteServicePrincipal{}
	case CmdCreateAccessKey:
		return &CreateAccessKey{}
	case CmdSetAccessKeyStatus:
		return &SetAccessKeyStatus{}
	case CmdDeleteAccessKey:
		return &DeleteAccessKey{}
	case CmdTouchAccessKeys:
		return &TouchAccessKeys{}
	case CmdPutUserPolicy:
		return &PutUserPolicy{}
	case CmdDeleteUserPolicy:
		return &DeleteUserPolicy{}
	case CmdPutRegoModule:
		return &PutRegoModule{}
	case CmdDeleteRegoModule:
		return &DeleteRegoModule{}
	case CmdCreateServiceKey:
		return &CreateServiceKey{}
	case CmdTrailAppend:
		return &TrailAppend{}
	case CmdTrailShip:
		return &TrailShip{}
	case CmdAudited:
		return &Audited{}
	case CmdReserveSealsBatch:
		return &ReserveSealsBatch{}
	}
	return nil
}

func (t *txn) bumpPolicy() { t.st.policyVersion = t.index }

func (t *txn) putAccessKey(ak *AccessKey) {
	t.st.accessKeys.ReplaceOrInsert(accessKeyItem{ak.ID, ak})
	t.st.principalKeys.ReplaceOrInsert(tripleItem[*AccessKey]{ak.Account, principalKey(ak.Kind, ak.Principal), ak.ID, ak})
}

func (t *txn) deleteAccessKey(ak *AccessKey) {
	t.st.accessKeys.Delete(accessKeyItem{id: ak.ID})
	t.st.principalKeys.Delete(tripleItem[*AccessKey]{a: ak.Account, b: principalKey(ak.Kind, ak.Principal), c: ak.ID})
}

// accessKeysOf lists a principal's AccessKeys (a copy: callers may delete).
func (t *txn) accessKeysOf(account string, kind PrincipalKind, principal string) []*AccessKey {
	var out []*AccessKey
	t.st.PrincipalAccessKeys(account, kind, principal, func(ak *AccessKey) bool { out = append(out, ak); return true })
	return out
}

func (t *txn) account(id string) (*Account, error) {
	a, ok := t.st.Account(id)
	if !ok {
		return nil, ErrAccountNotFound
	}
	return a, nil
}

// DeleteAccount deletes an account that holds no keys, with its users,
// service principals, AccessKeys and policies.
type DeleteAccount struct{ ID string }

// Type implements Command.
func (*DeleteAccount) Type() CmdType           { return CmdDeleteAccount }
func (c *DeleteAccount) encodeBody(e *encoder) { e.str(c.ID) }
func (c *DeleteAccount) decodeBody(d *decoder) { c.ID = d.str() }
func (c *DeleteAccount) apply(t *txn) Result {
	a, err := t.account(c.ID)
	if err != nil {
		return fail(err)
	}
	if a.System {
		return fail(ErrSystemAccount)
	}
	empty := true
	t.st.Keys(c.ID, "", func(*Key) bool { empty = false; return false })
	if !empty {
		return fail(ErrAccountNotEmpty)
	}
	var users []*User
	t.st.Users(c.ID, func(u *User) bool { users = append(users, u); return true })
	for _, u := range users {
		t.deleteUser(u)
	}
	var services []*ServicePrincipal
	t.st.ServicePrincipals(c.ID, func(sp *ServicePrincipal) bool { services = append(services, sp); return true })
	for _, sp := range services {
		t.deleteService(sp)
	}
	for _, ak := range t.accessKeysOf(c.ID, PrincipalRoot, "") {
		t.deleteAccessKey(ak)
	}
	var aliases []*Alias
	t.st.Aliases(c.ID, func(al *Alias) bool { aliases = append(aliases, al); return true })
	for _, al := range aliases {
		t.deleteAlias(al)
	}
	t.st.accounts.Delete(accountItem{id: c.ID})
	t.bumpPolicy()
	return Result{Account: a}
}

// CreateUser creates a user in an account.
type CreateUser struct{ Account, Name string }

// Type implements Command.
func (*CreateUser) Type() CmdType           { return CmdCreateUser }
func (c *CreateUser) encodeBody(e *encoder) { e.str(c.Account); e.str(c.Name) }
func (c *CreateUser) decodeBody(d *decoder) { c.Account, c.Name = d.str(), d.str() }
func (c *CreateUser) apply(t *txn) Result {
	if c.Name == "" {
		return fail(ErrInvalidCommand)
	}
	if _, err := t.account(c.Account); err != nil {
		return fail(err)
	}
	if _, ok := t.st.User(c.Account, c.Name); ok {
		return fail(ErrUserExists)
	}
	t.st.users.ReplaceOrInsert(pairItem[*User]{c.Account, c.Name, &User{Account: c.Account, Name: c.Name, Created: t.now}})
	t.bumpPolicy()
	return Result{}
}

// DeleteUser deletes a user with its AccessKeys and policies.
type DeleteUser struct{ Account, Name string }

// Type implements Command.
func (*DeleteUser) Type() CmdType           { return CmdDeleteUser }
func (c *DeleteUser) encodeBody(e *encoder) { e.str(c.Account); e.str(c.Name) }
func (c *DeleteUser) decodeBody(d *decoder) { c.Account, c.Name = d.str(), d.str() }
func (c *DeleteUser) apply(t *txn) Result {
	u, ok := t.st.User(c.Account, c.Name)
	if !ok {
		return fail(ErrUserNotFound)
	}
	t.deleteUser(u)
	t.bumpPolicy()
	return Result{}
}

func (t *txn) deleteUser(u *User) {
	for _, ak := range t.accessKeysOf(u.Account, PrincipalUser, u.Name) {
		t.deleteAccessKey(ak)
	}
	var ps []*UserPolicy
	t.st.UserPolicies(u.Account, u.Name, func(p *UserPolicy) bool { ps = append(ps, p); return true })
	for _, p := range ps {
		t.st.policies.Delete(tripleItem[*UserPolicy]{a: p.Account, b: p.User, c: p.Name})
	}
	t.st.users.Delete(pairItem[*User]{a: u.Account, b: u.Name})
}

// CreateServicePrincipal lets a cloud product act in an account, with its
// first AccessKey (Secret wrapped by the root key): both or neither.
type CreateServicePrincipal struct {
	Account, Product string
	AccessKeyID      string
	Secret           []byte
}

// Type implements Command.
func (*CreateServicePrincipal) Type() CmdType { return CmdCreateServicePrincipal }
func (c *CreateServicePrincipal) encodeBody(e *encoder) {
	e.str(c.Account)
	e.str(c.Product)
	e.str(c.AccessKeyID)
	e.bytes(c.Secret)
}
func (c *CreateServicePrincipal) decodeBody(d *decoder) {
	c.Account, c.Product, c.AccessKeyID, c.Secret = d.str(), d.str(), d.str(), d.bytes()
}
func (c *CreateServicePrincipal) apply(t *txn) Result {
	if c.Product == "" || c.AccessKeyID == "" || len(c.Secret) == 0 {
		return fail(ErrInvalidCommand)
	}
	if _, ok := t.st.AccessKey(c.AccessKeyID); ok {
		return fail(ErrAccessKeyExists)
	}
	if _, err := t.account(c.Account); err != nil {
		return fail(err)
	}
	if _, ok := t.st.ServicePrincipal(c.Account, c.Product); ok {
		return fail(ErrServiceExists)
	}
	sp := &ServicePrincipal{Account: c.Account, Product: c.Product, Created: t.now}
	t.st.services.ReplaceOrInsert(pairItem[*ServicePrincipal]{c.Account, c.Product, sp})
	t.putAccessKey(&AccessKey{ID: c.AccessKeyID, Account: c.Account, Kind: PrincipalService, Principal: c.Product,
		Active: true, Secret: c.Secret, Created: t.now})
	t.bumpPolicy()
	return Result{}
}

// DeleteServicePrincipal removes a service principal and its AccessKeys.
// Its service key stays: it belongs to the account.
type DeleteServicePrincipal struct{ Account, Product string }

// Type implements Command.
func (*DeleteServicePrincipal) Type() CmdType { return CmdDeleteServicePrincipal }
func (c *DeleteServicePrincipal) encodeBody(e *encoder) {
	e.str(c.Account)
	e.str(c.Product)
}
func (c *DeleteServicePrincipal) decodeBody(d *decoder) { c.Account, c.Product = d.str(), d.str() }
func (c *DeleteServicePrincipal) apply(t *txn) Result {
	sp, ok := t.st.ServicePrincipal(c.Account, c.Product)
	if !ok {
		return fail(ErrServiceNotFound)
	}
	t.deleteService(sp)
	t.bumpPolicy()
	return Result{}
}

func (t *txn) deleteService(sp *ServicePrincipal) {
	for _, ak := range t.accessKeysOf(sp.Account, PrincipalService, sp.Product) {
		t.deleteAccessKey(ak)
	}
	t.st.services.Delete(pairItem[*ServicePrincipal]{a: sp.Account, b: sp.Product})
}

// CreateAccessKey adds an AccessKey to a principal: the account's root
// (Kind PrincipalRoot, Principal ""), a user or a service principal.
type CreateAccessKey struct {
	Account     string
	Kind        PrincipalKind
	Principal   string
	AccessKeyID string
	Secret      []byte // wrapped by the root key
}

// Type implements Command.
func (*CreateAccessKey) Type() CmdType { return CmdCreateAccessKey }
func (c *CreateAccessKey) encodeBody(e *encoder) {
	e.str(c.Account)
	e.u8(uint8(c.Kind))
	e.str(c.Principal)
	e.str(c.AccessKeyID)
	e.bytes(c.Secret)
}
func (c *CreateAccessKey) decodeBody(d *decoder) {
	c.Account, c.Kind, c.Principal, c.AccessKeyID, c.Secret = d.str(), PrincipalKind(d.u8()), d.str(), d.str(), d.bytes()
}
func (c *CreateAccessKey) apply(t *txn) Result {
	if c.AccessKeyID == "" || len(c.Secret) == 0 {
		return fail(ErrInvalidCommand)
	}
	if _, err := t.account(c.Account); err != nil {
		return fail(err)
	}
	switch c.Kind {
	case PrincipalRoot:
		if c.Principal != "" {
			return fail(ErrInvalidCommand)
		}
	case PrincipalUser:
		if _, ok := t.st.User(c.Account, c.Principal); !ok {
			return fail(ErrUserNotFound)
		}
	case PrincipalService:
		if _, ok := t.st.ServicePrincipal(c.Account, c.Principal); !ok {
			return fail(ErrServiceNotFound)
		}
	default:
		return fail(ErrInvalidCommand)
	}
	if _, ok := t.st.AccessKey(c.AccessKeyID); ok {
		return fail(ErrAccessKeyExists)
	}
	if len(t.accessKeysOf(c.Account, c.Kind, c.Principal)) >= MaxAccessKeysPerPrincipal {
		return fail(ErrAccessKeyLimit)
	}
	t.putAccessKey(&AccessKey{ID: c.AccessKeyID, Account: c.Account, Kind: c.Kind, Principal: c.Principal,
		Active: true, Secret: c.Secret, Created: t.now})
	t.bumpPolicy()
	return Result{}
}

// accountAccessKey finds an AccessKey of account.
func (t *txn) accountAccessKey(account, id string) (*AccessKey, error) {
	ak, ok := t.st.AccessKey(id)
	if !ok || ak.Account != account {
		return nil, ErrAccessKeyNotFound
	}
	return ak, nil
}

// lastActiveRoot reports whether ak is the account's only active root
// AccessKey: removing it would lock the account out.
func (t *txn) lastActiveRoot(ak *AccessKey) bool {
	if ak.Kind != PrincipalRoot || !ak.Active {
		return false
	}
	for _, other := range t.accessKeysOf(ak.Account, PrincipalRoot, "") {
		if other.ID != ak.ID && other.Active {
			return false
		}
	}
	return true
}

// SetAccessKeyStatus enables or disables an AccessKey.
type SetAccessKeyStatus struct {
	Account, AccessKeyID string
	Active               bool
}

// Type implements Command.
func (*SetAccessKeyStatus) Type() CmdType { return CmdSetAccessKeyStatus }
func (c *SetAccessKeyStatus) encodeBody(e *encoder) {
	e.str(c.Account)
	e.str(c.AccessKeyID)
	e.bool(c.Active)
}
func (c *SetAccessKeyStatus) decodeBody(d *decoder) {
	c.Account, c.AccessKeyID, c.Active = d.str(), d.str(), d.bool()
}
func (c *SetAccessKeyStatus) apply(t *txn) Result {
	ak, err := t.accountAccessKey(c.Account, c.AccessKeyID)
	if err != nil {
		return fail(err)
	}
	if !c.Active && t.lastActiveRoot(ak) {
		return fail(ErrLastRootAccessKey)
	}
	n := *ak
	n.Active = c.Active
	t.putAccessKey(&n)
	t.bumpPolicy()
	return Result{}
}

// DeleteAccessKey deletes an AccessKey.
type DeleteAccessKey struct{ Account, AccessKeyID string }

// Type implements Command.
func (*DeleteAccessKey) Type() CmdType { return CmdDeleteAccessKey }
func (c *DeleteAccessKey) encodeBody(e *encoder) {
	e.str(c.Account)
	e.str(c.AccessKeyID)
}
func (c *DeleteAccessKey) decodeBody(d *decoder) { c.Account, c.AccessKeyID = d.str(), d.str() }
func (c *DeleteAccessKey) apply(t *txn) Result {
	ak, err := t.accountAccessKey(c.Account, c.AccessKeyID)
	if err != nil {
		return fail(err)
	}
	if t.lastActiveRoot(ak) {
		return fail(ErrLastRootAccessKey)
	}
	t.deleteAccessKey(ak)
	t.bumpPolicy()
	return Result{}
}

// TouchAccessKeys records when AccessKeys were last used (nodes report
// about once a minute; the latest time wins). It does not change policy.
type TouchAccessKeys struct {
	IDs   []string
	Times []int64 // unix ns, one per id
}

// Type implements Command.
func (*TouchAccessKeys) Type() CmdType { return CmdTouchAccessKeys }
func (c *TouchAccessKeys) encodeBody(e *encoder) {
	e.strs(c.IDs)
	e.uvarint(uint64(len(c.Times)))
	for _, x := range c.Times {
		e.varint(x)
	}
}
func (c *TouchAccessKeys) decodeBody(d *decoder) {
	c.IDs = d.strs()
	n := d.length(1)
	if n > 0 {
		c.Times = make([]int64, n)
		for i := range c.Times {
			c.Times[i] = d.varint()
		}
	}
}
func (c *TouchAccessKeys) apply(t *txn) Result {
	if len(c.IDs) != len(c.Times) {
		return fail(ErrInvalidCommand)
	}
	for i, id := range c.IDs {
		ak, ok := t.st.AccessKey(id)
		if !ok || c.Times[i] <= ak.LastUsed {
			continue
		}
		n := *ak
		n.LastUsed = c.Times[i]
		t.putAccessKey(&n)
	}
	return Result{}
}

// PutUserPolicy attaches (or replaces) a RAM-style policy document on a user.
type PutUserPolicy struct {
	Account, User, Name string
	Document            string
}

// Type implements Command.
func (*PutUserPolicy) Type() CmdType { return CmdPutUserPolicy }
func (c *PutUserPolicy) encodeBody(e *encoder) {
	e.str(c.Account)
	e.str(c.User)
	e.str(c.Name)
	e.str(c.Document)
}
func (c *PutUserPolicy) decodeBody(d *decoder) {
	c.Account, c.User, c.Name, c.Document = d.str(), d.str(), d.str(), d.str()
}
func (c *PutUserPolicy) apply(t *txn) Result {
	if c.Name == "" || c.Document == "" {
		return fail(ErrInvalidCommand)
	}
	if _, ok := t.st.User(c.Account, c.User); !ok {
		return fail(ErrUserNotFound)
	}
	key := tripleItem[*UserPolicy]{a: c.Account, b: c.User, c: c.Name}
	p := &UserPolicy{Account: c.Account, User: c.User, Name: c.Name, Document: c.Document, Created: t.now, Updated: t.now}
	if old, ok := t.st.policies.Get(key); ok {
		p.Created = old.v.Created
	} else {
		n := 0
		t.st.UserPolicies(c.Account, c.User, func(*UserPolicy) bool { n++; return true })
		if n >= MaxPoliciesPerUser {
			return fail(ErrIdentityLimit)
		}
	}
	key.v = p
	t.st.policies.ReplaceOrInsert(key)
	t.bumpPolicy()
	return Result{}
}

// DeleteUserPolicy detaches a policy from a user.
type DeleteUserPolicy struct{ Account, User, Name string }

// Type implements Command.
func (*DeleteUserPolicy) Type() CmdType { return CmdDeleteUserPolicy }
func (c *DeleteUserPolicy) encodeBody(e *encoder) {
	e.str(c.Account)
	e.str(c.User)
	e.str(c.Name)
}
func (c *DeleteUserPolicy) decodeBody(d *decoder) {
	c.Account, c.User, c.Name = d.str(), d.str(), d.str()
}
func (c *DeleteUserPolicy) apply(t *txn) Result {
	if _, ok := t.st.policies.Delete(tripleItem[*UserPolicy]{a: c.Account, b: c.User, c: c.Name}); !ok {
		return fail(ErrPolicyNotFound)
	}
	t.bumpPolicy()
	return Result{}
}

// PutRegoModule publishes (or replaces) a Rego module. The proposer has
// compiled it with every other module; Apply does not run OPA.
type PutRegoModule struct{ Name, Source string }

// Type implements Command.
func (*PutRegoModule) Type() CmdType           { return CmdPutRegoModule }
func (c *PutRegoModule) encodeBody(e *encoder) { e.str(c.Name); e.str(c.Source) }
func (c *PutRegoModule) decodeBody(d *decoder) { c.Name, c.Source = d.str(), d.str() }
func (c *PutRegoModule) apply(t *txn) Result {
	if c.Name == "" || c.Source == "" {
		return fail(ErrInvalidCommand)
	}
	m := &RegoModule{Name: c.Name, Source: c.Source, Created: t.now, Updated: t.now}
	if old, ok := t.st.RegoModule(c.Name); ok {
		m.Created = old.Created
	}
	t.st.modules.ReplaceOrInsert(pairItem[*RegoModule]{b: c.Name, v: m})
	t.bumpPolicy()
	return Result{}
}

// DeleteRegoModule withdraws a Rego module.
type DeleteRegoModule struct{ Name string }

// Type implements Command.
func (*DeleteRegoModule) Type() CmdType           { return CmdDeleteRegoModule }
func (c *DeleteRegoModule) encodeBody(e *encoder) { e.str(c.Name) }
func (c *DeleteRegoModule) decodeBody(d *decoder) { c.Name = d.str() }
func (c *DeleteRegoModule) apply(t *txn) Result {
	if _, ok := t.st.modules.Delete(pairItem[*RegoModule]{b: c.Name}); !ok {
		return fail(ErrPolicyNotFound)
	}
	t.bumpPolicy()
	return Result{}
}

// ServiceAliasPrefix starts the alias of every service key: alias/acs/<product>.
const ServiceAliasPrefix = "alias/acs/"

// CreateServiceKey creates the service key of (account, product) with its
// alias alias/acs/<product> — unless it exists, in which case it returns
// the existing key and changes nothing. So concurrent first uses from
// several nodes yield exactly one key.
type CreateServiceKey struct {
	Account, Product string
	KeyID, VersionID string
	Material         []byte // wrapped by the root key
}

// Type implements Command.
func (*CreateServiceKey) Type() CmdType { return CmdCreateServiceKey }
func (c *CreateServiceKey) encodeBody(e *encoder) {
	e.str(c.Account)
	e.str(c.Product)
	e.str(c.KeyID)
	e.str(c.VersionID)
	e.bytes(c.Material)
}
func (c *CreateServiceKey) decodeBody(d *decoder) {
	c.Account, c.Product, c.KeyID, c.VersionID, c.Material = d.str(), d.str(), d.str(), d.str(), d.bytes()
}
func (c *CreateServiceKey) apply(t *txn) Result {
	if c.Product == "" || strings.ContainsRune(c.Product, '/') {
		return fail(ErrInvalidCommand)
	}
	alias := ServiceAliasPrefix + c.Product
	if a, ok := t.st.Alias(c.Account, alias); ok {
		k, _ := t.st.Key(c.Account, a.KeyID)
		return Result{Key: k}
	}
	if _, ok := t.st.ServicePrincipal(c.Account, c.Product); !ok {
		return fail(ErrServiceNotFound)
	}
	r := (&CreateKey{Account: c.Account, ID: c.KeyID, Description: "service key of " + c.Product,
		Spec: "Aliyun_AES_256", Usage: "ENCRYPT/DECRYPT", Origin: "Aliyun_KMS", Protection: "SOFTWARE",
		CreatorType: "Service", VersionID: c.VersionID, Material: c.Material}).apply(t)
	if r.Err != nil {
		return r
	}
	k := r.Key.clone()
	k.Product = c.Product
	r = t.putKey(r.Key, k)
	t.putAlias(&Alias{Account: c.Account, Name: alias, KeyID: k.ID, Created: t.now, Updated: t.now})
	return r
}
