package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"strings"
	"time"

	"github.com/raftkms/raftkms/fsm"
	"github.com/raftkms/raftkms/policy"
)

// Limits on identifiers.
const (
	maxKeyRefLen = 512
	maxAliasLen  = 255
)

// keyRef reads a KeyId-style parameter — a key id, an alias ("alias/…") or
// an ARN (acs:kms:<region>:<account>:key/<id> or …:alias/<name>) — and
// returns the key id or alias name it names. An ARN of another region or
// account names nothing this caller can see.
func (s *Server) keyRef(c *call, name string) (string, error) {
	ref, err := c.view(name, maxKeyRefLen)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(ref, "acs:") {
		return ref, nil
	}
	parts := strings.SplitN(ref, ":", 5)
	if len(parts) != 5 || parts[1] != "kms" {
		return "", invalid(name, "not a KMS key or alias ARN")
	}
	resource := parts[4]
	if !strings.HasPrefix(resource, "key/") && !strings.HasPrefix(resource, fsm.AliasPrefix) {
		return "", invalid(name, "not a KMS key or alias ARN")
	}
	if parts[2] != s.cfg.Region || parts[3] != c.principal.account {
		return "", fsm.ErrKeyNotFound
	}
	return strings.TrimPrefix(resource, "key/"), nil
}

// resolveKey finds the key ref names in the caller's account, reading it
// into into (nil: a new Key). A key whose deletion is due reads as not
// found even before the leader destroys it.
func (s *Server) resolveKey(c *call, st *fsm.State, ref string, into *fsm.Key) (*fsm.Key, error) {
	c.authRef = ref
	k, err := st.ResolveKeyInto(c.principal.account, ref, into)
	if err != nil {
		return nil, err
	}
	if k.Gone(c.now.UnixNano()) {
		return nil, fsm.ErrKeyNotFound
	}
	return k, nil
}

// lookupKey is keyRef then resolveKey on the current state.
func (s *Server) lookupKey(c *call, name string) (*fsm.Key, error) {
	ref, err := s.keyRef(c, name)
	if err != nil {
		return nil, err
	}
	return s.resolveKey(c, s.deps.State.State(), ref, nil)
}

// arn returns a key's ARN.
func (s *Server) arn(k *fsm.Key) string {
	return "acs:kms:" + s.cfg.Region + ":" + k.Account + ":key/" + k.ID
}

// usable checks that a key's state allows cryptography.
func usable(k *fsm.Key) error {
	switch k.State {
	case fsm.KeyEnabled:
		return nil
	case fsm.KeyDisabled:
		return ErrKeyDisabled
	case fsm.KeyPendingDeletion:
		return ErrKeyPendingDeletion
	case fsm.KeyPendingImport:
		return ErrKeyPendingImport
	}
	return fsm.ErrStateConflict
}

// authorize asks the policies whether the caller may perform action
// ("kms:GenerateDataKey") on key (nil for account-level actions). The
// policies are brought up to the state's policy version first. The full
// policy input is built only when the decision is not cached
// (call.BuildInput).
func (s *Server) authorize(c *call, action string, k *fsm.Key) error {
	if err := s.syncPolicies(); err != nil {
		return err
	}
	c.authAction, c.authKey = action, k
	r := policy.Request{AccessKeyID: c.principal.accessKeyID, User: c.principal.userKey, Action: action}
	if k != nil {
		r.Account, r.KeyID, r.KeyRevision = k.Account, k.ID, k.Revision
		if strings.HasPrefix(c.authRef, fsm.AliasPrefix) {
			r.Alias = c.authRef // input.resource.alias
		}
		if k.IsServiceKey() {
			r.ServiceProduct = k.Product
		}
	}
	d, err := s.deps.Authorizer.Decide(context.Background(), r, c)
	if err != nil {
		return err
	}
	if !d.Allow {
		return &DeniedError{Reasons: d.Reasons}
	}
	return nil
}

// syncPolicies compiles the policies of the current state if the engine
// decides under an older version: a decision must never use policies or
// identities a committed change has replaced. It costs two atomic loads
// when nothing changed.
func (s *Server) syncPolicies() error {
	st := s.deps.State.State()
	v := st.PolicyVersion()
	if s.deps.Authorizer.Version() == v {
		return nil
	}
	var mods []policy.Module
	st.RegoModules(func(m *fsm.RegoModule) bool {
		mods = append(mods, policy.Module{Name: m.Name, Source: m.Source})
		return true
	})
	var users []policy.UserPolicy
	st.AllUserPolicies(func(p *fsm.UserPolicy) bool {
		users = append(users, policy.UserPolicy{Account: p.Account, User: p.User, Name: p.Name, Document: p.Document})
		return true
	})
	if err := s.deps.Authorizer.Update(context.Background(), v, mods, users); err != nil {
		s.log.Error("the cluster's policies do not compile on this node; refusing requests", "version", v, "err", err)
		return fmt.Errorf("%w: %v", ErrPolicyUnavailable, err)
	}
	return nil
}

