package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/raftkms/raftkms/fsm"
)

// restoreChunk bounds one RestoreChunk RPC.
const restoreChunk = 1 << 20

// RestoreChunkArgs carries part of a snapshot a follower streams to the leader.
type RestoreChunkArgs struct {
	ID   string
	Data []byte
	Last bool
}

// Restore replaces the whole replicated state with a snapshot in the fsm
// format: disaster recovery into a (fresh) cluster. Raft installs it on the
// leader and then on every follower. On a follower the snapshot is streamed
// to the leader first. Restore returns once a fenced no-op committed after
// the restore is acknowledged: every node that serves then serves the
// restored state.
func (n *Node) Restore(ctx context.Context, r io.Reader) error {
	if n.isLeader() {
		f, err := os.CreateTemp(n.cfg.DataDir, "restore-*.tmp")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		if _, err := io.Copy(f, r); err != nil {
			return err
		}
		return n.restoreFile(ctx, f)
	}
	addr, _ := n.raft.LeaderWithID()
	if addr == "" {
		return ErrNotLeader
	}
	id := make([]byte, 16)
	rand.Read(id)
	buf := make([]byte, restoreChunk)
	for {
		k, err := io.ReadFull(r, buf)
		last := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !last {
			return err
		}
		args := RestoreChunkArgs{ID: hex.EncodeToString(id), Data: buf[:k], Last: last}
		if err := n.peers.call(ctx, string(addr), "RestoreChunk", args, &Empty{}); err != nil {
			return fmt.Errorf("cluster: streaming the snapshot to the leader: %w", err)
		}
		if last {
			return nil
		}
	}
}

// restoreFile restores the snapshot in f on this node, the leader.
func (n *Node) restoreFile(ctx context.Context, f *os.File) error {
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	// Installing a large snapshot takes longer than one write: allow more.
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: size}
	if err := n.raft.Restore(meta, f, 6*n.cfg.ApplyTimeout); err != nil {
		return fmt.Errorf("cluster: restore: %w", err)
	}
	// A fenced no-op: when it is acknowledged, every lease holder applied
	// the restored state.
	_, err = n.Propose(ctx, fsm.Encode(fsm.Header{}, &fsm.Noop{}))
	n.log.Info("restored the cluster state from a snapshot", "err", err)
	return err
}

// uploads holds snapshots followers are streaming to this leader.
type uploads struct {
	mu    sync.Mutex
	files map[string]*os.File
}

func (n *Node) handleRestoreChunk(a RestoreChunkArgs) error {
	if len(a.ID) != 32 {
		return errors.New("cluster: bad upload id")
	}
	u := &n.uploads
	u.mu.Lock()
	f := u.files[a.ID]
	if f == nil {
		var err error
		f, err = os.OpenFile(filepath.Join(n.cfg.DataDir, "restore-"+a.ID+".tmp"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			u.mu.Unlock()
			return err
		}
		u.files[a.ID] = f
	}
	if a.Last {
		delete(u.files, a.ID)
	}
	u.mu.Unlock()
	if _, err := f.Write(a.Data); err != nil || !a.Last {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	return n.restoreFile(context.Background(), f)
}
