package api

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/raftkms/raftkms/crypto"
	"github.com/raftkms/raftkms/fsm"
	"github.com/raftkms/raftkms/policy"
)

// Identity and policy administration (OwnVersion). Accounts and Rego
// modules are the cluster's ("cluster:" actions, for the system account's
// root); users, service principals, AccessKeys and user policies are an
// account's ("ram:" actions, for the account's root, or users whose
// policies grant them).

// Limits of identity parameters.
const (
	maxNameLen        = 64
	maxPolicyNameLen  = 128
	maxProductCodeLen = 32
	maxModuleBytes    = 32 << 10
	maxInputBytes     = 16 << 10
)

// checkName reads a required name parameter of letters, digits and extra.
func checkName(c *call, param string, maxLen int, extra string) (string, error) {
	v, err := c.required(param, maxLen)
	if err != nil {
		return "", err
	}
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(extra, r)) {
			return "", invalid(param, "may contain only letters, digits and %q", extra)
		}
	}
	return v, nil
}

func userName(c *call) (string, error)   { return checkName(c, "UserName", maxNameLen, "._@-") }
func policyName(c *call) (string, error) { return checkName(c, "PolicyName", maxPolicyNameLen, "._-") }

func productCode(c *call) (string, error) {
	v, err := checkName(c, "ProductCode", maxProductCodeLen, "-")
	if err == nil && strings.ToLower(v) != v {
		return "", invalid("ProductCode", "must be lower case, like ecs or oss")
	}
	return v, err
}

// newAccessKey makes an AccessKey pair with its secret wrapped by the root key.
func (s *Server) newAccessKey() (id, secret string, wrapped []byte, err error) {
	id, secret = crypto.NewAccessKeyID(), crypto.NewAccessKeySecret()
	wrapped, err = s.deps.Wrapper.Wrap(crypto.PurposeAccessKeySecret, id, []byte(secret))
	return id, secret, wrapped, err
}

// accessKeyReply carries a new AccessKey in the credentials-file form, so
// the reply can be saved as a --credentials file.
type accessKeyReply struct {
	reply
	AccountID       string `json:"AccountId,omitempty"`
	ProductCode     string `json:"ProductCode,omitempty"`
	UserName        string `json:"UserName,omitempty"`
	AccessKeyID     string `json:"AccessKeyId"`
	AccessKeySecret string `json:"AccessKeySecret"`
}

// ---- Accounts (cluster) ----------------------------------------------------

func (s *Server) createAccount(c *call) (any, error) {
	name, err := c.required("AccountName", maxNameLen)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(c, "cluster:CreateAccount", nil); err != nil {
		return nil, err
	}
	id, secret, wrapped, err := s.newAccessKey()
	if err != nil {
		return nil, err
	}
	acct := crypto.NewAccountID()
	if _, err := s.propose(c, &fsm.CreateAccount{ID: acct, Name: name, AccessKeyID: id, Secret: wrapped}); err != nil {
		return nil, err
	}
	return accessKeyReply{reply: c.reply(), AccountID: acct, AccessKeyID: id, AccessKeySecret: secret}, nil
}

type accountEntry struct {
	AccountID   string `json:"AccountId"`
	AccountName string `json:"AccountName"`
	CreateDate  string `json:"CreateDate"`
	System      bool   `json:"System"`
}

func (s *Server) listAccounts(c *call) (any, error) {
	if err := s.authorize(c, "cluster:ListAccounts", nil); err != nil {
		return nil, err
	}
	out := struct {
		reply
		Accounts struct {
			Account []accountEntry `json:"Account"`
		} `json:"Accounts"`
	}{reply: c.reply()}
	out.Accounts.Account = []accountEntry{}
	s.deps.State.State().Accounts(func(a *fsm.Account) bool {
		out.Accounts.Account = append(out.Accounts.Account, accountEntry{a.ID, a.Name, formatTime(a.Created), a.System})
		return true
	})
	return out, nil
}

