package api

import (
	"context"

	"github.com/raftkms/raftkms/crypto"
	"github.com/raftkms/raftkms/fsm"
)

// EnsureRootAccount creates the cluster's first account and its
// administrator AccessKey if no account exists yet. save is called with the
// new AccessKey before it is committed, so a crash in between leaves a file
// the next start overwrites rather than a committed key nobody knows. It
// reports whether it created the account.
func (s *Server) EnsureRootAccount(ctx context.Context, name string, save func(accessKeyID, secret string) error) (bool, error) {
	exists := false
	s.deps.State.State().Accounts(func(*fsm.Account) bool { exists = true; return false })
	if exists {
		return false, nil
	}
	akID, secret := crypto.NewAccessKeyID(), crypto.NewAccessKeySecret()
	if err := save(akID, secret); err != nil {
		return false, err
	}
	wrapped, err := s.deps.Wrapper.Wrap(crypto.PurposeAccessKeySecret, akID, []byte(secret))
	if err != nil {
		return false, err
	}
	cmd := &fsm.CreateAccount{ID: crypto.NewAccountID(), Name: name, AccessKeyID: akID, Secret: wrapped, System: true}
	if err := s.proposeSystem(ctx, cmd); err != nil {
		return false, err
	}
	s.log.Info("created the root account", "account", cmd.ID, "access_key_id", akID)
	return true, nil
}
