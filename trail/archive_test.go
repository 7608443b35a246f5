package trail

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// bigEvent is a full event with a 16 KiB param, so that records pass the
// 1 MiB segment size quickly.
func bigEvent(seq uint64) Event {
	e := fullEvent(seq)
	e.Params = SortParams(append(slices.Clone(e.Params), Param{"Blob", strings.Repeat(string(rune('a'+seq%26)), 16<<10)}))
	return e
}

func openArchive(t testing.TB, dir string, segBytes int64) *Archive {
	t.Helper()
	a, err := OpenArchive(dir, segBytes)
	if err != nil {
		t.Fatalf("OpenArchive: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func mustAppend(t testing.TB, a *Archive, recs []Sealed) {
	t.Helper()
	if err := a.Append(recs); err != nil {
		t.Fatalf("Append(%d records): %v", len(recs), err)
	}
}

func mustClose(t testing.TB, a *Archive) {
	t.Helper()
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func scan(t testing.TB, a *Archive, from, to uint64) []Sealed {
	t.Helper()
	var out []Sealed
	if err := a.Scan(from, to, func(s Sealed) bool { out = append(out, s); return true }); err != nil {
		t.Fatalf("Scan(%d, %d): %v", from, to, err)
	}
	return out
}

func scanAll(t testing.TB, a *Archive) []Sealed { return scan(t, a, 0, math.MaxUint64) }

func seqsOf(recs []Sealed) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

// wantRecords checks that got are exactly want, byte for byte.
func wantRecords(t testing.TB, got, want []Sealed) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got seqs %v, want %v", seqsOf(got), seqsOf(want))
	}
	for i := range got {
		if !sealedEqual(got[i], want[i]) {
			t.Fatalf("record %d differs from what was appended", want[i].Seq)
		}
	}
}

func wantLast(t testing.TB, a *Archive, seq uint64, hash [32]byte) {
	t.Helper()
	if s, h := a.Last(); s != seq || h != hash {
		t.Fatalf("Last() = %d, %x; want %d, %x", s, h, seq, hash)
	}
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func segName(dir string, first uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d.seg", first))
}

func TestOpenArchiveOnAnEmptyDirHoldsNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "not", "yet")
	a := openArchive(t, dir, 0)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Fatalf("OpenArchive did not create %s: %v", dir, err)
	}
	wantLast(t, a, 0, [32]byte{})
	if h := a.Holes(); len(h) != 0 {
		t.Errorf("Holes() = %v", h)
	}
	if got := scanAll(t, a); len(got) != 0 {
		t.Errorf("Scan gave %v", seqsOf(got))
	}
	called := false
	if err := a.ScanBackward(math.MaxUint64, math.MinInt64, math.MaxInt64, func(Sealed) bool { called = true; return true }); err != nil || called {
		t.Errorf("ScanBackward: called %v, %v", called, err)
	}
	if err := a.Sync(); err != nil {
		t.Errorf("Sync: %v", err)
	}
	if f := segFiles(t, dir); len(f) != 0 {
		t.Errorf("an empty archive wrote %v", f)
	}
}

func TestAppendThenScanGivesBackTheSameRecords(t *testing.T) {
	recs := sealChain(t, 30)
	a := openArchive(t, t.TempDir(), 0)
	for _, batch := range [][]Sealed{recs[:1], recs[1:8], recs[8:8], recs[8:]} {
		mustAppend(t, a, batch)
	}
	wantRecords(t, scanAll(t, a), recs)
	wantRecords(t, scan(t, a, 1, 30), recs)
	wantLast(t, a, 30, recs[29].Hash)
	if h := a.Holes(); len(h) != 0 {
		t.Errorf("Holes() = %v", h)
	}
}

func TestAppendSkipsRecordsAlreadyHeld(t *testing.T) {
	dir := t.TempDir()
	recs := sealChain(t, 15)
	a := openArchive(t, dir, 0)
	mustAppend(t, a, recs[:10])
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	size := fileSize(t, segName(dir, 1))

	mustAppend(t, a, recs[:10])
	mustAppend(t, a, recs[3:4])
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := fileSize(t, segName(dir, 1)); got != size {
		t.Fatalf("re-appending held records grew the segment from %d to %d bytes", size, got)
	}
	wantRecords(t, scanAll(t, a), recs[:10])

	mustAppend(t, a, recs[4:]) // 5..15: 11..15 are new
	wantRecords(t, scanAll(t, a), recs)
	wantLast(t, a, 15, recs[14].Hash)
}