func (s *Server) deleteAccount(c *call) (any, error) {
	id, err := c.required("AccountId", maxNameLen)
	if err != nil {
		return nil, err
	}
	return s.proposeAuthorized(c, "cluster:DeleteAccount", &fsm.DeleteAccount{ID: id})
}

// ---- Users (account) ---------------------------------------------------------

func (s *Server) createUser(c *call) (any, error) {
	name, err := userName(c)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(c, "ram:CreateUser", nil); err != nil {
		return nil, err
	}
	if _, err := s.propose(c, &fsm.CreateUser{Account: c.principal.account, Name: name}); err != nil {
		return nil, err
	}
	u, _ := s.deps.State.State().User(c.principal.account, name)
	return struct {
		reply
		User userEntry `json:"User"`
	}{c.reply(), userEntry{name, formatTime(u.Created)}}, nil
}

type userEntry struct {
	UserName   string `json:"UserName"`
	CreateDate string `json:"CreateDate"`
}

func (s *Server) listUsers(c *call) (any, error) {
	if err := s.authorize(c, "ram:ListUsers", nil); err != nil {
		return nil, err
	}
	out := struct {
		reply
		Users struct {
			User []userEntry `json:"User"`
		} `json:"Users"`
	}{reply: c.reply()}
	out.Users.User = []userEntry{}
	s.deps.State.State().Users(c.principal.account, func(u *fsm.User) bool {
		out.Users.User = append(out.Users.User, userEntry{u.Name, formatTime(u.Created)})
		return true
	})
	return out, nil
}

func (s *Server) deleteUser(c *call) (any, error) {
	name, err := userName(c)
	if err != nil {
		return nil, err
	}
	return s.proposeAuthorized(c, "ram:DeleteUser", &fsm.DeleteUser{Account: c.principal.account, Name: name})
}

// proposeAuthorized decides an action on the account (no key) and
// proposes cmd if it is allowed.
func (s *Server) proposeAuthorized(c *call, action string, cmd fsm.Command) (any, error) {
	if err := s.authorize(c, action, nil); err != nil {
		return nil, err
	}
	if _, err := s.propose(c, cmd); err != nil {
		return nil, err
	}
	return c.reply(), nil
}

// ---- Service principals (account) --------------------------------------------

// createServicePrincipal lets a product act in the account and returns its
// first AccessKey.
func (s *Server) createServicePrincipal(c *call) (any, error) {
	product, err := productCode(c)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(c, "ram:CreateServicePrincipal", nil); err != nil {
		return nil, err
	}
	id, secret, wrapped, err := s.newAccessKey()
	if err != nil {
		return nil, err
	}
	if _, err := s.propose(c, &fsm.CreateServicePrincipal{Account: c.principal.account, Product: product,
		AccessKeyID: id, Secret: wrapped}); err != nil {
		return nil, err
	}
	return accessKeyReply{reply: c.reply(), ProductCode: product, AccessKeyID: id, AccessKeySecret: secret}, nil
}

type serviceEntry struct {
	ProductCode string `json:"ProductCode"`
	CreateDate  string `json:"CreateDate"`
}

func (s *Server) listServicePrincipals(c *call) (any, error) {
	if err := s.authorize(c, "ram:ListServicePrincipals", nil); err != nil {
		return nil, err
	}
	out := struct {
		reply
		ServicePrincipals struct {
			ServicePrincipal []serviceEntry `json:"ServicePrincipal"`
		} `json:"ServicePrincipals"`
	}{reply: c.reply()}
	out.ServicePrincipals.ServicePrincipal = []serviceEntry{}
	s.deps.State.State().ServicePrincipals(c.principal.account, func(sp *fsm.ServicePrincipal) bool {
		out.ServicePrincipals.ServicePrincipal = append(out.ServicePrincipals.ServicePrincipal, serviceEntry{sp.Product, formatTime(sp.Created)})
		return true
	})
	return out, nil
}

