package trail

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Segment file format:
//
//	"RKMSTRL1" ‖ frames ‖ footer (once the segment is closed)
//	frame  = uvarint len(content) ‖ content ‖ SHA-256 of content (32 bytes)
//	footer = last seq (8) ‖ last commit time (8) ‖ last hash (32) ‖ "RKMSTEND"
//
// A segment holds a contiguous run of seqs and is named after its first,
// "00000000000000000001.seg". The newest segment is open (no footer) and
// grows by appends; when it reaches the size limit it gets its footer and
// a new one starts. A torn frame at the end of the open segment (a crash
// mid-write) is cut off when the archive opens: those records are still
// in the Raft log and come again.
const (
	segmentMagic = "RKMSTRL1"
	footerMagic  = "RKMSTEND"
	footerSize   = 8 + 8 + 32 + len(footerMagic)
	segmentExt   = ".seg"
)

// Errors of the archive.
var (
	// ErrChainBroken is returned when records offered to the archive do not
	// link to the ones it holds: the archive refuses them rather than hold
	// a chain that does not verify.
	ErrChainBroken = errors.New("trail: records do not link to the archive")
	// ErrArchive is returned (wrapped) for a segment file that cannot be read.
	ErrArchive = errors.New("trail: damaged segment file")
)

// maxContent bounds the content of one record (its header and event).
const maxContent = MaxEventBytes + 64

// checkRecord refuses a record the archive could not read back: content
// too large for a frame, or a header seq other than its Seq.
func checkRecord(r Sealed) error {
	seq, _, _, err := PeekHeader(r.Content)
	switch {
	case err != nil:
		return fmt.Errorf("%w: record %d: %v", ErrChainBroken, r.Seq, err)
	case r.Seq == 0 || seq != r.Seq:
		return fmt.Errorf("%w: record %d holds seq %d", ErrChainBroken, r.Seq, seq)
	case len(r.Content) > maxContent:
		return fmt.Errorf("%w: record %d is %d bytes", ErrChainBroken, r.Seq, len(r.Content))
	}
	return nil
}

// Range is an inclusive range of seqs.
type Range struct{ From, To uint64 }

type segment struct {
	path              string
	first, last       uint64 // last < first: empty (a new open segment)
	firstPrev         [32]byte
	lastHash          [32]byte
	firstTime, lastTS int64 // commit times of the first and last record
	size              int64
}

// Archive is a node's append-only copy of the trail in segment files. It is
// safe for concurrent use: one writer (the state machine's apply hook)
// and any number of readers.
type Archive struct {
	dir      string
	segBytes int64

	mu   sync.Mutex
	segs []*segment // by first seq; a hole may separate two of them
	f    *os.File   // the open segment (the last of segs), nil if none
	w    *bufio.Writer
}

// OpenArchive opens (creating it if need be) the archive in dir. Segments
// are started anew once they pass segBytes.
func OpenArchive(dir string, segBytes int64) (*Archive, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	names, err := filepath.Glob(filepath.Join(dir, "*"+segmentExt))
	if err != nil {
		return nil, err
	}
	slices.Sort(names) // zero-padded first seqs: lexical order is seq order
	a := &Archive{dir: dir, segBytes: max(segBytes, 1<<20)}
	for i, name := range names {
		s, closed, err := readSegment(name)
		if err != nil {
			return nil, err
		}
		if s.last < s.first { // empty: nothing written before a crash
			os.Remove(name)
			continue
		}
		a.segs = append(a.segs, s)
		if !closed {
			if i != len(names)-1 {
				// An older segment left open (a crash while starting the
				// next one): close it now.
				if err := writeFooter(s); err != nil {
					return nil, err
				}
				continue
			}
			f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return nil, err
			}
			a.f, a.w = f, bufio.NewWriterSize(f, 1<<16)
		}
	}
	return a, nil
}