func TestAppendRefusesARecordThatDoesNotLink(t *testing.T) {
	dir := t.TempDir()
	recs := sealChain(t, 15)
	other := sealRange(t, [32]byte{0: 9}, 11, 12, fullEvent) // 11 does not link to 10
	a := openArchive(t, dir, 0)
	mustAppend(t, a, recs[:10])

	if err := a.Append(other[:1]); !errors.Is(err, ErrChainBroken) {
		t.Fatalf("Append of an unlinked record 11 = %v, want ErrChainBroken", err)
	}
	wantLast(t, a, 10, recs[9].Hash)
	// In a batch, the break is found where it is.
	if err := a.Append([]Sealed{recs[10], other[1]}); !errors.Is(err, ErrChainBroken) {
		t.Fatalf("Append of 11 then an unlinked 12 = %v, want ErrChainBroken", err)
	}
	// The archive goes on with the true chain, and holds nothing refused.
	mustAppend(t, a, recs[10:])
	wantRecords(t, scanAll(t, a), recs)
	mustClose(t, a)
	a = openArchive(t, dir, 0)
	wantRecords(t, scanAll(t, a), recs)
}

func TestCloseAndReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	recs := sealChain(t, 20)
	a := openArchive(t, dir, 0)
	mustAppend(t, a, recs[:10])
	mustClose(t, a)

	a = openArchive(t, dir, 0)
	wantLast(t, a, 10, recs[9].Hash)
	wantRecords(t, scanAll(t, a), recs[:10])
	mustAppend(t, a, recs[10:])
	mustClose(t, a)

	a = openArchive(t, dir, 0)
	wantLast(t, a, 20, recs[19].Hash)
	wantRecords(t, scanAll(t, a), recs)
	if f := segFiles(t, dir); !slices.Equal(f, []string{segName(dir, 1)}) {
		t.Errorf("files %v, want the one segment, appended to", f)
	}
	if h := a.Holes(); len(h) != 0 {
		t.Errorf("Holes() = %v", h)
	}
}

func TestSyncWritesAppendedRecordsToTheFile(t *testing.T) {
	dir := t.TempDir()
	recs := sealChain(t, 3)
	a := openArchive(t, dir, 0)
	mustAppend(t, a, recs)
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(segName(dir, 1))
	if err != nil {
		t.Fatal(err)
	}
	at := 0
	for _, r := range recs {
		i := bytes.Index(b[at:], r.Content)
		if i < 0 {
			t.Fatalf("record %d is not in the file after Sync", r.Seq)
		}
		at += i + len(r.Content)
		if !bytes.Equal(b[at:at+32], r.Hash[:]) {
			t.Fatalf("record %d is not followed by its hash", r.Seq)
		}
	}
}

func TestSegmentsRotateAndScanCrossesThem(t *testing.T) {
	dir := t.TempDir()
	recs := sealRange(t, [32]byte{}, 1, 160, bigEvent)
	a := openArchive(t, dir, 0)
	mustAppend(t, a, recs[:150])

	files := segFiles(t, dir)
	if len(files) < 2 {
		t.Fatalf("150 records of %d bytes left %d segment file(s)", len(recs[0].Content), len(files))
	}
	firsts := map[uint64]bool{}
	for i, f := range files {
		var first uint64
		if _, err := fmt.Sscanf(filepath.Base(f), "%020d.seg", &first); err != nil || filepath.Base(f) != filepath.Base(segName(dir, first)) {
			t.Fatalf("%s is not named after a seq", f)
		}
		firsts[first] = true
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte(segmentMagic)) {
			t.Errorf("%s does not start with the segment magic", f)
		}
		closed := bytes.HasSuffix(b, []byte(footerMagic))
		if closed != (i < len(files)-1) {
			t.Errorf("%s: closed %v; only the newest segment stays open", f, closed)
		}
		if closed {
			body := int64(len(b) - footerSize)
			if body < 1<<20 {
				t.Errorf("%s was closed at %d bytes, under 1 MiB", f, body)
			}
			if body-int64(len(recs[0].Content))-64 >= 1<<20 {
				t.Errorf("%s was closed at %d bytes, well past 1 MiB", f, body)
			}
		}
	}
	wantRecords(t, scanAll(t, a), recs[:150])
	// A bound range across every segment boundary.
	var inner []uint64
	for f := range firsts {
		if f > 1 {
			inner = append(inner, f)
		}
	}
	for _, f := range inner {
		wantRecords(t, scan(t, a, f-3, f+2), recs[f-4:f+2])
	}

	mustClose(t, a)
	a = openArchive(t, dir, 0)
	wantRecords(t, scanAll(t, a), recs[:150])
	mustAppend(t, a, recs[150:])
	wantRecords(t, scanAll(t, a), recs)
	wantLast(t, a, 160, recs[159].Hash)
	if h := a.Holes(); len(h) != 0 {
		t.Errorf("Holes() = %v", h)
	}
}

