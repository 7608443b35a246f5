package bench

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// baselineVersion stands for a key version id in the baseline's blobs
// (36 bytes, as raftkms's).
const baselineVersion = "00000000-0000-4000-8000-000000000000"

// Baseline is a bare fasthttp server whose one handler does exactly the
// cryptography of GenerateDataKey — a random data key, its base64 text
// sealed with AES-256-GCM under a key held in memory, base64, JSON — with
// no signature check, policy, Raft or trail: what this machine's HTTP and
// crypto stack can do, to measure raftkms against.
type Baseline struct {
	aead cipher.AEAD
	srv  *fasthttp.Server
}

// NewBaseline returns a baseline server with a fresh key.
func NewBaseline() (*Baseline, error) {
	key := make([]byte, 32)
	rand.Read(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	b := &Baseline{aead: aead}
	b.srv = &fasthttp.Server{Handler: b.handle, Name: "kmsbench-baseline", NoDefaultServerHeader: true,
		NoDefaultDate: true, NoDefaultContentType: true, ReadTimeout: 30 * time.Second, IdleTimeout: time.Minute}
	return b, nil
}

// Serve serves on ln until Shutdown.
func (b *Baseline) Serve(ln net.Listener) error { return b.srv.Serve(ln) }

// Shutdown stops the server.
func (b *Baseline) Shutdown() error { return b.srv.Shutdown() }

func (b *Baseline) handle(ctx *fasthttp.RequestCtx) {
	if string(ctx.Path()) == "/metrics" { // nothing to report; answer like a node would
		ctx.SetStatusCode(404)
		return
	}
	n, err := ctx.QueryArgs().GetUint("NumberOfBytes")
	if err != nil || n <= 0 || n > 1024 {
		n = 32
	}
	var raw [1024]byte
	rand.Read(raw[:n])
	var text [1368]byte // base64 of 1024 bytes
	plain := text[:base64.StdEncoding.EncodedLen(n)]
	base64.StdEncoding.Encode(plain, raw[:n])
	var sealed [36 + 12 + 1368 + 16]byte
	blob := append(sealed[:0], baselineVersion...)
	iv := blob[len(blob) : len(blob)+12]
	rand.Read(iv)
	blob = b.aead.Seal(blob[:len(blob)+12], iv, plain, nil)
	out := make([]byte, 0, 2048)
	out = append(out, `{"KeyId":"`...)
	if id := ctx.QueryArgs().Peek("KeyId"); plainID(id) {
		out = append(out, id...)
	}
	out = append(out, `","KeyVersionId":"`+baselineVersion+`","CiphertextBlob":"`...)
	out = base64.StdEncoding.AppendEncode(out, blob)
	out = append(out, `","Plaintext":"`...)
	out = append(out, plain...)
	out = append(out, `","RequestId":"`...)
	var id [16]byte
	rand.Read(id[:])
	out = base64.RawURLEncoding.AppendEncode(out, id[:])
	out = append(out, `"}`...)
	ctx.SetContentType("application/json;charset=utf-8")
	ctx.Write(out)
	clear(raw[:n])
	clear(plain)
}

// plainID reports whether id needs no JSON escaping (a key id does not).
func plainID(id []byte) bool {
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