// readSegment reads a segment's extent. An open segment is read whole, its
// frames checked, and cut after the last good frame.
func readSegment(path string) (*segment, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	base := strings.TrimSuffix(filepath.Base(path), segmentExt)
	first, err := strconv.ParseUint(base, 10, 64)
	if err != nil || first == 0 {
		return nil, false, fmt.Errorf("%w: %s: not a segment name", ErrArchive, path)
	}
	s := &segment{path: path, first: first, last: first - 1, size: st.Size()}
	magic := make([]byte, len(segmentMagic))
	if _, err := io.ReadFull(f, magic); err != nil || string(magic) != segmentMagic {
		if st.Size() < int64(len(segmentMagic)) { // torn at creation
			return s, false, os.WriteFile(path, []byte(segmentMagic), 0o600)
		}
		return nil, false, fmt.Errorf("%w: %s: bad magic", ErrArchive, path)
	}
	if st.Size() >= int64(len(segmentMagic)+footerSize) {
		foot := make([]byte, footerSize)
		if _, err := f.ReadAt(foot, st.Size()-int64(footerSize)); err != nil {
			return nil, false, err
		}
		if string(foot[footerSize-len(footerMagic):]) == footerMagic {
			s.last = binary.BigEndian.Uint64(foot)
			s.lastTS = int64(binary.BigEndian.Uint64(foot[8:]))
			copy(s.lastHash[:], foot[16:48])
			fr := bufio.NewReader(io.NewSectionReader(f, int64(len(segmentMagic)), st.Size()))
			rec, err := readFrame(fr)
			if err != nil {
				return nil, false, fmt.Errorf("%w: %s: %v", ErrArchive, path, err)
			}
			_, s.firstTime, s.firstPrev, _ = PeekHeader(rec.Content)
			return s, true, nil
		}
	}
	// Open: read every frame; cut a torn or damaged tail.
	br := bufio.NewReaderSize(f, 1<<16)
	good := int64(len(segmentMagic))
	for {
		rec, err := readFrame(br)
		if err != nil {
			break
		}
		if !rec.Valid() || rec.Seq != s.last+1 || (s.last >= s.first && rec.prevOf() != s.lastHash) {
			break
		}
		if s.last < s.first {
			s.firstTime, s.firstPrev = rec.CommitTime, rec.prevOf()
		}
		s.last, s.lastHash, s.lastTS = rec.Seq, rec.Hash, rec.CommitTime
		good += frameSize(rec)
	}
	if good < st.Size() {
		if err := os.Truncate(path, good); err != nil {
			return nil, false, err
		}
	}
	s.size = good
	return s, false, nil
}

func (s Sealed) prevOf() [32]byte {
	_, _, prev, _ := PeekHeader(s.Content)
	return prev
}

func frameSize(s Sealed) int64 {
	return int64(uvarintLen(uint64(len(s.Content))) + len(s.Content) + 32)
}

func readFrame(r *bufio.Reader) (Sealed, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return Sealed{}, err
	}
	if n == 0 || n > maxContent {
		return Sealed{}, fmt.Errorf("%w: frame of %d bytes", ErrArchive, n)
	}
	buf := make([]byte, n+32)
	if _, err := io.ReadFull(r, buf); err != nil {
		return Sealed{}, err
	}
	s := Sealed{Content: buf[:n:n]}
	copy(s.Hash[:], buf[n:])
	s.Seq, s.CommitTime, _, err = PeekHeader(s.Content)
	return s, err
}

func appendFrame(w *bufio.Writer, s Sealed) error {
	var n [binary.MaxVarintLen64]byte
	w.Write(n[:binary.PutUvarint(n[:], uint64(len(s.Content)))])
	w.Write(s.Content)
	_, err := w.Write(s.Hash[:])
	return err
}

func writeFooter(s *segment) error {
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	var foot [footerSize]byte
	binary.BigEndian.PutUint64(foot[:], s.last)
	binary.BigEndian.PutUint64(foot[8:], uint64(s.lastTS))
	copy(foot[16:], s.lastHash[:])
	copy(foot[48:], footerMagic)
	if _, err := f.Write(foot[:]); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Last returns the seq and hash of the newest record held (0 if none).
func (a *Archive) Last() (uint64, [32]byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.segs) == 0 {
		return 0, [32]byte{}
	}
	s := a.segs[len(a.segs)-1]
	return s.last, s.lastHash
}

