package api

import (
	"strings"

	"github.com/raftkms/raftkms/fsm"
)

// reservedAliasPrefix is kept for service keys (alias/acs/<product>).
const reservedAliasPrefix = "alias/acs"

// aliasName reads and checks an AliasName parameter: "alias/" followed by
// letters, digits, '_', '-', '/' or ':', at most 255 characters.
func aliasName(c *call, reserved bool) (string, error) {
	name, err := c.required("AliasName", maxAliasLen)
	if err != nil {
		return "", err
	}
	rest, ok := strings.CutPrefix(name, fsm.AliasPrefix)
	if !ok || rest == "" {
		return "", invalid("AliasName", "must start with alias/ and name something")
	}
	for _, r := range rest {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-/:", r)) {
			return "", invalid("AliasName", "may contain only letters, digits, _, -, / and :")
		}
	}
	if reserved && strings.HasPrefix(name, reservedAliasPrefix) {
		return "", invalid("AliasName", "the prefix alias/acs is reserved for service keys")
	}
	return name, nil
}

func (s *Server) aliasArn(a *fsm.Alias) string {
	return "acs:kms:" + s.cfg.Region + ":" + a.Account + ":" + a.Name
}

// aliasWrite is CreateAlias and UpdateAlias: name a key (resolved here, so
// an alias given as KeyId means its key), authorise, propose.
// Only CreateAlias refuses the service-key prefix as a bad name: updating
// an existing alias/acs/… alias is refused by the state machine as
// Forbidden.ServiceKey.
func (s *Server) aliasWrite(c *call, action string, cmd func(name, keyID string) fsm.Command) (any, error) {
	name, err := aliasName(c, action == "kms:CreateAlias")
	if err != nil {
		return nil, err
	}
	k, err := s.lookupKey(c, "KeyId")
	if err != nil {
		return nil, err
	}
	c.authRef = name // input.resource.alias is the alias being written
	if err := s.authorize(c, action, k); err != nil {
		return nil, err
	}
	if _, err := s.propose(c, cmd(name, k.ID)); err != nil {
		return nil, err
	}
	return c.reply(), nil
}

func (s *Server) createAlias(c *call) (any, error) {
	return s.aliasWrite(c, "kms:CreateAlias", func(name, keyID string) fsm.Command {
		return fsm.NewCreateAlias(c.principal.account, name, keyID)
	})
}

func (s *Server) updateAlias(c *call) (any, error) {
	return s.aliasWrite(c, "kms:UpdateAlias", func(name, keyID string) fsm.Command {
		return fsm.NewUpdateAlias(c.principal.account, name, keyID)
	})
}

func (s *Server) deleteAlias(c *call) (any, error) {
	name, err := aliasName(c, false)
	if err != nil {
		return nil, err
	}
	st := s.deps.State.State()
	a, ok := st.Alias(c.principal.account, name)
	if !ok {
		return nil, fsm.ErrAliasNotFound
	}
	k, _ := st.Key(a.Account, a.KeyID)
	c.authRef = name
	if err := s.authorize(c, "kms:DeleteAlias", k); err != nil {
		return nil, err
	}
	if _, err := s.propose(c, &fsm.DeleteAlias{Account: c.principal.account, Name: name}); err != nil {
		return nil, err
	}
	return c.reply(), nil
}

type aliasEntry struct {
	AliasName string `json:"AliasName"`
	AliasArn  string `json:"AliasArn"`
	KeyID     string `json:"KeyId"`
}

type listAliasesReply struct {
	reply
	paging
	Aliases struct {
		Alias []aliasEntry `json:"Alias"`
	} `json:"Aliases"`
}

// pageAliases lists aliases from each through the page; aliases of keys
// whose deletion is due are left out.
func (s *Server) pageAliases(c *call, p paging, each func(func(*fsm.Alias) bool)) listAliasesReply {
	out := listAliasesReply{reply: c.reply(), paging: p}
	out.Aliases.Alias = []aliasEntry{}
	st, now := s.deps.State.State(), c.now.UnixNano()
	each(func(a *fsm.Alias) bool {
		if k, ok := st.Key(a.Account, a.KeyID); !ok || k.Gone(now) {
			return true
		}
		if p.window(out.TotalCount) {
			out.Aliases.Alias = append(out.Aliases.Alias, aliasEntry{AliasName: a.Name, AliasArn: s.aliasArn(a), KeyID: a.KeyID})
		}
		out.TotalCount++
		return true
	})
	return out
}

func (s *Server) listAliases(c *call) (any, error) {
	p, err := readPaging(c)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(c, "kms:ListAliases", nil); err != nil {
		return nil, err
	}
	st := s.deps.State.State()
	return s.pageAliases(c, p, func(fn func(*fsm.Alias) bool) { st.Aliases(c.principal.account, fn) }), nil
}

func (s *Server) listAliasesByKeyID(c *call) (any, error) {
	k, err := s.lookupKey(c, "KeyId")
	if err != nil {
		return nil, err
	}
	p, err := readPaging(c)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(c, "kms:ListAliasesByKeyId", k); err != nil {
		return nil, err
	}
	st := s.deps.State.State()
	return s.pageAliases(c, p, func(fn func(*fsm.Alias) bool) { st.KeyAliases(k.Account, k.ID, fn) }), nil
}
