package trail

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// Journal file format:
//
//	"RKMSJNL1" ‖ journal id (16 bytes) ‖ frames
//	frame   = payload length (uint32 LE) ‖ CRC-32C of payload (uint32 LE) ‖ payload
//	payload = number of its first event (uvarint) ‖ count (uvarint) ‖ count × (uvarint length ‖ event)
//
// A node writes the records of the requests it serves to its journal
// before it answers them, then ships them into the replicated trail. Each
// start of a node begins a journal with a new random id whose events are
// numbered 1, 2, 3 …: the state machine remembers the last number it
// applied of each journal, so an event shipped twice (a retry, or a
// restart that ships again what was shipped just before a crash) enters
// the trail once. Files are named "<id hex>-<first number, 20 digits>.jnl".
const (
	journalMagic = "RKMSJNL1"
	journalExt   = ".jnl"
	journalHead  = len(journalMagic) + 16
	// JournalFileBytes is the size at which a journal file is closed and
	// the next one starts; shipped files are removed whole.
	JournalFileBytes = 8 << 20
	maxJournalFrame  = 64 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// JournalBatch is a run of events of one journal, numbered First,
// First+1, ….
type JournalBatch struct {
	ID     [16]byte
	First  uint64
	Events [][]byte
}

type journalFile struct {
	path string
	id   [16]byte
	last uint64 // number of its last event
}

// Journal is a node's write-ahead file of trail records not yet known to be
// in the replicated trail. It is safe for concurrent use.
type Journal struct {
	dir  string
	sync bool

	mu        sync.Mutex
	id        [16]byte
	next      uint64 // number of the next event
	f         *os.File
	fileFirst uint64
	size      int64
	closed    []journalFile // files no longer written to, oldest first
	buf       []byte
	recovered []JournalBatch
	cut       int64 // bytes of damaged frames ignored at open
}

// OpenJournal opens the journal in dir, creating dir if needed. The events
// of earlier starts that are still there are kept for Recovered. sync makes
// every Append wait until its frame is on disk (fsync) — without it the
// frame is in the operating system's cache: safe from a crash of the node,
// not from one of the machine.
func OpenJournal(dir string, sync bool) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	j := &Journal{dir: dir, sync: sync, next: 1}
	if _, err := rand.Read(j.id[:]); err != nil {
		return nil, err
	}
	names, err := filepath.Glob(filepath.Join(dir, "*"+journalExt))
	if err != nil {
		return nil, err
	}
	slices.Sort(names) // by id, then first number
	for _, path := range names {
		batches, cut, err := readJournalFile(path)
		if err != nil {
			return nil, err
		}
		j.cut += cut
		if len(batches) == 0 {
			if err := os.Remove(path); err != nil {
				return nil, err
			}
			continue
		}
		last := batches[len(batches)-1]
		j.closed = append(j.closed, journalFile{path: path, id: last.ID, last: last.First + uint64(len(last.Events)) - 1})
		j.recovered = append(j.recovered, batches...)
	}
	return j, nil
}

// readJournalFile returns the frames of one file up to the first that is
// torn or damaged, and how many bytes it ignored after them.
func readJournalFile(path string) ([]JournalBatch, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	r := bufio.NewReaderSize(f, 1<<16)
	head := make([]byte, journalHead)
	if _, err := io.ReadFull(r, head); err != nil || string(head[:len(journalMagic)]) != journalMagic {
		return nil, st.Size(), nil // a file cut short before its header was written
	}
	var id [16]byte
	copy(id[:], head[len(journalMagic):])
	var out []JournalBatch
	pos := int64(journalHead)
	var want uint64
	for {
		b, n, ok := readJournalFrame(r, id)
		if !ok || (want != 0 && b.First != want) {
			return out, st.Size() - pos, nil
		}
		out = append(out, b)
		pos += n
		want = b.First + uint64(len(b.Events))
	}
}

func readJournalFrame(r *bufio.Reader, id [16]byte) (JournalBatch, int64, bool) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return JournalBatch{}, 0, false
	}
	size := binary.LittleEndian.Uint32(h[:4])
	if size == 0 || size > maxJournalFrame {
		return JournalBatch{}, 0, false
	}
	p := make([]byte, size)
	if _, err := io.ReadFull(r, p); err != nil || crc32.Checksum(p, crcTable) != binary.LittleEndian.Uint32(h[4:]) {
		return JournalBatch{}, 0, false
	}
	b := JournalBatch{ID: id}
	first, k := binary.Uvarint(p)
	if k <= 0 || first == 0 {
		return JournalBatch{}, 0, false
	}
	p = p[k:]
	count, k := binary.Uvarint(p)
	if k <= 0 || count == 0 || count > uint64(len(p)) {
		return JournalBatch{}, 0, false
	}
	p = p[k:]
	b.First, b.Events = first, make([][]byte, 0, count)
	for range count {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return JournalBatch{}, 0, false
		}
		b.Events = append(b.Events, p[k:k+int(n)])
		p = p[k+int(n):]
	}
	if len(p) != 0 {
		return JournalBatch{}, 0, false
	}
	return b, int64(len(h)) + int64(size), true
}