func TestOpenArchiveKeepsSegmentsAtLeastOneMiB(t *testing.T) {
	dir := t.TempDir()
	a := openArchive(t, dir, 1)
	mustAppend(t, a, sealChain(t, 50))
	if f := segFiles(t, dir); len(f) != 1 {
		t.Fatalf("with segBytes 1, 50 small records made %d segments, want 1", len(f))
	}
}

func TestSegmentsRotateAtALargerSegBytes(t *testing.T) {
	dir := t.TempDir()
	recs := sealRange(t, [32]byte{}, 1, 150, bigEvent)
	a := openArchive(t, dir, 2<<20)
	mustAppend(t, a, recs)
	files := segFiles(t, dir)
	if len(files) != 2 {
		t.Fatalf("%d segments, want 2 (2.5 MiB at 2 MiB a segment)", len(files))
	}
	if body := fileSize(t, files[0]) - int64(footerSize); body < 2<<20 {
		t.Errorf("the first segment was closed at %d bytes, under segBytes", body)
	}
	wantRecords(t, scanAll(t, a), recs)
}

func TestReopenCutsATornTail(t *testing.T) {
	const n = 10
	recs := sealChain(t, n+3)
	unlinked := sealRange(t, [32]byte{0: 7}, n+1, n+1, fullEvent)[0]
	frame := func(s Sealed) []byte {
		var b bytes.Buffer
		b.WriteByte(byte(len(s.Content))) // a one-byte uvarint while content < 128 bytes
		if len(s.Content) >= 128 {
			b.Reset()
			b.Write([]byte{byte(len(s.Content)) | 0x80, byte(len(s.Content) >> 7)})
		}
		b.Write(s.Content)
		b.Write(s.Hash[:])
		return b.Bytes()
	}
	badHash := recs[n]
	badHash.Hash[0] ^= 1
	tests := []struct {
		name string
		cut  func(size, lastFrame int64) int64 // bytes to truncate to
		add  []byte                            // or bytes to append
		last uint64                            // the newest record left
	}{
		{"one byte cut", func(s, _ int64) int64 { return s - 1 }, nil, n - 1},
		{"the hash cut", func(s, _ int64) int64 { return s - 32 }, nil, n - 1},
		{"cut into the content", func(s, l int64) int64 { return s - l/2 }, nil, n - 1},
		{"only a length byte left", func(s, l int64) int64 { return s - l + 1 }, nil, n - 1},
		{"exactly the last frame cut", func(s, l int64) int64 { return s - l }, nil, n - 1},
		{"a zero byte appended", nil, []byte{0}, n},
		{"a short frame appended", nil, []byte{5, 'a', 'b'}, n},
		{"0xff bytes appended", nil, bytes.Repeat([]byte{0xff}, 40), n},
		{"a frame too large appended", nil, []byte{0xff, 0xff, 0x7f, 1, 2, 3}, n},
		{"an unlinked record appended", nil, frame(unlinked), n},
		{"a record with a wrong hash appended", nil, frame(badHash), n},
		{"the last record again", nil, frame(recs[n-1]), n},
		{"the next record twice", nil, append(frame(recs[n]), frame(recs[n])...), n + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := segName(dir, 1)
			a := openArchive(t, dir, 0)
			mustAppend(t, a, recs[:n-1])
			if err := a.Sync(); err != nil {
				t.Fatal(err)
			}
			before := fileSize(t, path)
			mustAppend(t, a, recs[n-1:n])
			mustClose(t, a)
			size := fileSize(t, path)
			lastFrame := size - before
			if !bytes.Equal(frame(recs[n-1]), mustRead(t, path)[before:]) {
				t.Fatal("the test's frame encoding is not the archive's")
			}

			want := size
			if tt.cut != nil {
				to := tt.cut(size, lastFrame)
				if err := os.Truncate(path, to); err != nil {
					t.Fatal(err)
				}
				want = before
			} else {
				f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.Write(tt.add); err != nil {
					t.Fatal(err)
				}
				f.Close()
				if tt.last > n {
					want = size + int64(len(frame(recs[n])))
				}
			}

			a = openArchive(t, dir, 0)
			wantLast(t, a, tt.last, recs[tt.last-1].Hash)
			if got := fileSize(t, path); got != want {
				t.Errorf("after reopening, the segment is %d bytes, want %d", got, want)
			}
			wantRecords(t, scanAll(t, a), recs[:tt.last])

			// The lost records come again and are kept.
			mustAppend(t, a, recs)
			wantRecords(t, scanAll(t, a), recs)
			mustClose(t, a)
			a = openArchive(t, dir, 0)
			wantRecords(t, scanAll(t, a), recs)
		})
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHolesNamesTheMissingRanges(t *testing.T) {
	recs := sealChain(t, 12)
	span := func(from, to uint64) []Sealed { return recs[from-1 : to] }
	tests := []struct {
		name    string
		appends [][]Sealed
		holes   []Range
	}{
		{"none", [][]Sealed{span(1, 12)}, nil},
		{"one in the middle", [][]Sealed{span(1, 5), span(9, 12)}, []Range{{6, 8}}},
		{"one at the start", [][]Sealed{span(9, 12)}, []Range{{1, 8}}},
		{"two", [][]Sealed{span(1, 3), span(5, 6), span(10, 12)}, []Range{{4, 4}, {7, 9}}},
		{"a record alone after the start", [][]Sealed{span(2, 2)}, []Range{{1, 1}}},
		{"in one batch", [][]Sealed{slices.Concat(span(1, 2), span(4, 4), span(7, 7))}, []Range{{3, 3}, {5, 6}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			a := openArchive(t, dir, 0)
			var held []Sealed
			for _, b := range tt.appends {
				mustAppend(t, a, b)
				held = append(held, b...)
			}
			if got := a.Holes(); !slices.Equal(got, tt.holes) {
				t.Fatalf("Holes() = %v, want %v", got, tt.holes)
			}
			last := held[len(held)-1]
			wantLast(t, a, last.Seq, last.Hash)
			wantRecords(t, scanAll(t, a), held)
			mustClose(t, a)
			a = openArchive(t, dir, 0)
			if got := a.Holes(); !slices.Equal(got, tt.holes) {
				t.Fatalf("after reopening, Holes() = %v, want %v", got, tt.holes)
			}
			wantRecords(t, scanAll(t, a), held)
		})
	}
}

func TestBackfillFillsAHole(t *testing.T) {
	dir := t.TempDir()
	recs := sealChain(t, 15)
	a := openArchive(t, dir, 0)
	mustAppend(t, a, recs[:5])
	mustAppend(t, a, recs[8:12])

	if err := a.Backfill(nil); err != nil {
		t.Fatalf("Backfill(nil): %v", err)
	}
	if err := a.Backfill(recs[5:7]); err != nil { // 6, 7: the start of the hole
		t.Fatalf("Backfill(6..7): %v", err)
	}
	if got := a.Holes(); !slices.Equal(got, []Range{{8, 8}}) {
		t.Fatalf("after filling 6..7, Holes() = %v", got)
	}
	if err := a.Backfill(recs[7:8]); err != nil {
		t.Fatalf("Backfill(8): %v", err)
	}
	if got := a.Holes(); len(got) != 0 {
		t.Fatalf("after filling the hole, Holes() = %v", got)
	}
	wantRecords(t, scanAll(t, a), recs[:12])
	wantLast(t, a, 12, recs[11].Hash)

	// The whole trail verifies, and appends go on.
	mustAppend(t, a, recs[12:])
	var lines []string
	for _, s := range scanAll(t, a) {
		lines = append(lines, exportLines(t, []Sealed{s})...)
	}
	if v, err := VerifyExport(strings.NewReader(joinLines(lines))); err != nil || v.Count != 15 {
		t.Fatalf("VerifyExport of the backfilled archive: %+v, %v", v, err)
	}
	mustClose(t, a)
	a = openArchive(t, dir, 0)
	if got := a.Holes(); len(got) != 0 {
		t.Fatalf("after reopening, Holes() = %v", got)
	}
	wantRecords(t, scanAll(t, a), recs)
	for _, f := range segFiles(t, dir) {
		if strings.HasSuffix(f, ".tmp") {
			t.Errorf("Backfill left %s", f)
		}
	}
}

func TestBackfillFillsTheHoleBeforeAnArchiveThatStartedLate(t *testing.T) {
	dir := t.TempDir()
	recs := sealChain(t, 12)
	a := openArchive(t, dir, 0)
	mustAppend(t, a, recs[8:])
	if got := a.Holes(); !slices.Equal(got, []Range{{1, 8}}) {
		t.Fatalf("Holes() = %v, want [{1 8}]", got)
	}
	if err := a.Backfill(recs[:8]); err != nil {
		t.Fatalf("Backfill(1..8): %v", err)
	}
	if got := a.Holes(); len(got) != 0 {
		t.Fatalf("Holes() = %v", got)
	}
	wantRecords(t, scanAll(t, a), recs)
	mustClose(t, a)
	a = openArchive(t, dir, 0)
	wantRecords(t, scanAll(t, a), recs)
}

func TestBackfillRefusesRecordsThatDoNotFillAHole(t *testing.T) {
	recs := sealChain(t, 12)
	otherPrev := sealRange(t, [32]byte{0: 3}, 6, 8, fullEvent) // 6 does not link to 5
	forged8 := sealRange(t, recs[6].Hash, 8, 8, bigEvent)[0]   // links to 7, not to 9
	changed8 := recs[7]
	changed8.Content = slices.Clone(changed8.Content)
	changed8.Content[len(changed8.Content)-1] ^= 1 // hash kept: not valid
	tests := []struct {
		name string
		recs []Sealed
	}{
		{"starting inside the hole", recs[6:8]},
		{"starting before the hole", recs[4:8]},
		{"starting at the hole but running past it", recs[5:9]},
		{"with a gap", []Sealed{recs[5], recs[7]}},
		{"not linked to the record before the hole", otherPrev},
		{"not linked to the record after the hole", []Sealed{recs[5], recs[6], forged8}},
		{"not valid", []Sealed{recs[5], recs[6], changed8}},
		{"out of order", []Sealed{recs[6], recs[5], recs[7]}},
		{"held already", recs[1:3]},
		{"beyond the newest", recs[11:12]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			a := openArchive(t, dir, 0)
			mustAppend(t, a, recs[:5])
			mustAppend(t, a, recs[8:11])
			files := segFiles(t, dir)
			if err := a.Backfill(tt.recs); !errors.Is(err, ErrChainBroken) {
				t.Fatalf("Backfill(%v) = %v, want ErrChainBroken", seqsOf(tt.recs), err)
			}
			if got := a.Holes(); !slices.Equal(got, []Range{{6, 8}}) {
				t.Errorf("after a refused backfill, Holes() = %v", got)
			}
			if got := segFiles(t, dir); !slices.Equal(got, files) {
				t.Errorf("a refused backfill left files %v (had %v)", got, files)
			}
			wantRecords(t, scanAll(t, a), slices.Concat(recs[:5], recs[8:11]))
		})
	}
}

