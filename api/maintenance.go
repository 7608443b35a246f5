package api

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/raftkms/raftkms/crypto"
	"github.com/raftkms/raftkms/fsm"
)

// maintenanceBatch bounds the scheduled changes proposed per tick.
const maintenanceBatch = 256

// RunMaintenance carries out scheduled changes while this node leads:
// it destroys keys whose deletion is due and rotates keys whose automatic
// rotation is due or whose primary version nears its encryption limit,
// checking every interval until ctx ends. The FSM judges
// "due" by the command's leader-stamped time, so a change proposed twice
// (by an old and a new leader) happens once.
//
// On every node it also drops (and zeroes) the secrets of AccessKeys that
// were deleted or disabled, and about once a minute reports when this
// node's clients last used their AccessKeys.
func (s *Server) RunMaintenance(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var lastReport time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if s.housekeep(ctx, time.Since(lastReport) >= time.Minute) {
				lastReport = time.Now()
			}
			s.maintain(ctx)
		}
	}
}

// housekeep is the per-node part of maintenance. It reports whether it
// replicated AccessKey use: the first use after a quiet spell is reported
// at the next tick, later ones at most once a minute.
func (s *Server) housekeep(ctx context.Context, report bool) bool {
	ids, times := s.secrets.sweep(s.deps.State.State())
	if !report || len(ids) == 0 || !s.deps.Node.Ready() {
		return false
	}
	if err := s.proposeSystem(ctx, &fsm.TouchAccessKeys{IDs: ids, Times: times}); err != nil {
		s.log.Debug("reporting AccessKey use failed; will retry", "err", err)
		return false
	}
	return true
}

type dueChange struct {
	kind         fsm.DueKind
	account, key string
}

func (s *Server) maintain(ctx context.Context) {
	if !s.deps.Node.Ready() || s.deps.Node.Status().Role != "leader" {
		return
	}
	var todo []dueChange
	s.deps.State.State().Due(s.cfg.Clock().UnixNano(), func(kind fsm.DueKind, account, key string) bool {
		todo = append(todo, dueChange{kind, account, key})
		return len(todo) < maintenanceBatch
	})
	for _, d := range todo {
		if ctx.Err() != nil {
			return
		}
		cmd, err := s.dueCommand(d)
		if err == nil {
			err = s.proposeSystem(ctx, cmd)
		}
		switch {
		case err == nil:
			s.log.Info("scheduled change done", "change", d.kind, "account", d.account, "key", d.key)
		case errors.Is(err, fsm.ErrNotDue), errors.Is(err, fsm.ErrKeyNotFound):
			// Raced with a user's change or an earlier proposal.
		default:
			s.log.Warn("scheduled change failed; will retry", "change", d.kind, "key", d.key, "err", err)
		}
	}
}

func (s *Server) dueCommand(d dueChange) (fsm.Command, error) {
	if d.kind == fsm.DueDeletion {
		return &fsm.DestroyKey{Account: d.account, KeyID: d.key}, nil
	}
	k, ok := s.deps.State.State().Key(d.account, d.key)
	if !ok {
		return nil, fsm.ErrKeyNotFound
	}
	vid := crypto.NewUUID()
	material := crypto.Random(keySpecs[k.Spec])
	defer clear(material)
	wrapped, err := s.deps.Wrapper.Wrap(crypto.PurposeKeyMaterial, vid, material)
	if err != nil {
		return nil, err
	}
	reason := fsm.RotateScheduled
	if d.kind == fsm.DueExhausted {
		reason = fsm.RotateExhausted
	}
	return &fsm.RotateKey{Account: d.account, KeyID: d.key, VersionID: vid, Material: wrapped, Reason: reason}, nil
}

// proposeSystem commits a change the node makes on its own (no client
// request, so no nonce).
func (s *Server) proposeSystem(ctx context.Context, cmd fsm.Command) error {
	_, err := s.proposeSystemKey(ctx, cmd)
	return err
}

// proposeSystemKey is proposeSystem for a command that makes a key.
func (s *Server) proposeSystemKey(ctx context.Context, cmd fsm.Command) (*fsm.Key, error) {
	r, err := s.proposeSystemResult(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return r.Key, r.Err
}

// proposeSystemResult is proposeSystem returning the whole result.
func (s *Server) proposeSystemResult(ctx context.Context, cmd fsm.Command) (fsm.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	defer cancel()
	return s.deps.Proposer.Propose(ctx, fsm.Encode(fsm.Header{RequestID: uuid.Must(uuid.NewRandom())}, cmd))
}