// Recovered returns, once, the events earlier starts left in the journal,
// oldest first within each journal id. They may already be in the trail
// (shipped just before a crash): the state machine skips those.
func (j *Journal) Recovered() []JournalBatch {
	j.mu.Lock()
	defer j.mu.Unlock()
	r := j.recovered
	j.recovered = nil
	return r
}

// Cut returns how many bytes of torn or damaged frames OpenJournal found
// after the last good frame of its files (a crash mid-write leaves some).
func (j *Journal) Cut() int64 { return j.cut }

// ID returns the id of the journal this start writes.
func (j *Journal) ID() [16]byte { return j.id }

// Append writes events as one frame and returns the number of the first.
// When it returns nil the events are in the file (on disk, with sync).
func (j *Journal) Append(events [][]byte) (uint64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(events) == 0 {
		return j.next, nil
	}
	if j.f == nil {
		if err := j.startFile(); err != nil {
			return 0, err
		}
	}
	b := append(j.buf[:0], 0, 0, 0, 0, 0, 0, 0, 0) // length and CRC, filled in below
	b = binary.AppendUvarint(b, j.next)
	b = binary.AppendUvarint(b, uint64(len(events)))
	for _, ev := range events {
		b = binary.AppendUvarint(b, uint64(len(ev)))
		b = append(b, ev...)
	}
	if len(b)-8 > maxJournalFrame {
		return 0, fmt.Errorf("trail: a journal frame of %d bytes is too large", len(b)-8)
	}
	binary.LittleEndian.PutUint32(b[:4], uint32(len(b)-8))
	binary.LittleEndian.PutUint32(b[4:8], crc32.Checksum(b[8:], crcTable))
	j.buf = b
	// A file whose write failed may end in a torn frame, where reading
	// stops: nothing more is written to it.
	if _, err := j.f.Write(b); err != nil {
		j.closeFile()
		return 0, err
	}
	if j.sync {
		if err := j.f.Sync(); err != nil {
			j.closeFile()
			return 0, err
		}
	}
	first := j.next
	j.next += uint64(len(events))
	j.size += int64(len(b))
	if j.size >= JournalFileBytes {
		j.closeFile()
	}
	return first, nil
}

func (j *Journal) fileName(first uint64) string {
	return filepath.Join(j.dir, hex.EncodeToString(j.id[:])+"-"+fmt.Sprintf("%020d", first)+journalExt)
}

func (j *Journal) startFile() error {
	path := j.fileName(j.next)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	head := append([]byte(journalMagic), j.id[:]...)
	if _, err := f.Write(head); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if j.sync {
		if err := f.Sync(); err != nil {
			f.Close()
			os.Remove(path)
			return err
		}
		if err := syncDir(j.dir); err != nil {
			f.Close()
			os.Remove(path)
			return err
		}
	}
	j.f, j.fileFirst, j.size = f, j.next, int64(len(head))
	return nil
}

// closeFile stops writing the current file; the next Append starts one.
func (j *Journal) closeFile() {
	j.f.Close()
	if j.next > j.fileFirst {
		j.closed = append(j.closed, journalFile{path: j.fileName(j.fileFirst), id: j.id, last: j.next - 1})
	} else {
		os.Remove(j.fileName(j.fileFirst))
	}
	j.f = nil
}

// Shipped says that the events of journal id up to number through are in
// the replicated trail: the files that hold only such events are removed.
func (j *Journal) Shipped(id [16]byte, through uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	var errs []error
	kept := j.closed[:0]
	for _, f := range j.closed {
		if f.id == id && f.last <= through {
			if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		kept = append(kept, f)
	}
	clear(j.closed[len(kept):])
	j.closed = kept
	if id == j.id && j.f != nil && j.next-1 <= through && j.next > j.fileFirst {
		j.closeFile()
		j.closed = j.closed[:len(j.closed)-1]
		if err := os.Remove(j.fileName(j.fileFirst)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close closes the journal; what it holds is shipped after the next start.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}
