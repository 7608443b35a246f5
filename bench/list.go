package bench

import "math"

// List is a list of short strings (key ids, ciphertexts) held in one
// buffer without pointers. A million key ids as a []string are a million
// objects the harness's garbage collector marks on every cycle and two
// cache misses for each pick; as a List they are two allocations it never
// scans, and when the items are all as long (key ids are), one cache miss
// for each pick: item i starts at i times that length, with no end to read
// first. The zero List is empty.
type List struct {
	buf  []byte
	ends []uint32 // ends[i]: where item i ends in buf
	size int      // every item's length while all have the same, else -1
}

// NewList returns a List of items.
func NewList(items ...string) List {
	var l List
	for _, s := range items {
		l.Append(s)
	}
	return l
}

// Append adds an item. It panics if the List would pass 4 GiB.
func (l *List) Append(s string) {
	if uint64(len(l.buf))+uint64(len(s)) > math.MaxUint32 {
		panic("bench: List holds at most 4 GiB")
	}
	switch {
	case len(l.ends) == 0:
		l.size = len(s)
	case len(s) != l.size:
		l.size = -1
	}
	l.buf = append(l.buf, s...)
	l.ends = append(l.ends, uint32(len(l.buf)))
}

// Len returns how many items the List holds.
func (l List) Len() int { return len(l.ends) }

// Bytes returns item i, sharing the List's memory: callers must not change
// it.
func (l List) Bytes(i int) []byte {
	if l.size >= 0 {
		start := i * l.size
		return l.buf[start : start+l.size : start+l.size]
	}
	start := uint32(0)
	if i > 0 {
		start = l.ends[i-1]
	}
	return l.buf[start:l.ends[i]:l.ends[i]]
}

// At returns item i as a string.
func (l List) At(i int) string { return string(l.Bytes(i)) }