func (s *Server) deleteServicePrincipal(c *call) (any, error) {
	product, err := productCode(c)
	if err != nil {
		return nil, err
	}
	return s.proposeAuthorized(c, "ram:DeleteServicePrincipal", &fsm.DeleteServicePrincipal{Account: c.principal.account, Product: product})
}

// ---- AccessKeys (account) ------------------------------------------------------

// keyOwner reads whose AccessKeys an action is about: UserName, or
// ProductCode, or neither (the account's root).
func keyOwner(c *call) (fsm.PrincipalKind, string, error) {
	_, hasUser := c.param("UserName")
	_, hasProduct := c.param("ProductCode")
	switch {
	case hasUser && hasProduct:
		return 0, "", invalid("ProductCode", "give UserName or ProductCode, not both")
	case hasUser:
		name, err := userName(c)
		return fsm.PrincipalUser, name, err
	case hasProduct:
		p, err := productCode(c)
		return fsm.PrincipalService, p, err
	}
	return fsm.PrincipalRoot, "", nil
}

func (s *Server) createAccessKey(c *call) (any, error) {
	kind, owner, err := keyOwner(c)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(c, "ram:CreateAccessKey", nil); err != nil {
		return nil, err
	}
	if err := rootKeysByRootOnly(c, kind); err != nil {
		return nil, err
	}
	id, secret, wrapped, err := s.newAccessKey()
	if err != nil {
		return nil, err
	}
	if _, err := s.propose(c, &fsm.CreateAccessKey{Account: c.principal.account, Kind: kind, Principal: owner,
		AccessKeyID: id, Secret: wrapped}); err != nil {
		return nil, err
	}
	out := accessKeyReply{reply: c.reply(), AccessKeyID: id, AccessKeySecret: secret}
	if kind == fsm.PrincipalUser {
		out.UserName = owner
	} else if kind == fsm.PrincipalService {
		out.ProductCode = owner
	}
	return out, nil
}

// rootKeysByRootOnly refuses a user's request to create, change or delete
// the account's root AccessKeys, whatever its policies grant: a root
// AccessKey may do anything in the account, so minting one would raise the
// user above its policies.
func rootKeysByRootOnly(c *call, owner fsm.PrincipalKind) error {
	if owner == fsm.PrincipalRoot && c.principal.kind != fsm.PrincipalRoot {
		return &DeniedError{Reasons: []string{"only the account's root manages its root AccessKeys"}}
	}
	return nil
}

type accessKeyEntry struct {
	AccessKeyID  string `json:"AccessKeyId"`
	Status       string `json:"Status"`
	CreateDate   string `json:"CreateDate"`
	LastUsedDate string `json:"LastUsedDate,omitempty"`
}

func (s *Server) listAccessKeys(c *call) (any, error) {
	kind, owner, err := keyOwner(c)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(c, "ram:ListAccessKeys", nil); err != nil {
		return nil, err
	}
	out := struct {
		reply
		AccessKeys struct {
			AccessKey []accessKeyEntry `json:"AccessKey"`
		} `json:"AccessKeys"`
	}{reply: c.reply()}
	out.AccessKeys.AccessKey = []accessKeyEntry{}
	s.deps.State.State().PrincipalAccessKeys(c.principal.account, kind, owner, func(ak *fsm.AccessKey) bool {
		status := "Active"
		if !ak.Active {
			status = "Inactive"
		}
		out.AccessKeys.AccessKey = append(out.AccessKeys.AccessKey, accessKeyEntry{ak.ID, status, formatTime(ak.Created), formatTime(ak.LastUsed)})
		return true
	})
	return out, nil
}

