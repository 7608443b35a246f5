package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftkms/raftkms/fsm"
	"github.com/raftkms/raftkms/trail"
)

// Archiver keeps this node's trail segment files (a trail.Archive) in step
// with the state machine: every record the state machine seals is appended
// as it is applied, so it is on disk before it leaves the state's window;
// the files are synced before a snapshot lets Raft drop the log entries
// that hold the records; and records this node never applied — it joined,
// or caught up from a snapshot, after they had left the window — are
// fetched from the other members.
//
// Wire it as the FSM's OnTrail, OnRestore and BeforePersist hooks, and as
// the cluster's TrailSource; then call Start with the node.
type Archiver struct {
	dir      string
	segBytes int64
	fsm      *fsm.FSM
	log      *slog.Logger

	mu      sync.Mutex // guards a (replaced when a restore forks the history)
	a       *trail.Archive
	broken  atomic.Bool   // an append failed: see Healthy
	wake    chan struct{} // a hole may need filling
	started atomic.Bool
}

// NewArchiver opens the archive in dir. f is the node's state machine (its
// hooks must call the Archiver's methods).
func NewArchiver(dir string, segBytes int64, log *slog.Logger) (*Archiver, error) {
	a, err := trail.OpenArchive(dir, segBytes)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Archiver{dir: dir, segBytes: segBytes, a: a, log: log, wake: make(chan struct{}, 1)}, nil
}

// SetFSM names the state machine whose window the archiver reads.
func (ar *Archiver) SetFSM(f *fsm.FSM) { ar.fsm = f }

// Archive returns the archive, for reading.
func (ar *Archiver) Archive() *trail.Archive {
	ar.mu.Lock()
	defer ar.mu.Unlock()
	return ar.a
}

// Healthy reports whether every record applied so far was archived.
func (ar *Archiver) Healthy() bool { return !ar.broken.Load() }

// OnTrail is the FSM's OnTrail hook.
func (ar *Archiver) OnTrail(recs []trail.Sealed) {
	a := ar.Archive()
	last, _ := a.Last()
	if err := a.Append(recs); err != nil {
		if !ar.broken.Swap(true) {
			ar.log.Error("cannot write the trail's segment files; records stay in the replicated window and on the other nodes",
				"dir", ar.dir, "err", err)
		}
		return
	}
	for _, r := range recs {
		if r.Seq > last {
			if r.Seq > last+1 { // a hole opened before r
				ar.poke()
			}
			break
		}
	}
}

// OnRestore is the FSM's OnRestore hook: the state was replaced by a
// snapshot. Window records the archive lacks are appended. If the archive
// holds records past the snapshot's head, it holds a history the cluster
// no longer has (a restore of an older snapshot): it is moved aside, kept
// for auditors, and a new archive starts.
func (ar *Archiver) OnRestore() {
	st := ar.fsm.State()
	head, _ := st.TrailHead()
	last, _ := ar.Archive().Last()
	if last > head || !ar.windowMatches(st) {
		ar.mu.Lock()
		ar.a.Close()
		aside := fmt.Sprintf("%s.before-restore-%d", ar.dir, time.Now().Unix())
		err := os.Rename(ar.dir, aside)
		if err == nil {
			ar.a, err = trail.OpenArchive(ar.dir, ar.segBytes)
		}
		ar.mu.Unlock()
		if err != nil {
			ar.broken.Store(true)
			ar.log.Error("cannot start a new trail archive after a restore", "err", err)
			return
		}
		ar.log.Warn("the restored snapshot's trail does not continue this node's segment files; they were moved aside",
			"moved_to", aside, "restored_head", head, "archived_last", last)
	}
	var recs []trail.Sealed
	st.TrailRecords(0, func(s trail.Sealed) bool { recs = append(recs, s); return true })
	ar.OnTrail(recs)
}

// windowMatches reports whether the archive agrees with the window where
// both hold a record: the newest record they share has the same hash.
func (ar *Archiver) windowMatches(st *fsm.State) bool {
	last, lastHash := ar.Archive().Last()
	first := st.TrailFirst()
	if first == 0 || last < first {
		return true
	}
	same := true
	st.TrailRecords(last, func(s trail.Sealed) bool {
		same = s.Seq != last || s.Hash == lastHash
		return false
	})
	return same
}

// Sync is the FSM's BeforePersist hook.
func (ar *Archiver) Sync() error {
	if ar.broken.Load() {
		return nil // the window keeps what the files lack; do not stop snapshots
	}
	return ar.Archive().Sync()
}

// Source is the cluster's TrailSource: records from the archive, then from
// the window for what the archive does not hold yet.
func (ar *Archiver) Source(from, to uint64, maxBytes int) ([]trail.Sealed, error) {
	var out []trail.Sealed
	size := 0
	next := from
	add := func(s trail.Sealed) bool {
		if s.Seq != next || s.Seq > to || size >= maxBytes {
			return false
		}
		out = append(out, s)
		size += len(s.Content) + 32
		next++
		return true
	}
	if err := ar.Archive().Scan(from, to, add); err != nil {
		return nil, err
	}
	if next <= to && size < maxBytes && ar.fsm != nil {
		ar.fsm.State().TrailRecords(next, add)
	}
	return out, nil
}

func (ar *Archiver) poke() {
	select {
	case ar.wake <- struct{}{}:
	default:
	}
}

// Start fills holes in the archive from the other members until ctx ends:
// at once, whenever a restore or a jump leaves one, and every minute while
// one stays (no member may have the records yet).
func (ar *Archiver) Start(ctx context.Context, n *Node) {
	if ar.started.Swap(true) {
		return
	}
	go func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			ar.backfill(ctx, n)
			select {
			case <-ctx.Done():
				return
			case <-ar.wake:
			case <-t.C:
			}
		}
	}()
}

func (ar *Archiver) backfill(ctx context.Context, n *Node) {
	for _, h := range ar.Archive().Holes() {
		for from := h.From; from <= h.To; {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			recs, err := n.FetchTrail(cctx, from, h.To)
			cancel()
			if err != nil {
				ar.log.Info("trail records are missing here and no member could send them yet", "from", from, "to", h.To, "err", err)
				return
			}
			if err := ar.Archive().Backfill(recs); err != nil {
				ar.log.Warn("trail records from a member do not fit this node's archive", "from", from, "err", err)
				return
			}
			from += uint64(len(recs))
		}
		ar.log.Info("trail records filled in from another member", "from", h.From, "to", h.To)
	}
}

// Close closes the archive.
func (ar *Archiver) Close() error { return ar.Archive().Close() }

// DefaultArchiveDir is where a node keeps its segment files.
func DefaultArchiveDir(dataDir string) string { return filepath.Join(dataDir, "trail") }

// Scan reads the archive (see trail.Archive.Scan).
func (ar *Archiver) Scan(from, to uint64, fn func(trail.Sealed) bool) error {
	return ar.Archive().Scan(from, to, fn)
}

// ScanBackward reads the archive newest first (see trail.Archive.ScanBackward).
func (ar *Archiver) ScanBackward(before uint64, minTime, maxTime int64, fn func(trail.Sealed) bool) error {
	return ar.Archive().ScanBackward(before, minTime, maxTime, fn)
}

// Last returns the newest archived record's seq and hash.
func (ar *Archiver) Last() (uint64, [32]byte) { return ar.Archive().Last() }

// Holes returns the ranges of records this node lacks.
func (ar *Archiver) Holes() []trail.Range { return ar.Archive().Holes() }