// archiveWithThreeSegments holds 1..5, 6..8 (backfilled) and 9..12, with
// commit times commitTimeOf(seq).
func archiveWithThreeSegments(t *testing.T, dir string) (*Archive, []Sealed) {
	recs := sealChain(t, 12)
	a := openArchive(t, dir, 0)
	mustAppend(t, a, recs[:5])
	mustAppend(t, a, recs[8:])
	if err := a.Backfill(recs[5:8]); err != nil {
		t.Fatal(err)
	}
	return a, recs
}

func TestScanHonoursItsBounds(t *testing.T) {
	dir := t.TempDir()
	a, _ := archiveWithThreeSegments(t, dir)
	tests := []struct {
		from, to uint64
		want     []uint64
	}{
		{0, math.MaxUint64, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		{3, 10, []uint64{3, 4, 5, 6, 7, 8, 9, 10}},
		{5, 6, []uint64{5, 6}},
		{8, 9, []uint64{8, 9}},
		{1, 1, []uint64{1}},
		{12, 12, []uint64{12}},
		{12, math.MaxUint64, []uint64{12}},
		{13, 20, nil},
		{10, 3, nil},
		{0, 0, nil},
	}
	check := func(t *testing.T) {
		for _, tt := range tests {
			if got := seqsOf(scan(t, a, tt.from, tt.to)); !slices.Equal(got, tt.want) {
				t.Errorf("Scan(%d, %d) = %v, want %v", tt.from, tt.to, got, tt.want)
			}
		}
	}
	t.Run("as written", check)
	mustClose(t, a)
	a = openArchive(t, dir, 0)
	t.Run("reopened", check)
}

func TestScanStopsWhenToldTo(t *testing.T) {
	a, _ := archiveWithThreeSegments(t, t.TempDir())
	for _, stopAfter := range []int{1, 4, 5, 7} {
		var got []uint64
		err := a.Scan(2, math.MaxUint64, func(s Sealed) bool {
			got = append(got, s.Seq)
			return len(got) < stopAfter
		})
		if err != nil || len(got) != stopAfter || got[0] != 2 {
			t.Errorf("Scan stopping after %d gave %v, %v", stopAfter, got, err)
		}
	}
}

func TestScanBackwardGivesNewestFirst(t *testing.T) {
	dir := t.TempDir()
	a, _ := archiveWithThreeSegments(t, dir)
	ct := commitTimeOf
	all := []uint64{12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}
	tests := []struct {
		name     string
		before   uint64
		min, max int64
		want     []uint64
	}{
		{"everything", math.MaxUint64, math.MinInt64, math.MaxInt64, all},
		{"before 7", 7, math.MinInt64, math.MaxInt64, all[5:]},
		{"before the newest", 12, math.MinInt64, math.MaxInt64, all},
		{"before 0", 0, math.MinInt64, math.MaxInt64, nil},
		{"the middle segment's times", math.MaxUint64, ct(6), ct(8), []uint64{8, 7, 6}},
		{"times between two segments", math.MaxUint64, ct(5) + 1, ct(6) - 1, nil},
		{"the oldest segment's times", math.MaxUint64, math.MinInt64, ct(5), all[7:]},
		{"the newest times", math.MaxUint64, ct(11), math.MaxInt64, all[:4]},
		{"times after the newest", math.MaxUint64, ct(12) + 1, math.MaxInt64, nil},
		{"before a segment in time", 7, ct(9), math.MaxInt64, nil},
		{"before 10 from time 7", 10, ct(7), math.MaxInt64, []uint64{10, 9, 8, 7, 6}},
	}
	check := func(t *testing.T) {
		for _, tt := range tests {
			var got []uint64
			if err := a.ScanBackward(tt.before, tt.min, tt.max, func(s Sealed) bool {
				got = append(got, s.Seq)
				return true
			}); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("%s: ScanBackward(%d, …) = %v, want %v", tt.name, tt.before, got, tt.want)
			}
		}
		var got []uint64
		if err := a.ScanBackward(math.MaxUint64, math.MinInt64, math.MaxInt64, func(s Sealed) bool {
			got = append(got, s.Seq)
			return len(got) < 6
		}); err != nil || !slices.Equal(got, all[:6]) {
			t.Errorf("ScanBackward stopping after 6 gave %v, %v", got, err)
		}
	}
	t.Run("as written", check)
	mustClose(t, a)
	a = openArchive(t, dir, 0)
	t.Run("reopened", check)
}