func (s *Server) updateAccessKey(c *call) (any, error) {
	id, err := c.required("AccessKeyId", maxNameLen)
	if err != nil {
		return nil, err
	}
	status, err := enum(c, "Status", "", "Active", "Inactive")
	if err != nil {
		return nil, err
	}
	if status == "" {
		return nil, missing("Status")
	}
	if err := s.authorize(c, "ram:UpdateAccessKey", nil); err != nil {
		return nil, err
	}
	if ak, ok := s.deps.State.State().AccessKey(id); ok && ak.Account == c.principal.account {
		if err := rootKeysByRootOnly(c, ak.Kind); err != nil {
			return nil, err
		}
	}
	if _, err := s.propose(c, &fsm.SetAccessKeyStatus{Account: c.principal.account, AccessKeyID: id, Active: status == "Active"}); err != nil {
		return nil, err
	}
	return c.reply(), nil
}

func (s *Server) deleteAccessKey(c *call) (any, error) {
	id, err := c.required("AccessKeyId", maxNameLen)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(c, "ram:DeleteAccessKey", nil); err != nil {
		return nil, err
	}
	if ak, ok := s.deps.State.State().AccessKey(id); ok && ak.Account == c.principal.account {
		if err := rootKeysByRootOnly(c, ak.Kind); err != nil {
			return nil, err
		}
	}
	if _, err := s.propose(c, &fsm.DeleteAccessKey{Account: c.principal.account, AccessKeyID: id}); err != nil {
		return nil, err
	}
	return c.reply(), nil
}

// ---- User policies (account) ---------------------------------------------------

func (s *Server) putUserPolicy(c *call) (any, error) {
	user, err := userName(c)
	if err != nil {
		return nil, err
	}
	name, err := policyName(c)
	if err != nil {
		return nil, err
	}
	doc, err := c.required("PolicyDocument", policy.MaxDocumentBytes)
	if err != nil {
		return nil, err
	}
	if _, _, err := policy.ParseDocument(doc); err != nil {
		return nil, invalid("PolicyDocument", "%s", strings.TrimPrefix(err.Error(), policy.ErrDocument.Error()+": "))
	}
	return s.proposeAuthorized(c, "ram:PutUserPolicy", &fsm.PutUserPolicy{Account: c.principal.account, User: user, Name: name, Document: doc})
}

type policyEntry struct {
	PolicyName     string `json:"PolicyName"`
	PolicyDocument string `json:"PolicyDocument,omitempty"`
	Module         string `json:"Module,omitempty"`
	CreateDate     string `json:"CreateDate"`
	UpdateDate     string `json:"UpdateDate"`
}

type policyList struct {
	reply
	Policies struct {
		Policy []policyEntry `json:"Policy"`
	} `json:"Policies"`
}

func (s *Server) getUserPolicy(c *call) (any, error) {
	user, err := userName(c)
	if err != nil {
		return nil, err
	}
	name, err := policyName(c)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(c, "ram:GetUserPolicy", nil); err != nil {
		return nil, err
	}
	var found *fsm.UserPolicy
	s.deps.State.State().UserPolicies(c.principal.account, user, func(p *fsm.UserPolicy) bool {
		if p.Name == name {
			found = p
		}
		return found == nil
	})
	if found == nil {
		return nil, fsm.ErrPolicyNotFound
	}
	return struct {
		reply
		policyEntry
	}{c.reply(), policyEntry{found.Name, found.Document, "", formatTime(found.Created), formatTime(found.Updated)}}, nil
}

func (s *Server) listUserPolicies(c *call) (any, error) {
	user, err := userName(c)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(c, "ram:ListUserPolicies", nil); err != nil {
		return nil, err
	}
	st := s.deps.State.State()
	if _, ok := st.User(c.principal.account, user); !ok {
		return nil, fsm.ErrUserNotFound
	}
	out := policyList{reply: c.reply()}
	out.Policies.Policy = []policyEntry{}
	st.UserPolicies(c.principal.account, user, func(p *fsm.UserPolicy) bool {
		out.Policies.Policy = append(out.Policies.Policy, policyEntry{PolicyName: p.Name, CreateDate: formatTime(p.Created), UpdateDate: formatTime(p.Updated)})
		return true
	})
	return out, nil
}

