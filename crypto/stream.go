package crypto

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
)

// Encrypted streams (snapshot files): a header, then frames that each seal
// up to 1 MiB with AES-256-GCM.
//
//	"RKMSENC1" ‖ base nonce[12] ‖ frames
//	frame = final flag[1] ‖ length[4, big-endian] ‖ AES-GCM(chunk) with tag
//
// Frame i uses nonce = base ⊕ i and AAD = magic ‖ base ‖ i ‖ final flag, so
// frames cannot be reordered, dropped, or moved between streams, and a
// stream cut short (no final frame) is detected.
const (
	streamMagic = "RKMSENC1"
	streamChunk = 1 << 20
)

// ErrStream is returned when an encrypted stream is damaged, truncated or
// sealed with another key.
var ErrStream = errors.New("crypto: encrypted stream is damaged, truncated or sealed with another key")

type streamWriter struct {
	w     *bufio.Writer
	aead  cipher.AEAD
	base  [12]byte
	i     uint64
	buf   []byte
	out   []byte
	err   error
	close bool
}

// NewStreamWriter returns a writer that encrypts everything written to it
// into w under key (32 bytes). Close writes the final frame; without it the
// stream does not open.
func NewStreamWriter(w io.Writer, key []byte) (io.WriteCloser, error) {
	aead, err := streamAEAD(key)
	if err != nil {
		return nil, err
	}
	s := &streamWriter{w: bufio.NewWriter(w), aead: aead, buf: make([]byte, 0, streamChunk)}
	rand.Read(s.base[:])
	s.w.WriteString(streamMagic)
	s.w.Write(s.base[:])
	return s, nil
}

func streamAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, ErrKeySize
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func frameParams(base [12]byte, i uint64, final bool) (nonce [12]byte, aad []byte) {
	nonce = base
	var ctr [8]byte
	binary.BigEndian.PutUint64(ctr[:], i)
	for j := range 8 {
		nonce[4+j] ^= ctr[j]
	}
	aad = append([]byte(streamMagic), base[:]...)
	aad = append(aad, ctr[:]...)
	return nonce, append(aad, boolByte(final))
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func (s *streamWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 && s.err == nil {
		k := min(len(p), streamChunk-len(s.buf))
		s.buf = append(s.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(s.buf) == streamChunk {
			s.frame(false)
		}
	}
	return n, s.err
}

func (s *streamWriter) frame(final bool) {
	nonce, aad := frameParams(s.base, s.i, final)
	s.out = s.aead.Seal(s.out[:0], nonce[:], s.buf, aad)
	var hdr [5]byte
	hdr[0] = boolByte(final)
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(s.out)))
	if _, err := s.w.Write(hdr[:]); err != nil {
		s.err = err
	} else if _, err := s.w.Write(s.out); err != nil {
		s.err = err
	}
	s.buf = s.buf[:0]
	s.i++
}

func (s *streamWriter) Close() error {
	if s.close {
		return s.err
	}
	s.close = true
	if s.err == nil {
		s.frame(true)
	}
	if s.err == nil {
		s.err = s.w.Flush()
	}
	return s.err
}

type streamReader struct {
	r     *bufio.Reader
	aead  cipher.AEAD
	base  [12]byte
	i     uint64
	plain []byte
	in    []byte
	done  bool
	err   error
}

// NewStreamReader decrypts a stream made by NewStreamWriter. Read returns
// ErrStream on any damage — including a missing final frame — so a reader
// that sees io.EOF has had the whole, authentic stream.
func NewStreamReader(r io.Reader, key []byte) (io.Reader, error) {
	aead, err := streamAEAD(key)
	if err != nil {
		return nil, err
	}
	s := &streamReader{r: bufio.NewReader(r), aead: aead}
	hdr := make([]byte, len(streamMagic)+12)
	if _, err := io.ReadFull(s.r, hdr); err != nil || string(hdr[:len(streamMagic)]) != streamMagic {
		return nil, ErrStream
	}
	copy(s.base[:], hdr[len(streamMagic):])
	return s, nil
}

func (s *streamReader) Read(p []byte) (int, error) {
	for len(s.plain) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		if s.done {
			if _, err := s.r.ReadByte(); err != io.EOF {
				s.err = ErrStream // data after the final frame
				return 0, s.err
			}
			return 0, io.EOF
		}
		s.next()
	}
	n := copy(p, s.plain)
	s.plain = s.plain[n:]
	return n, nil
}

func (s *streamReader) next() {
	var hdr [5]byte
	if _, err := io.ReadFull(s.r, hdr[:]); err != nil {
		s.err = ErrStream // cut short: no final frame
		return
	}
	final := hdr[0] == 1
	n := binary.BigEndian.Uint32(hdr[1:])
	if hdr[0] > 1 || n < uint32(s.aead.Overhead()) || n > streamChunk+uint32(s.aead.Overhead()) {
		s.err = ErrStream
		return
	}
	if cap(s.in) < int(n) {
		s.in = make([]byte, n)
	}
	s.in = s.in[:n]
	if _, err := io.ReadFull(s.r, s.in); err != nil {
		s.err = ErrStream
		return
	}
	nonce, aad := frameParams(s.base, s.i, final)
	pt, err := s.aead.Open(s.in[:0], nonce[:], s.in, aad)
	if err != nil {
		s.err = ErrStream
		return
	}
	s.plain, s.done = pt, final
	s.i++
}