func TestScanWhileAppendingIsRaceFree(t *testing.T) {
	recs := sealRange(t, [32]byte{}, 1, 150, bigEvent) // three segments
	a := openArchive(t, t.TempDir(), 0)
	done := make(chan struct{})
	scanned := make(chan struct{})
	gone := make(chan struct{})
	var wg sync.WaitGroup
	reader := func(backward bool) {
		for {
			select {
			case <-done:
				return
			default:
			}
			var got []uint64
			check := func(s Sealed) bool {
				if s.Seq == 0 || s.Seq > uint64(len(recs)) || !sealedEqual(s, recs[s.Seq-1]) {
					t.Errorf("a scan gave a record %d that was not appended", s.Seq)
					return false
				}
				got = append(got, s.Seq)
				return true
			}
			var err error
			if backward {
				err = a.ScanBackward(math.MaxUint64, math.MinInt64, math.MaxInt64, check)
				slices.Reverse(got)
			} else {
				err = a.Scan(1, math.MaxUint64, check)
			}
			if err != nil {
				t.Errorf("scan: %v", err)
				return
			}
			for i, s := range got {
				if s != uint64(i+1) {
					t.Errorf("a scan gave %v: not 1..k", got)
					return
				}
			}
			if last, _ := a.Last(); last < uint64(len(got)) {
				t.Errorf("Last() = %d after a scan saw %d records", last, len(got))
				return
			}
			if h := a.Holes(); len(h) != 0 {
				t.Errorf("Holes() = %v", h)
				return
			}
			select {
			case scanned <- struct{}{}:
			default:
			}
		}
	}
	for i := range 3 {
		wg.Go(func() { reader(i == 0) })
	}
	go func() { wg.Wait(); close(gone) }()
	for i := 0; i < len(recs); i += 5 {
		if err := a.Append(recs[i:min(i+5, len(recs))]); err != nil {
			t.Errorf("Append: %v", err)
			break
		}
		select { // let a scan run against this batch before the next
		case <-scanned:
		case <-gone:
		}
	}
	close(done)
	<-gone
	wantRecords(t, scanAll(t, a), recs)
}