func (s *Server) deleteUserPolicy(c *call) (any, error) {
	user, err := userName(c)
	if err != nil {
		return nil, err
	}
	name, err := policyName(c)
	if err != nil {
		return nil, err
	}
	return s.proposeAuthorized(c, "ram:DeleteUserPolicy", &fsm.DeleteUserPolicy{Account: c.principal.account, User: user, Name: name})
}

// ---- Rego modules (cluster) -------------------------------------------------------

// putRegoPolicy publishes a policy author's module. It is compiled here with
// every other published module first: one that does not compile is refused
// and nothing changes.
func (s *Server) putRegoPolicy(c *call) (any, error) {
	name, err := policyName(c)
	if err != nil {
		return nil, err
	}
	src, err := c.required("Module", maxModuleBytes)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(c, "cluster:PutRegoPolicy", nil); err != nil {
		return nil, err
	}
	mods := []policy.Module{{Name: name, Source: src}}
	s.deps.State.State().RegoModules(func(m *fsm.RegoModule) bool {
		if m.Name != name {
			mods = append(mods, policy.Module{Name: m.Name, Source: m.Source})
		}
		return true
	})
	if err := policy.Check(context.Background(), mods); err != nil {
		return nil, invalid("Module", "%s", strings.TrimPrefix(err.Error(), policy.ErrModule.Error()+" "))
	}
	if _, err := s.propose(c, &fsm.PutRegoModule{Name: name, Source: src}); err != nil {
		return nil, err
	}
	return c.reply(), nil
}

func (s *Server) getRegoPolicy(c *call) (any, error) {
	name, err := policyName(c)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(c, "cluster:GetRegoPolicy", nil); err != nil {
		return nil, err
	}
	m, ok := s.deps.State.State().RegoModule(name)
	if !ok {
		return nil, fsm.ErrPolicyNotFound
	}
	return struct {
		reply
		policyEntry
	}{c.reply(), policyEntry{m.Name, "", m.Source, formatTime(m.Created), formatTime(m.Updated)}}, nil
}

func (s *Server) listRegoPolicies(c *call) (any, error) {
	if err := s.authorize(c, "cluster:ListRegoPolicies", nil); err != nil {
		return nil, err
	}
	out := policyList{reply: c.reply()}
	out.Policies.Policy = []policyEntry{}
	s.deps.State.State().RegoModules(func(m *fsm.RegoModule) bool {
		out.Policies.Policy = append(out.Policies.Policy, policyEntry{PolicyName: m.Name, CreateDate: formatTime(m.Created), UpdateDate: formatTime(m.Updated)})
		return true
	})
	return out, nil
}

func (s *Server) deleteRegoPolicy(c *call) (any, error) {
	name, err := policyName(c)
	if err != nil {
		return nil, err
	}
	return s.proposeAuthorized(c, "cluster:DeleteRegoPolicy", &fsm.DeleteRegoModule{Name: name})
}

// evaluatePolicy decides an input document under the cluster's published
// policies, for policy authors (kmsctl policy eval --remote). A caller
// outside the system account evaluates only principals of its own account.
func (s *Server) evaluatePolicy(c *call) (any, error) {
	text, err := c.required("Input", maxInputBytes)
	if err != nil {
		return nil, err
	}
	var in policy.Input
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, invalid("Input", "not a policy input document: %v", err)
	}
	if err := s.authorize(c, "ram:EvaluatePolicy", nil); err != nil {
		return nil, err
	}
	if !c.principal.system {
		in.Principal.Account = c.principal.account
	}
	d, err := s.deps.Authorizer.Evaluate(context.Background(), &in)
	if err != nil {
		return nil, err
	}
	if d.Reasons == nil {
		d.Reasons = []string{}
	}
	return struct {
		reply
		Allow   bool     `json:"Allow"`
		Reasons []string `json:"Reasons"`
	}{c.reply(), d.Allow, d.Reasons}, nil
}
