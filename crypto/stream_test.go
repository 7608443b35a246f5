package crypto

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func seal(t *testing.T, key, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewStreamWriter(&buf, key)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data[:len(data)/3])
	w.Write(data[len(data)/3:])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func open(key, sealed []byte) ([]byte, error) {
	r, err := NewStreamReader(bytes.NewReader(sealed), key)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestStreamRoundTrip(t *testing.T) {
	key := bytes.Repeat([]byte{9}, 32)
	for _, n := range []int{0, 1, streamChunk - 1, streamChunk, streamChunk + 1, 3*streamChunk + 17} {
		data := Random(n)
		got, err := open(key, seal(t, key, data))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: round trip = %d bytes, %v", n, len(got), err)
		}
	}
}

func TestStreamDetectsDamage(t *testing.T) {
	key := bytes.Repeat([]byte{9}, 32)
	sealed := seal(t, key, Random(2*streamChunk+100))
	frame0 := len(streamMagic) + 12
	cases := map[string][]byte{
		"truncated (no final frame)": sealed[:len(sealed)-200],
		"cut at a frame boundary":    sealed[:frame0+5+streamChunk+16],
		"flipped byte":               flip(sealed, len(sealed)/2),
		"final flag forged":          flip(sealed, frame0),
		"trailing data":              append(bytes.Clone(sealed), 1),
		"not a stream":               []byte("hello"),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := open(key, b); !errors.Is(err, ErrStream) {
				t.Fatalf("open err = %v, want ErrStream", err)
			}
		})
	}
	if _, err := open(bytes.Repeat([]byte{8}, 32), sealed); !errors.Is(err, ErrStream) {
		t.Fatalf("another key: err = %v, want ErrStream", err)
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}
