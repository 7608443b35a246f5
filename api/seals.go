package api

import (
	"context"
	"errors"
	"sync"

	"github.com/raftkms/raftkms/crypto"
	"github.com/raftkms/raftkms/fsm"
)

// reservation is a key version this node wants another grant of
// encryptions for (crypto.VersionKey.TakeSeal).
type reservation struct {
	account, keyID, versionID string
	b                         *crypto.VersionKey
}

// sealReserver reserves grants through Raft in batches: a node that starts
// using thousands of keys makes one entry for many of them, not one each.
// While one batch commits, the next fills.
type sealReserver struct {
	s     *Server
	mu    sync.Mutex
	queue []reservation
	work  chan struct{}
	stop  chan struct{}
	done  chan struct{}
}

func newSealReserver(s *Server) *sealReserver {
	r := &sealReserver{s: s, work: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	return r
}

func (r *sealReserver) add(res reservation) {
	r.mu.Lock()
	r.queue = append(r.queue, res)
	r.mu.Unlock()
	wake(r.work)
}

func (r *sealReserver) loop() {
	defer close(r.done)
	for {
		select {
		case <-r.work:
		case <-r.stop:
			return
		}
		for {
			r.mu.Lock()
			n := min(len(r.queue), fsm.MaxReserveBatch)
			batch := append([]reservation(nil), r.queue[:n]...)
			r.queue = append(r.queue[:0], r.queue[n:]...)
			r.mu.Unlock()
			if n == 0 {
				break
			}
			r.reserve(batch)
		}
	}
}

// reserve commits one batch and tells each version how it went.
func (r *sealReserver) reserve(batch []reservation) {
	cmd := &fsm.ReserveSealsBatch{Items: make([]fsm.ReserveSeals, len(batch))}
	for i, res := range batch {
		cmd.Items[i] = fsm.ReserveSeals{Account: res.account, KeyID: res.keyID, VersionID: res.versionID, Count: crypto.SealGrant}
	}
	res, err := r.s.proposeSystemResult(context.Background(), cmd)
	if err == nil && len(res.Codes) != len(batch) {
		err = errors.New("api: a seal reservation's outcome is unknown (a retried batch)")
	}
	if err != nil {
		r.s.log.Warn("reserving encryptions failed; will retry", "versions", len(batch), "err", err)
		for _, res := range batch {
			res.b.ReserveFailed(false)
		}
		return
	}
	for i, item := range batch {
		switch err := fsm.CodeError(res.Codes[i]); {
		case err == nil:
			item.b.Reserved(crypto.SealGrant)
		case errors.Is(err, fsm.ErrSealLimit), errors.Is(err, fsm.ErrNotPrimary), errors.Is(err, fsm.ErrKeyNotFound):
			item.b.ReserveFailed(true) // this version encrypts no more: the key rotated, or will
		default:
			item.b.ReserveFailed(false)
		}
	}
}

func (r *sealReserver) close() {
	close(r.stop)
	<-r.done
}