// Append adds records, in seq order. Records the archive already holds are
// skipped; a record that follows the newest directly must link to it. A
// record beyond the next seq starts a new segment after a hole, which
// Backfill can fill later.
func (a *Archive) Append(recs []Sealed) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range recs {
		if err := checkRecord(r); err != nil {
			return err
		}
		var cur *segment
		if len(a.segs) > 0 {
			cur = a.segs[len(a.segs)-1]
			if r.Seq <= cur.last {
				continue
			}
		}
		switch {
		case cur != nil && r.Seq == cur.last+1:
			if r.prevOf() != cur.lastHash {
				return fmt.Errorf("%w: record %d does not link to record %d", ErrChainBroken, r.Seq, cur.last)
			}
			if a.f == nil || cur.size >= a.segBytes {
				if err := a.startSegment(r); err != nil {
					return err
				}
			}
		default: // the first record, or a hole before r
			if err := a.startSegment(r); err != nil {
				return err
			}
		}
		cur = a.segs[len(a.segs)-1]
		if err := appendFrame(a.w, r); err != nil {
			return err
		}
		if cur.last < cur.first {
			cur.firstTime, cur.firstPrev = r.CommitTime, r.prevOf()
		}
		cur.last, cur.lastHash, cur.lastTS = r.Seq, r.Hash, r.CommitTime
		cur.size += frameSize(r)
	}
	return nil
}

// startSegment closes the open segment and opens a new one for r.
func (a *Archive) startSegment(r Sealed) error {
	if err := a.closeOpen(); err != nil {
		return err
	}
	path := filepath.Join(a.dir, fmt.Sprintf("%020d%s", r.Seq, segmentExt))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(segmentMagic); err != nil {
		f.Close()
		return err
	}
	a.f, a.w = f, bufio.NewWriterSize(f, 1<<16)
	a.segs = append(a.segs, &segment{path: path, first: r.Seq, last: r.Seq - 1, size: int64(len(segmentMagic))})
	return syncDir(a.dir)
}

// closeOpen writes the open segment's footer.
func (a *Archive) closeOpen() error {
	if a.f == nil {
		return nil
	}
	if err := a.w.Flush(); err != nil {
		return err
	}
	if err := a.f.Close(); err != nil {
		return err
	}
	a.f, a.w = nil, nil
	return writeFooter(a.segs[len(a.segs)-1])
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Sync makes every appended record durable.
func (a *Archive) Sync() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil
	}
	if err := a.w.Flush(); err != nil {
		return err
	}
	return a.f.Sync()
}

// Close syncs and closes the open segment (it stays open on disk: the next
// OpenArchive appends to it).
func (a *Archive) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil
	}
	err := a.w.Flush()
	if err == nil {
		err = a.f.Sync()
	}
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	a.f, a.w = nil, nil
	return err
}

// Holes returns the ranges of seqs before the newest record that the
// archive does not hold.
func (a *Archive) Holes() []Range {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Range
	next := uint64(1)
	for _, s := range a.segs {
		if s.first > next {
			out = append(out, Range{next, s.first - 1})
		}
		next = s.last + 1
	}
	return out
}

