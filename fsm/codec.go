package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"
)

// ErrCodec is returned (wrapped) for bytes that are not a valid encoding.
var ErrCodec = errors.New("fsm: malformed encoding")

// encoder appends fields; strings and byte slices are length-prefixed with a
// uvarint, integers are varints, so every encoding is unambiguous.
type encoder struct{ b []byte }

func (e *encoder) u8(v uint8)       { e.b = append(e.b, v) }
func (e *encoder) bool(v bool)      { e.u8(boolByte(v)) }
func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) u64(v uint64)     { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *encoder) str(s string) {
	e.uvarint(uint64(len(s)))
	e.b = append(e.b, s...)
}
func (e *encoder) bytes(p []byte) {
	e.uvarint(uint64(len(p)))
	e.b = append(e.b, p...)
}
func (e *encoder) strs(ss []string) {
	e.uvarint(uint64(len(ss)))
	for _, s := range ss {
		e.str(s)
	}
}

func boolByte(v bool) uint8 {
	if v {
		return 1
	}
	return 0
}

// decoder reads what encoder wrote. The first error sticks; later reads
// return zero values, so callers check err once at the end. A view decoder
// (viewDecoder) returns strings and byte slices that share its input, which
// must then never change.
type decoder struct {
	b    []byte
	err  error
	view bool
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated or invalid %s", ErrCodec, what)
	}
}

func (d *decoder) u8() uint8 {
	if d.err != nil || len(d.b) < 1 {
		d.fail("byte")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) bool() bool {
	switch d.u8() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("bool")
	return false
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) u64() uint64 {
	if d.err != nil || len(d.b) < 8 {
		d.fail("uint64")
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

// length reads a length prefix of items of at least minItem bytes each and
// checks it against the bytes left, so a corrupt length can never make the
// decoder allocate more than its input.
func (d *decoder) length(minItem int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64(len(d.b)/minItem) {
		d.fail("length")
		return 0
	}
	return int(n)
}

func (d *decoder) str() string {
	n := d.length(1)
	if d.err != nil {
		return ""
	}
	var s string
	if d.view {
		s = unsafe.String(unsafe.SliceData(d.b), n)
	} else {
		s = string(d.b[:n])
	}
	d.b = d.b[n:]
	return s
}

func (d *decoder) bytes() []byte {
	n := d.length(1)
	if d.err != nil || n == 0 {
		return nil
	}
	var p []byte
	if d.view {
		p = d.b[:n:n]
	} else {
		p = make([]byte, n)
		copy(p, d.b)
	}
	d.b = d.b[n:]
	return p
}

func (d *decoder) strs() []string {
	n := d.length(1) // each string takes at least its length byte
	if d.err != nil || n == 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.str()
	}
	return ss
}

// fixed reads n bytes (a hash, say), viewing the input.
func (d *decoder) fixed(n int) []byte {
	if d.err != nil || len(d.b) < n {
		d.fail("fixed-size field")
		return make([]byte, n)
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

// done reports an error if bytes are left over: trailing garbage means the
// encoding is not what the decoder thinks it is.
func (d *decoder) done(what string) error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes after %s", ErrCodec, len(d.b), what)
	}
	return d.err
}