func TestOpenClosesAnOlderSegmentLeftOpen(t *testing.T) {
	// A crash while starting a segment can leave the one before it
	// without its footer.
	dir, other := t.TempDir(), t.TempDir()
	recs := sealChain(t, 10)
	a := openArchive(t, dir, 0)
	mustAppend(t, a, recs[:5])
	mustClose(t, a)
	b := openArchive(t, other, 0)
	mustAppend(t, b, recs[5:8])
	mustClose(t, b)
	if err := os.WriteFile(segName(dir, 6), mustRead(t, segName(other, 6)), 0o600); err != nil {
		t.Fatal(err)
	}

	a = openArchive(t, dir, 0)
	wantLast(t, a, 8, recs[7].Hash)
	wantRecords(t, scanAll(t, a), recs[:8])
	if !bytes.HasSuffix(mustRead(t, segName(dir, 1)), []byte(footerMagic)) {
		t.Fatalf("the older segment was not closed")
	}
	mustAppend(t, a, recs[8:])
	mustClose(t, a)

	a = openArchive(t, dir, 0)
	wantRecords(t, scanAll(t, a), recs)
	if h := a.Holes(); len(h) != 0 {
		t.Errorf("Holes() = %v", h)
	}
	if f := segFiles(t, dir); len(f) != 2 {
		t.Errorf("files %v, want 2 segments", f)
	}
	// The closed segment's footer carries its last commit time.
	var got []uint64
	if err := a.ScanBackward(math.MaxUint64, math.MinInt64, commitTimeOf(5), func(s Sealed) bool {
		got = append(got, s.Seq)
		return true
	}); err != nil || !slices.Equal(got, []uint64{5, 4, 3, 2, 1}) {
		t.Errorf("ScanBackward to the closed segment's last time = %v, %v", got, err)
	}
}