// Backfill writes records that fill (the start of) a hole, as a closed
// segment of their own. They must be contiguous, start at the hole's first
// seq and link to the records on both sides of it.
func (a *Archive) Backfill(recs []Sealed) error {
	if len(recs) == 0 {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	from := recs[0].Seq
	i := 0 // the segment after the hole
	for i < len(a.segs) && a.segs[i].first <= from {
		i++
	}
	var prevHash [32]byte
	start := uint64(1)
	if i > 0 {
		prevHash, start = a.segs[i-1].lastHash, a.segs[i-1].last+1
	}
	if i == len(a.segs) || from != start || recs[len(recs)-1].Seq >= a.segs[i].first {
		return fmt.Errorf("%w: records %d-%d do not fill the start of a hole", ErrChainBroken, from, recs[len(recs)-1].Seq)
	}
	for j, r := range recs {
		if err := checkRecord(r); err != nil {
			return err
		}
		if !r.Valid() || r.Seq != from+uint64(j) || r.prevOf() != prevHash {
			return fmt.Errorf("%w: backfilled record %d", ErrChainBroken, r.Seq)
		}
		prevHash = r.Hash
	}
	if recs[len(recs)-1].Seq+1 == a.segs[i].first && prevHash != a.segs[i].firstPrev {
		return fmt.Errorf("%w: backfilled records do not lead to record %d", ErrChainBroken, a.segs[i].first)
	}
	path := filepath.Join(a.dir, fmt.Sprintf("%020d%s", from, segmentExt))
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<16)
	w.WriteString(segmentMagic)
	s := &segment{path: path, first: from, last: recs[len(recs)-1].Seq, firstPrev: recs[0].prevOf(),
		lastHash: prevHash, firstTime: recs[0].CommitTime, lastTS: recs[len(recs)-1].CommitTime, size: int64(len(segmentMagic))}
	for _, r := range recs {
		appendFrame(w, r)
		s.size += frameSize(r)
	}
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = writeFooterTo(tmp, s)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	a.segs = slices.Insert(a.segs, i, s)
	return syncDir(a.dir)
}

func writeFooterTo(path string, s *segment) error {
	c := *s
	c.path = path
	return writeFooter(&c)
}

// Scan calls fn for every record held with from ≤ seq ≤ to, in seq order,
// until fn returns false. Records appended while it runs may be left out.
func (a *Archive) Scan(from, to uint64, fn func(Sealed) bool) error {
	segs, err := a.view()
	if err != nil {
		return err
	}
	for _, s := range segs {
		if s.last < from || s.first > to {
			continue
		}
		more := true
		err := readFrames(s, func(r Sealed) bool {
			if r.Seq < from {
				return true
			}
			if r.Seq > to || r.Seq > s.last {
				more = r.Seq <= to
				return false
			}
			more = fn(r)
			return more
		})
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// ScanBackward calls fn for every record held with seq ≤ before, newest
// first, until fn returns false. Segments whose commit times all fall
// outside [minTime, maxTime] are skipped.
func (a *Archive) ScanBackward(before uint64, minTime, maxTime int64, fn func(Sealed) bool) error {
	segs, err := a.view()
	if err != nil {
		return err
	}
	for i := len(segs) - 1; i >= 0; i-- {
		s := segs[i]
		if s.first > before || s.lastTS < minTime || s.firstTime > maxTime {
			continue
		}
		var recs []Sealed
		if err := readFrames(s, func(r Sealed) bool {
			if r.Seq > before || r.Seq > s.last {
				return false
			}
			recs = append(recs, r)
			return true
		}); err != nil {
			return err
		}
		for j := len(recs) - 1; j >= 0; j-- {
			if !fn(recs[j]) {
				return nil
			}
		}
	}
	return nil
}

// view flushes the open segment and returns a copy of the segment list.
func (a *Archive) view() ([]segment, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.w != nil {
		if err := a.w.Flush(); err != nil {
			return nil, err
		}
	}
	out := make([]segment, len(a.segs))
	for i, s := range a.segs {
		out[i] = *s
	}
	return out, nil
}

func readFrames(s segment, fn func(Sealed) bool) error {
	f, err := os.Open(s.path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	magic := make([]byte, len(segmentMagic))
	if _, err := io.ReadFull(br, magic); err != nil || !bytes.Equal(magic, []byte(segmentMagic)) {
		return fmt.Errorf("%w: %s: bad magic", ErrArchive, s.path)
	}
	for seq := s.first; seq <= s.last; seq++ {
		r, err := readFrame(br)
		if err != nil {
			return fmt.Errorf("%w: %s: record %d: %v", ErrArchive, s.path, seq, err)
		}
		// The hash is not checked here: a changed record goes on to
		// whoever reads it (an export, a verification), which names it.
		if r.Seq != seq {
			return fmt.Errorf("%w: %s: found record %d where %d belongs", ErrArchive, s.path, r.Seq, seq)
		}
		if !fn(r) {
			return nil
		}
	}
	return nil
}
