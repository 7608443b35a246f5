package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/raftkms/raftkms/api/sign"
	"github.com/raftkms/raftkms/crypto"
	"github.com/raftkms/raftkms/fsm"
	"github.com/raftkms/raftkms/trail"
)

// maxParams bounds the parameters of one request.
const maxParams = 64

// call is one RPC request on its way through the server. Calls are pooled:
// byte slices in params alias the fasthttp request and are valid only
// until the handler returns, so anything kept longer (a Raft command, a
// cache entry) is copied out first.
type call struct {
	s         *Server
	ctx       *fasthttp.RequestCtx
	now       time.Time
	requestID [16]byte
	reqIDText [36]byte
	reqID     string // requestID as text (views reqIDText), the RequestId of the response
	version   string // views the request
	v3        bool   // signed with V3, which covers the body
	proposed  bool   // the request proposed a state change
	bodyRead  bool
	bodyBuf   []byte
	form      fasthttp.Args
	action    string // views the request
	params    []sign.KV
	principal principal
	nonce     []byte // signature nonce (copied), for the replicated replay check
	signedAt  time.Time
	scratch   []byte // signature strings
	blob      []byte // decoded or sealed CiphertextBlob bytes
	aad       []byte
	plain     []byte // plaintext and data keys: cleared when the call ends
	plainText []byte // base64 of a data key: cleared when the call ends
	blobText  []byte
	out       []byte // the response body

	pairs       []crypto.Pair  // EncryptionContext entries
	authAction  string         // what authorize asks, for BuildInput
	authKey     *fsm.Key       //
	authRef     string         // the KeyId as given (an alias shows in input.resource.alias)
	authContext crypto.Context // the EncryptionContext the action uses

	// The request's trail record.
	recorded     bool   // committed with the request's state change (propose)
	trailVersion string // the key version the request used
	trailKeyID   string // the key a request without an authorised key made (CreateKey)
	trailIP      []byte
	trailARN     []byte
	trailParams  []trail.Param

	// The fast-path replies, kept here so returning one allocates nothing.
	cipherReply  cipherReply
	dataKeyReply dataKeyReply
	decryptReply decryptReply
	// The fast path's keys and version, read into the call instead of a
	// new Key per request (fsm.State.ResolveKeyInto): the key an action
	// names (cryptoKey) and the key and version of a ciphertext
	// (parseBlob), apart because ReEncrypt uses both.
	key, blobKey fsm.Key
	blobVersion  fsm.Version
}

var callPool = sync.Pool{New: func() any {
	return &call{params: make([]sign.KV, 0, 16), scratch: make([]byte, 0, 4096), nonce: make([]byte, 0, 64),
		blob: make([]byte, 0, 256), aad: make([]byte, 0, 32), plain: make([]byte, 0, maxDataKeyLen),
		plainText: make([]byte, 0, 2*maxDataKeyLen), blobText: make([]byte, 0, 2*maxDataKeyLen), out: make([]byte, 0, 4096)}
}}

func getCall(s *Server, ctx *fasthttp.RequestCtx, now time.Time) *call {
	c := callPool.Get().(*call)
	c.s, c.ctx, c.now = s, ctx, now
	newRequestID(&c.requestID, &c.reqIDText)
	c.reqID = bstr(c.reqIDText[:])
	return c
}

// newRequestID fills id with a random (version 4) UUID and text with its
// canonical form, without allocating.
func newRequestID(id *[16]byte, text *[36]byte) {
	rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	j := 0
	for i, b := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			text[j] = '-'
			j++
		}
		text[j], text[j+1] = hexDigits[b>>4], hexDigits[b&0xf]
		j += 2
	}
}

// resetKey empties k for its next request, keeping its Versions' array
// (emptied: its ids view records a pooled call must not keep alive).
func resetKey(k *fsm.Key) {
	v := k.Versions[:cap(k.Versions)]
	clear(v)
	*k = fsm.Key{Versions: v[:0]}
}

func putCall(c *call) {
	c.ctx, c.s, c.authKey, c.authRef, c.authContext = nil, nil, nil, "", crypto.Context{}
	c.params = c.params[:0]
	clear(c.pairs) // views of the request
	c.pairs = c.pairs[:0]
	c.nonce = c.nonce[:0]
	c.scratch = c.scratch[:0]
	// The secrets a call held: a data key or plaintext, its base64, the
	// reply that carried them. Each was written as a prefix of its buffer,
	// the slice's length (what a call set and never shortened), so that is
	// what is cleared, not the whole capacity (7 KiB a request).
	clear(c.plain)
	clear(c.plainText)
	clear(c.out)
	c.plain, c.plainText = c.plain[:0], c.plainText[:0]
	c.cipherReply, c.dataKeyReply, c.decryptReply = cipherReply{}, dataKeyReply{}, decryptReply{}
	resetKey(&c.key)
	resetKey(&c.blobKey)
	c.blobVersion = fsm.Version{}
	c.principal = principal{}
	c.version, c.action, c.proposed, c.bodyRead = "", "", false, false
	c.recorded, c.trailVersion, c.trailKeyID = false, "", ""
	c.bodyBuf = c.bodyBuf[:0]
	c.form.Reset()
	callPool.Put(c)
}