func TestOpenDropsASegmentTornAtCreation(t *testing.T) {
	for name, content := range map[string][]byte{
		"an empty file":  nil,
		"half the magic": []byte(segmentMagic[:4]),
		"only the magic": []byte(segmentMagic),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			recs := sealChain(t, 8)
			a := openArchive(t, dir, 0)
			mustAppend(t, a, recs[:5])
			mustClose(t, a)
			if err := os.WriteFile(segName(dir, 6), content, 0o600); err != nil {
				t.Fatal(err)
			}
			a = openArchive(t, dir, 0)
			wantLast(t, a, 5, recs[4].Hash)
			if _, err := os.Stat(segName(dir, 6)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the torn segment is still there: %v", err)
			}
			mustAppend(t, a, recs[5:])
			wantRecords(t, scanAll(t, a), recs)
			mustClose(t, a)
			a = openArchive(t, dir, 0)
			wantRecords(t, scanAll(t, a), recs)
		})
	}
}

func TestReopenAfterTheLastSegmentWasClosedStartsANewOne(t *testing.T) {
	// A crash after a segment got its footer and before the next began.
	dir := t.TempDir()
	recs := sealChain(t, 8)
	a := openArchive(t, dir, 0)
	mustAppend(t, a, recs[:5])
	if err := a.closeOpen(); err != nil {
		t.Fatal(err)
	}
	mustClose(t, a)
	a = openArchive(t, dir, 0)
	wantLast(t, a, 5, recs[4].Hash)
	mustAppend(t, a, recs[5:])
	if f := segFiles(t, dir); !slices.Equal(f, []string{segName(dir, 1), segName(dir, 6)}) {
		t.Errorf("files %v", f)
	}
	mustClose(t, a)
	a = openArchive(t, dir, 0)
	wantRecords(t, scanAll(t, a), recs)
}

func TestOpenArchiveRefusesAFileThatIsNotASegment(t *testing.T) {
	tests := []struct {
		name, file string
		content    []byte
	}{
		{"a name that is not a seq", "notes.seg", []byte(segmentMagic)},
		{"seq 0", fmt.Sprintf("%020d.seg", 0), []byte(segmentMagic)},
		{"a bad magic", fmt.Sprintf("%020d.seg", 1), []byte("NOTMAGIC and more")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, tt.file), tt.content, 0o600); err != nil {
				t.Fatal(err)
			}
			if a, err := OpenArchive(dir, 0); !errors.Is(err, ErrArchive) {
				if a != nil {
					a.Close()
				}
				t.Fatalf("OpenArchive = %v, want ErrArchive", err)
			}
		})
	}
}

