package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	walfs "github.com/hashicorp/raft-wal/fs"
	waltypes "github.com/hashicorp/raft-wal/types"
)

// segmentFS is raft-wal's file system (walfs) with two changes.
//
// Segment files are private: 0600, as raft.db is (raft-wal makes them 0644,
// inside a 0700 directory).
//
// A new segment is, when one is ready, a spare file already written with
// zeros. raft-wal preallocates a segment with fallocate: its blocks are
// reserved but unwritten, and the first write into each marks it written —
// a change to the file's extents, which the fsync after every append then
// commits through ext4's journal. Writing over blocks that hold zeros
// changes data only. On this project's machines appending 10 KB and
// fsyncing took 190–216 µs and 104–114 µs of CPU in a fallocated file,
// 109–136 µs and 63–72 µs in a zero-filled one (docs/PERFORMANCE.md); a
// node commits its trail that way once per batch. So once a segment is half written, the next one
// is prepared beside it, as spareName: written with zeros in steps of
// zeroStep, each fsynced so the disk takes it in small pieces between the
// log's own fsyncs, with a pause between steps. Creating a segment renames
// it. A new log's first segment, made while the node starts, is written with
// zeros at once; a segment needed before its spare is ready is preallocated
// as raft-wal does. The cost: 64 MiB more written to the disk per 64 MiB of
// log, in the background, and one spare's space.
type segmentFS struct {
	*walfs.FS
	dir string
	log *slog.Logger

	mu        sync.Mutex
	readySize uint64 // the size of the ready spare; 0: none
	preparing bool
	closed    atomic.Bool
	wg        sync.WaitGroup
	opened    atomic.Bool // a segment was created or opened for writing

	fromSpare atomic.Uint64 // segments made from a spare (tests)
}

const (
	spareName = "next-segment.zeroed" // not a segment name (*.wal): raft-wal's listing skips it
	zeroStep  = 1 << 20
	zeroPause = 5 * time.Millisecond // between steps: the log's fsyncs go first
)

// newSegmentFS returns the file system for the WAL in dir. A spare left by
// an earlier run may be incomplete: it is removed.
func newSegmentFS(dir string, log *slog.Logger) (*segmentFS, error) {
	if err := os.Remove(filepath.Join(dir, spareName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return &segmentFS{FS: walfs.New(), dir: dir, log: log}, nil
}

func (p *segmentFS) Create(dir, name string, size uint64) (waltypes.WritableFile, error) {
	path := filepath.Join(dir, name)
	if !p.opened.Swap(true) && dir == p.dir {
		// A new log's first segment, made as the node starts, before it
		// serves: written with zeros now, at full speed.
		p.mu.Lock()
		if p.writeSpare(size, 0) == nil {
			p.readySize = size
		}
		p.mu.Unlock()
	}
	if f, ok := p.takeSpare(dir, path, size); ok {
		return &segmentFile{f: f, fs: p, size: size, syncDir: dir}, nil
	}
	f, err := p.FS.Create(dir, name, size)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		f.Close()
		return nil, err
	}
	return &segmentFile{f: f, fs: p, size: size}, nil
}

func (p *segmentFS) OpenWriter(dir, name string) (waltypes.WritableFile, error) {
	p.opened.Store(true)
	f, err := p.FS.OpenWriter(dir, name)
	if err != nil {
		return nil, err
	}
	var size uint64
	if fi, err := os.Stat(filepath.Join(dir, name)); err == nil {
		size = uint64(fi.Size())
	}
	return &segmentFile{f: f, fs: p, size: size}, nil
}

// takeSpare renames a ready spare of size to path and opens it.
func (p *segmentFS) takeSpare(dir, path string, size uint64) (*os.File, bool) {
	p.mu.Lock()
	ready := p.readySize == size && dir == p.dir
	if ready {
		p.readySize = 0
	}
	p.mu.Unlock()
	if !ready {
		return nil, false
	}
	spare := filepath.Join(dir, spareName)
	if _, err := os.Lstat(path); err == nil { // Create's contract: never replace a file
		return nil, false
	}
	if err := os.Rename(spare, path); err != nil {
		p.log.Warn("cannot use the prepared Raft log segment; preallocating one", "err", err)
		return nil, false
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		p.log.Warn("cannot open the prepared Raft log segment; preallocating one", "err", err)
		os.Remove(path)
		return nil, false
	}
	p.fromSpare.Add(1)
	return f, true
}

// prepare starts writing a spare of size, unless one is ready or being
// written.
func (p *segmentFS) prepare(size uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.preparing || p.readySize == size || p.closed.Load() {
		return
	}
	p.preparing, p.readySize = true, 0
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		err := p.writeSpare(size, zeroPause)
		p.mu.Lock()
		p.preparing = false
		if err == nil {
			p.readySize = size
		}
		p.mu.Unlock()
		if err != nil && !p.closed.Load() {
			p.log.Warn("cannot prepare the next Raft log segment; it will be preallocated", "err", err)
		}
	}()
}

// writeSpare writes spareName with size zero bytes, zeroStep at a time,
// each step fsynced and followed by pause.
func (p *segmentFS) writeSpare(size uint64, pause time.Duration) (err error) {
	path := filepath.Join(p.dir, spareName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	zeros := make([]byte, zeroStep)
	for off := uint64(0); off < size; off += zeroStep {
		if p.closed.Load() {
			return errors.New("closed")
		}
		if _, err := f.WriteAt(zeros[:min(zeroStep, size-off)], int64(off)); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		time.Sleep(pause)
	}
	return nil
}

// close stops preparing and waits for it.
func (p *segmentFS) close() {
	p.closed.Store(true)
	p.wg.Wait()
}

// segmentFile is an open segment. Once a write reaches its second half the
// next segment is prepared. One made from a spare syncs its directory at its
// first Sync (syncDir), as walfs does for a file it created, so the rename
// is durable before anything in the file is relied on.
type segmentFile struct {
	f        waltypes.WritableFile
	fs       *segmentFS
	size     uint64 // 0: unknown, never prepare
	syncDir  string // "" once synced, or for a file walfs made
	prepared atomic.Bool
}

func (f *segmentFile) WriteAt(b []byte, off int64) (int, error) {
	if f.size > 0 && uint64(off)+uint64(len(b)) > f.size/2 && !f.prepared.Swap(true) {
		f.fs.prepare(f.size)
	}
	return f.f.WriteAt(b, off)
}

func (f *segmentFile) ReadAt(b []byte, off int64) (int, error) { return f.f.ReadAt(b, off) }
func (f *segmentFile) Close() error                            { return f.f.Close() }

func (f *segmentFile) Sync() error {
	if err := f.f.Sync(); err != nil {
		return err
	}
	if f.syncDir == "" {
		return nil
	}
	d, err := os.Open(f.syncDir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", f.syncDir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		f.syncDir = ""
	}
	return err
}
