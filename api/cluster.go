package api

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/raftkms/raftkms/cluster"
	"github.com/raftkms/raftkms/crypto"
)

// Cluster administration. These actions belong to raftkms (OwnVersion) and
// only the root principal of the system account may call them (the
// built-in policy's cluster rule).

// streamed is returned by a handler that wrote its response itself.
type streamed struct{}

type clusterReply struct {
	reply
	Node    cluster.Status `json:"Node"`
	Members struct {
		Member []cluster.Member `json:"Member"`
	} `json:"Members"`
}

func (s *Server) describeCluster(c *call) (any, error) {
	if err := s.authorize(c, "cluster:DescribeCluster", nil); err != nil {
		return nil, err
	}
	ms, err := s.deps.Node.Members()
	if err != nil {
		return nil, err
	}
	out := clusterReply{reply: c.reply(), Node: s.deps.Node.Status()}
	out.Members.Member = ms
	return out, nil
}

func (s *Server) removeClusterNode(c *call) (any, error) {
	id, err := c.required("NodeId", 256)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(c, "cluster:RemoveClusterNode", nil); err != nil {
		return nil, err
	}
	if err := s.deps.Node.RemoveNode(id); err != nil {
		return nil, err
	}
	return c.reply(), nil
}

func (s *Server) transferClusterLeadership(c *call) (any, error) {
	id, err := c.text("NodeId", 256)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(c, "cluster:TransferClusterLeadership", nil); err != nil {
		return nil, err
	}
	if err := s.deps.Node.TransferLeadership(id); err != nil {
		return nil, err
	}
	return c.reply(), nil
}

// snapshotKey encrypts snapshot files: a subkey of the root key, so a file
// restores only into a cluster with the same root key.
func (s *Server) snapshotKey() ([]byte, error) { return s.deps.Wrapper.Derive("snapshot-file") }

// saveClusterSnapshot streams this node's state (it serves under a lease,
// so the state is current), encrypted under the root key.
func (s *Server) saveClusterSnapshot(c *call) (any, error) {
	if err := s.authorize(c, "cluster:SaveClusterSnapshot", nil); err != nil {
		return nil, err
	}
	key, err := s.snapshotKey()
	if err != nil {
		return nil, err
	}
	snaps, log := s.deps.Snapshots, s.log
	c.setHeaders("application/octet-stream")
	c.ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer clear(key)
		enc, err := crypto.NewStreamWriter(w, key)
		if err == nil {
			err = snaps.WriteSnapshot(enc)
		}
		if err == nil {
			err = enc.Close()
		}
		if err != nil {
			// The stream ends without its final frame: the file is
			// recognisably incomplete and will not restore.
			log.Error("snapshot download failed", "err", err)
		}
	})
	return streamed{}, nil
}

// maxSnapshotUpload bounds RestoreClusterSnapshot's body.
const maxSnapshotUpload = 16 << 30

// restoreClusterSnapshot replaces the cluster's state with an encrypted
// snapshot file. The body is spooled to the data directory while its hash
// is checked (x-acs-content-sha256 is signed), decrypted and authenticated
// completely, and only then handed to Raft.
func (s *Server) restoreClusterSnapshot(c *call) (any, error) {
	if !c.v3 {
		// V1 signs the parameters only: an old snapshot file could be
		// swapped in for the body. V3 signs the body's hash.
		return nil, ErrIncompleteSig
	}
	if err := s.authorize(c, "cluster:RestoreClusterSnapshot", nil); err != nil {
		return nil, err
	}
	key, err := s.snapshotKey()
	if err != nil {
		return nil, err
	}
	defer clear(key)
	spool, err := os.CreateTemp(s.cfg.SpoolDir, "upload-*.tmp")
	if err != nil {
		return nil, err
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	h := sha256.New()
	body := c.body()
	n, err := io.Copy(io.MultiWriter(spool, h), io.LimitReader(body, maxSnapshotUpload+1))
	if err != nil {
		return nil, err
	}
	if n > maxSnapshotUpload {
		return nil, invalid("body", "a snapshot file is at most %d bytes", maxSnapshotUpload)
	}
	if hex.EncodeToString(h.Sum(nil)) != string(c.ctx.Request.Header.Peek("x-acs-content-sha256")) {
		return nil, ErrContentHash
	}
	plain, err := os.CreateTemp(s.cfg.SpoolDir, "restore-*.tmp")
	if err != nil {
		return nil, err
	}
	defer os.Remove(plain.Name())
	defer plain.Close()
	spool.Seek(0, io.SeekStart)
	dec, err := crypto.NewStreamReader(spool, key)
	if err == nil {
		_, err = io.Copy(plain, dec)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	plain.Seek(0, io.SeekStart)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := s.deps.Node.Restore(ctx, plain); err != nil {
		if errors.Is(err, ErrBadSnapshot) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrRestore, err)
	}
	return c.reply(), nil
}
