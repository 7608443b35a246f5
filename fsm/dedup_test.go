package fsm

import (
	"bytes"
	"encoding/binary"
	"sync"
	"testing"
)

// A snapshot's view of the duplicate filters stays what it captured while
// Apply goes on changing them — entries it holds marked recorded, new ids
// and nonces, ids and minutes expiring — and Persist reads it concurrently
// with those changes (run with -race).
func TestASnapshotsFiltersStayAsCapturedWhileApplyGoesOn(t *testing.T) {
	d := newDedup()
	id := func(i int) (b [16]byte) {
		binary.BigEndian.PutUint64(b[:], uint64(i)+1)
		return b
	}
	const n = 5 * reqChunkLen / 2
	for i := range n {
		d.recordRequest(id(i), reqEntry{time: int64(i), code: uint16(i % 3), account: "acct", keyID: "key-1"})
		if err := d.checkNonce(uint64(i)+1, int64(i%3), int64(i%3)*minuteNS); err != nil {
			t.Fatal(err)
		}
	}
	v := d.capture()
	var want encoder
	v.encode(&want)

	var wg sync.WaitGroup
	var during []encoder
	wg.Go(func() {
		for range 20 {
			var e encoder
			v.encode(&e)
			during = append(during, e)
		}
	})
	for i := range n {
		d.markRecorded(id(i), int64(n+i)) // entries the view holds
		d.recordRequest(id(n+i), reqEntry{time: int64(n + i)})
		d.checkNonce(uint64(n+i)+1, int64(i%3), int64(i%3)*minuteNS)
	}
	d.expire(int64(RequestWindow) + int64(n) + 10) // drops chunks the view holds
	d.expire(int64(NonceWindow) + 5*minuteNS)      // and minutes
	wg.Wait()

	for i, e := range append(during, func() encoder { var e encoder; v.encode(&e); return e }()) {
		if !bytes.Equal(e.b, want.b) {
			t.Fatalf("encoding %d of the view differs from the one at capture", i)
		}
	}
	var now encoder
	cur := d.capture()
	cur.encode(&now)
	if bytes.Equal(now.b, want.b) {
		t.Fatal("the filters did not change: the test shows nothing")
	}
	var back dedup
	dc := decoder{b: want.b}
	back.decode(&dc)
	if err := dc.done("dedup"); err != nil {
		t.Fatal(err)
	}
	if e, ok := back.request(id(7)); !ok || e.code != 7%3 || e.recorded || e.keyID != "key-1" {
		t.Fatalf("restored entry: %+v, %v", e, ok)
	}
}

// The filters' snapshot record is written into the room reserved for it up
// front: growing a record of tens of MB as it was written cost a tenth of a
// snapshot's CPU. Extreme values (long strings, the largest times and
// codes) must still fit.
func TestTheFiltersRecordFitsTheRoomReservedForIt(t *testing.T) {
	d := newDedup()
	long := string(bytes.Repeat([]byte("a"), 300)) // a two-byte length
	for i := range 3 * reqChunkLen {
		var id [16]byte
		binary.BigEndian.PutUint64(id[:], uint64(i)+1)
		d.recordRequest(id, reqEntry{time: -1 << 62, code: 0xffff, account: long, keyID: long[:i%200], recorded: true})
		if err := d.checkNonce(^uint64(i), int64(i%3), 2*minuteNS); err != nil {
			t.Fatal(err)
		}
	}
	v := d.capture()
	var e encoder
	v.encode(&e)
	if room := v.maxSize(); len(e.b) > room {
		t.Fatalf("encoded %d bytes; reserved %d", len(e.b), room)
	}
	// One array for the record, one for sorting each minute's nonces (and
	// one or two the race detector adds); growing either takes dozens.
	if n := testing.AllocsPerRun(1, func() { var e encoder; v.encode(&e) }); n > 4 {
		t.Fatalf("encoding allocated %v times: the record grew", n)
	}
}