func TestScanReportsADamagedSegment(t *testing.T) {
	dir := t.TempDir()
	recs := sealChain(t, 10)
	a := openArchive(t, dir, 0)
	mustAppend(t, a, recs)
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	b := mustRead(t, segName(dir, 1))
	i := bytes.Index(b, recs[4].Content)
	if i < 2 {
		t.Fatal("record 5 not found")
	}
	// Record 5's length prefix (one or two bytes) becomes a zero length.
	prefix := len(b[:i]) - (bytes.LastIndex(b[:i], recs[3].Hash[:]) + 32)
	for j := range prefix {
		b[i-prefix+j] = 0
	}
	if err := os.WriteFile(segName(dir, 1), b, 0o600); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	err := a.Scan(1, math.MaxUint64, func(s Sealed) bool { got = append(got, s.Seq); return true })
	if !errors.Is(err, ErrArchive) {
		t.Fatalf("Scan of a damaged segment = %v, want ErrArchive", err)
	}
	if !slices.Equal(got, []uint64{1, 2, 3, 4}) {
		t.Errorf("Scan gave %v before the damage, want 1..4", got)
	}
	if err := a.ScanBackward(math.MaxUint64, math.MinInt64, math.MaxInt64, func(Sealed) bool { return true }); !errors.Is(err, ErrArchive) {
		t.Errorf("ScanBackward of a damaged segment = %v, want ErrArchive", err)
	}
}

func TestAVerifiedExportOfTheArchiveNamesARecordChangedOnDisk(t *testing.T) {
	dir := t.TempDir()
	recs := sealChain(t, 10)
	a := openArchive(t, dir, 0)
	mustAppend(t, a, recs)
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	b := mustRead(t, segName(dir, 1))
	name := []byte(fullEvent(4).EventName)
	i := bytes.Index(b, recs[3].Content)
	j := bytes.Index(b[i:i+len(recs[3].Content)], name)
	if i < 0 || j < 0 {
		t.Fatal("record 4's event name not found")
	}
	b[i+j] ^= 0x20 // "Decrypt" → "decrypt"
	if err := os.WriteFile(segName(dir, 1), b, 0o600); err != nil {
		t.Fatal(err)
	}
	got := scanAll(t, a)
	if len(got) != 10 || got[3].Valid() {
		t.Fatalf("Scan did not pass on the changed record 4 as it is")
	}
	wantBad(t, badRecord(t, joinLines(exportLines(t, got))), 4, 4, "does not match its hash")
}

// TestBackfillRefusesRecordsTheArchiveCannotReadBack: Backfill checks
// the seqs it is given (Sealed.Seq), the hashes and the links, but not
// that the content is a record its segment can hold: a content whose own
// header names another seq, or one larger than a frame may be, is written
// to a closed segment that every later Scan of it fails on.
func TestBackfillRefusesRecordsTheArchiveCannotReadBack(t *testing.T) {
	recs := sealChain(t, 12)
	liar, err := Seal(99, commitTimeOf(7), recs[5].Hash, encode(fullEvent(7))) // links to 6, says seq 99
	if err != nil {
		t.Fatal(err)
	}
	liar.Seq = 7
	huge := Sealed{Seq: 7, CommitTime: commitTimeOf(7), Content: append(appendHeader(nil, 7, commitTimeOf(7), recs[5].Hash),
		encode(Event{Outcome: Success, Params: []Param{{"Blob", strings.Repeat("x", MaxEventBytes+100)}}})...)}
	huge.Hash = sha256.Sum256(huge.Content)
	tests := []struct {
		name string
		rec  Sealed
	}{
		{"a record whose content says another seq", liar},
		{"a record larger than a frame", huge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := openArchive(t, t.TempDir(), 0)
			mustAppend(t, a, recs[:5])
			mustAppend(t, a, recs[8:])
			err := a.Backfill([]Sealed{recs[5], tt.rec})
			if err == nil {
				serr := a.Scan(1, math.MaxUint64, func(Sealed) bool { return true })
				if serr != nil {
					t.Errorf("Backfill accepted record 7 (%d content bytes), and now Scan = %v", len(tt.rec.Content), serr)
				}
			}
		})
	}
}

// TestAppendRefusesSeqZero: seqs start at 1. Append takes a record 0 into
// an empty archive and names its segment after it, a name OpenArchive
// then refuses: the archive no longer opens.
func TestAppendRefusesSeqZero(t *testing.T) {
	dir := t.TempDir()
	zero, err := Seal(0, 1, [32]byte{}, encode(fullEvent(0)))
	if err != nil {
		t.Fatal(err)
	}
	a := openArchive(t, dir, 0)
	if err := a.Append([]Sealed{zero}); err != nil {
		return // refused: fine
	}
	mustClose(t, a)
	if b, err := OpenArchive(dir, 0); err != nil {
		t.Errorf("Append accepted seq 0, and now OpenArchive = %v", err)
	} else {
		b.Close()
	}
}