// rpc serves one KMS API request.
func (s *Server) rpc(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	c := getCall(s, ctx, s.cfg.Clock())
	defer putCall(c)
	defer func() {
		// A bug in one request must not take the node down: answer 500,
		// log it, keep serving.
		if p := recover(); p != nil {
			err := fmt.Errorf("api: panic in %s: %v\n%s", c.action, p, debug.Stack())
			if c.principal.accessKeyID != "" && !c.recorded {
				c.recorded = true
				err = s.recordCall(c, err)
			}
			s.writeError(c, err)
		}
	}()
	resp, err := s.serve(c)
	// Every authenticated request is recorded before it is answered: a
	// state change with its change (propose), anything else here.
	if c.principal.accessKeyID != "" && !c.recorded {
		c.recorded = true
		if err = s.recordCall(c, err); err != nil {
			c.ctx.Response.ResetBody() // a response stream set up by the handler is not sent
		}
	}
	if err != nil {
		we := s.writeError(c, err)
		s.metrics.observe(c, we.Code, time.Since(start))
		return
	}
	s.writeJSON(c, resp)
	s.metrics.observe(c, "", time.Since(start))
}

func (s *Server) serve(c *call) (any, error) {
	if !c.ctx.IsPost() && !c.ctx.IsGet() {
		return nil, ErrMethod
	}
	stream := c.largeBody()
	if err := c.collectParams(); err != nil {
		return nil, err
	}
	if !s.opened.Load() || !s.deps.Node.Ready() && !s.waitReady() {
		return nil, ErrNotReady
	}
	if err := s.authenticate(c); err != nil {
		return nil, err
	}
	h, err := lookupRoute(c.version, c.action)
	if err != nil {
		return nil, err
	}
	if stream && !streamedBody[c.action] {
		return nil, ErrTooLarge
	}
	return h(s, c)
}

// waitReady waits, briefly, for a node that cannot serve right now.
func (s *Server) waitReady() bool {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ReadyWait)
	defer cancel()
	return s.deps.Node.WaitReady(ctx) == nil
}

// collectParams gathers query and form parameters (both are signed under
// V1; the body is covered by x-acs-content-sha256 under V3). A parameter
// given twice is refused: which copy counts would otherwise be ambiguous.
func (c *call) collectParams() error {
	var err error
	add := func(k, v []byte) {
		if err != nil {
			return
		}
		if len(c.params) >= maxParams {
			err = ErrTooManyParams
			return
		}
		if !validParamName(k) {
			err = invalid(string(k), "a parameter name may contain only letters, digits, '.', '_' and '-'")
			return
		}
		for _, p := range c.params {
			if bytes.Equal(p.Key, k) {
				err = invalid(string(k), "given more than once")
				return
			}
		}
		c.params = append(c.params, sign.KV{Key: k, Value: v})
	}
	c.ctx.QueryArgs().VisitAll(add)
	if c.ctx.IsPost() && !c.largeBody() &&
		bytes.HasPrefix(c.ctx.Request.Header.ContentType(), []byte("application/x-www-form-urlencoded")) {
		body, rerr := c.smallBody()
		if rerr != nil {
			return rerr
		}
		c.form.ParseBytes(body)
		c.form.VisitAll(add)
	}
	return err
}

// smallBody returns a body within the request limit, read once from the
// stream (the server runs with StreamRequestBody, and Request.Body would
// read any stream whole).
func (c *call) smallBody() ([]byte, error) {
	if c.bodyRead {
		return c.bodyBuf, nil
	}
	c.bodyRead = true
	n := c.ctx.Request.Header.ContentLength()
	if n <= 0 {
		c.bodyBuf = c.bodyBuf[:0]
		return c.bodyBuf, nil
	}
	c.bodyBuf = slices.Grow(c.bodyBuf[:0], n)[:n]
	if _, err := io.ReadFull(c.ctx.RequestBodyStream(), c.bodyBuf); err != nil {
		return nil, fmt.Errorf("api: reading the request body: %w", err)
	}
	return c.bodyBuf, nil
}

// validParamName accepts the names the API uses (Action, KeyId, Tag.1.Key,
// …). Other names are refused: V3 does not encode query keys, so a key
// holding '&' or '=' could make two different queries sign alike.
func validParamName(k []byte) bool {
	if len(k) == 0 || len(k) > 128 {
		return false
	}
	for _, b := range k {
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '_' || b == '-') {
			return false
		}
	}
	return true
}

// largeBody reports whether the body is above the request limit (or of
// unknown length): such a body reaches the handler as a stream (the server
// runs with StreamRequestBody) and must never be buffered by Body().
func (c *call) largeBody() bool {
	n := c.ctx.Request.Header.ContentLength()
	return n > c.s.cfg.MaxRequestBytes || n == -1
}