// BuildInput implements policy.InputBuilder for the decision authorize asks.
func (c *call) BuildInput(in *policy.Input) {
	k := c.authKey
	*in = policy.Input{
		Action: c.authAction,
		Principal: policy.Principal{Account: c.principal.account, Type: c.principal.kind.String(),
			Name: c.principal.name, AccessKeyID: c.principal.accessKeyID, System: c.principal.system},
		Context: policy.RequestContext{SourceIP: c.ctx.RemoteIP().String(), SecureTransport: c.ctx.IsTLS(),
			Time: c.now.UTC().Format(time.RFC3339), Region: c.s.cfg.Region},
	}
	if c.principal.kind == fsm.PrincipalService {
		in.Principal.ProductCode = c.principal.name
	}
	if n := c.authContext.Len(); n > 0 {
		in.Context.EncryptionContext = make(map[string]string, n)
		for _, p := range c.authContext.Pairs() {
			in.Context.EncryptionContext[p.Key] = p.Value
		}
	}
	if k == nil {
		return
	}
	in.Resource = &policy.Resource{Account: k.Account, ARN: c.s.arn(k), KeyID: k.ID, Class: "customer",
		ProtectionLevel: k.Protection, State: k.State.String(), Creator: k.Account}
	if strings.HasPrefix(c.authRef, fsm.AliasPrefix) {
		in.Resource.Alias = c.authRef
	}
	if k.IsServiceKey() {
		in.Resource.Class, in.Resource.Creator = "service", k.Product
	}
	if len(k.Tags) > 0 {
		in.Resource.Tags = make(map[string]string, len(k.Tags))
		for _, t := range k.Tags {
			in.Resource.Tags[t.Key] = t.Value
		}
	}
}

// ContextDigest implements policy.InputBuilder: the request context the
// policies may read (source IP, TLS, encryption context, time to the second).
func (c *call) ContextDigest() uint64 {
	var h maphash.Hash
	h.SetSeed(contextSeed)
	h.Write(c.ctx.RemoteIP())
	h.WriteByte(boolByte(c.ctx.IsTLS()))
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(c.now.Unix()))
	h.Write(n[:])
	for _, p := range c.authContext.Pairs() {
		binary.BigEndian.PutUint64(n[:], uint64(len(p.Key)))
		h.Write(n[:])
		h.WriteString(p.Key)
		binary.BigEndian.PutUint64(n[:], uint64(len(p.Value)))
		h.Write(n[:])
		h.WriteString(p.Value)
	}
	return h.Sum64()
}

var contextSeed = maphash.MakeSeed()

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// propose commits a state change made on behalf of the caller. The command
// carries the request id (a retried forward is applied once) and the
// fingerprint of the signature nonce (a request replayed to another node
// cannot change state twice). An error of the command itself is returned
// as the error.
func (s *Server) propose(c *call, cmd fsm.Command) (*fsm.Key, error) {
	c.proposed = true
	s.metrics.writes.Inc()
	h := fsm.Header{RequestID: c.requestID, NonceFP: s.nonceFingerprint(c), NonceMinute: c.signedAt.Unix() / 60}
	// The request's first state change carries its trail record.
	audited := c.principal.accessKeyID != "" && !c.recorded
	if audited {
		cmd = s.auditedCommand(c, cmd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout)
	defer cancel()
	r, err := s.deps.Proposer.Propose(ctx, fsm.Encode(h, cmd))
	if err != nil {
		return nil, err
	}
	if audited && r.Err == nil {
		c.recorded = true
	}
	return r.Key, r.Err
}

// nonceFingerprint is HMAC-SHA256 under a root-key-derived key of the
// AccessKeyId and nonce, truncated to 64 bits: the same on every node, and
// not something a caller can aim at another caller's nonce.
func (s *Server) nonceFingerprint(c *call) uint64 {
	m := hmac.New(sha256.New, s.nonceKey)
	var n [binary.MaxVarintLen64]byte
	m.Write(n[:binary.PutUvarint(n[:], uint64(len(c.principal.accessKeyID)))])
	m.Write([]byte(c.principal.accessKeyID))
	m.Write(c.nonce)
	fp := binary.BigEndian.Uint64(m.Sum(nil))
	if fp == 0 {
		fp = 1 // 0 means "no nonce"
	}
	return fp
}

// formatTime renders unix nanoseconds as Alibaba's UTC timestamp.
func formatTime(ns int64) string {
	if ns == 0 {
		return ""
	}
	return time.Unix(0, ns).UTC().Format(timestampLayout)
}