// body returns the request body as a stream (for handlers that take large
// bodies); a small body already read is replayed.
func (c *call) body() io.Reader {
	if c.bodyRead {
		return bytes.NewReader(c.bodyBuf)
	}
	return c.ctx.RequestBodyStream()
}

// param returns a parameter's value and whether it was given.
func (c *call) param(name string) ([]byte, bool) {
	for _, p := range c.params {
		if string(p.Key) == name {
			return p.Value, true
		}
	}
	return nil, false
}

// text returns a parameter as a string of at most maxLen bytes of valid
// UTF-8, "" when absent.
func (c *call) text(name string, maxLen int) (string, error) {
	v, ok := c.param(name)
	if !ok {
		return "", nil
	}
	if len(v) > maxLen {
		return "", invalid(name, "longer than %d bytes", maxLen)
	}
	if !utf8.Valid(v) {
		return "", invalid(name, "not valid UTF-8")
	}
	return string(v), nil
}

// view is text without the copy: the string views the request and is valid
// only until the handler returns. For identifiers looked up on the fast path.
func (c *call) view(name string, maxLen int) (string, error) {
	v, ok := c.param(name)
	switch {
	case !ok || len(v) == 0:
		return "", missing(name)
	case len(v) > maxLen:
		return "", invalid(name, "longer than %d bytes", maxLen)
	case !utf8.Valid(v):
		return "", invalid(name, "not valid UTF-8")
	}
	return bstr(v), nil
}

// required is text for a parameter that must be present and non-empty.
func (c *call) required(name string, maxLen int) (string, error) {
	v, ok := c.param(name)
	if !ok || len(v) == 0 {
		return "", missing(name)
	}
	return c.text(name, maxLen)
}

// integer returns a parameter as an integer in [lo, hi], def when absent.
func (c *call) integer(name string, lo, hi, def int64) (int64, error) {
	v, ok := c.param(name)
	if !ok || len(v) == 0 {
		return def, nil
	}
	n, err := strconv.ParseInt(bstr(v), 10, 64)
	if err != nil {
		return 0, invalid(name, "not an integer")
	}
	if n < lo || n > hi {
		return 0, invalid(name, "must be between %d and %d", lo, hi)
	}
	return n, nil
}

// boolean returns a parameter given as true/false, def when absent.
func (c *call) boolean(name string, def bool) (bool, error) {
	v, ok := c.param(name)
	if !ok || len(v) == 0 {
		return def, nil
	}
	switch bstr(v) {
	case "true", "True", "TRUE":
		return true, nil
	case "false", "False", "FALSE":
		return false, nil
	}
	return false, invalid(name, "must be true or false")
}

// dryRun reads the DryRun parameter.
func (c *call) dryRun() (bool, error) { return c.boolean("DryRun", false) }

// sbytes views s as bytes without copying; the bytes must not be modified.
func sbytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// bstr views b as a string without copying, for lookups that do not keep
// the string.
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// reply is embedded in every response: the RequestId clients log.
type reply struct {
	RequestID string `json:"RequestId"`
}

func (c *call) reply() reply { return reply{RequestID: c.reqID} }

func (s *Server) writeJSON(c *call, v any) {
	if _, ok := v.(streamed); ok {
		return
	}
	if a, ok := v.(jsonAppender); ok {
		c.out = a.appendJSON(c.out[:0])
		c.setHeaders(jsonContentType)
		c.ctx.Write(c.out)
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.setHeaders(jsonContentType)
	c.ctx.Write(b)
}

// jsonContentType is the content type of every JSON reply.
const jsonContentType = "application/json;charset=utf-8"

// requestIDHeader is x-acs-request-id as fasthttp writes it: SetCanonical
// spares normalising the name on every reply.
var requestIDHeader = []byte("X-Acs-Request-Id")

// setHeaders sets the reply's content type and request id.
func (c *call) setHeaders(contentType string) {
	c.ctx.SetContentType(contentType)
	c.ctx.Response.Header.SetCanonical(requestIDHeader, sbytes(c.reqID))
}

type errorBody struct {
	RequestID  string `json:"RequestId"`
	HostID     string `json:"HostId"`
	Code       string `json:"Code"`
	Message    string `json:"Message"`
	Recommend  string `json:"Recommend"`
	HTTPStatus int    `json:"HttpStatus"`
}

func (s *Server) writeError(c *call, err error) wireError {
	we, ok := toWire(err)
	if !ok {
		s.log.Error("internal error", "request_id", c.reqID, "action", c.action, "err", err)
	}
	b, _ := json.Marshal(errorBody{RequestID: c.reqID, HostID: string(c.ctx.Host()), Code: we.Code,
		Message: we.Message, Recommend: we.Recommend, HTTPStatus: we.Status})
	c.setHeaders(jsonContentType)
	c.ctx.SetStatusCode(we.Status)
	c.ctx.Write(b)
	return we
}
