package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftkms/raftkms/api/sign"
	"github.com/raftkms/raftkms/crypto"
	"github.com/raftkms/raftkms/fsm"
)

// timestampLayout is the UTC form both signature versions use.
const timestampLayout = "2006-01-02T15:04:05Z"

// parseTimestamp is time.Parse(timestampLayout, b), with a fast path for
// the 20 bytes every SDK sends (time.Parse was 1.5 % of a request). Any
// other input, and anything the fast path would not accept, goes to
// time.Parse, so both accept and reject exactly the same.
func parseTimestamp(b []byte) (time.Time, error) {
	if len(b) == len(timestampLayout) && b[4] == '-' && b[7] == '-' && b[10] == 'T' && b[13] == ':' && b[16] == ':' && b[19] == 'Z' {
		y, mo, d := digits(b[0:4]), digits(b[5:7]), digits(b[8:10])
		h, mi, sec := digits(b[11:13]), digits(b[14:16]), digits(b[17:19])
		if y >= 0 && mo >= 1 && mo <= 12 && d >= 1 && d <= daysIn(mo, y) && h >= 0 && h < 24 && mi >= 0 && mi < 60 && sec >= 0 && sec < 60 {
			return time.Date(y, time.Month(mo), d, h, mi, sec, 0, time.UTC), nil
		}
	}
	return time.Parse(timestampLayout, bstr(b))
}

// digits returns the number b spells in decimal digits, or -1.
func digits(b []byte) int {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// daysIn returns the number of days of month (1–12) in year.
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// principal is the authenticated caller.
type principal struct {
	account     string
	kind        fsm.PrincipalKind
	name        string
	accessKeyID string
	system      bool   // of the system account
	userKey     string // "account/user" for a user principal (policy.Request.User)
}

// v3RequiredHeaders must all be covered by a V3 signature: an unsigned
// x-acs-action, say, could be changed in transit without breaking it.
var v3RequiredHeaders = []string{"host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"}

// authenticate verifies the request's signature (V3 when an ACS3
// Authorization header is present, V1 otherwise), rejects replays, and sets
// the caller, action and version.
func (s *Server) authenticate(c *call) error {
	if h := c.ctx.Request.Header.Peek("Authorization"); len(h) > 0 {
		return s.authenticateV3(c, h)
	}
	if _, ok := c.param("Signature"); ok {
		return s.authenticateV1(c)
	}
	return ErrNotSigned
}

func (s *Server) authenticateV1(c *call) error {
	get := func(name string) ([]byte, error) {
		v, ok := c.param(name)
		if !ok || len(v) == 0 {
			return nil, missing(name)
		}
		return v, nil
	}
	var (
		vals [8][]byte
		err  error
	)
	for i, name := range []string{"AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion", "SignatureNonce", "Timestamp", "Action", "Version"} {
		if vals[i], err = get(name); err != nil {
			return err
		}
	}
	akID, sig, method, version, nonce, ts := vals[0], vals[1], vals[2], vals[3], vals[4], vals[5]
	if string(method) != "HMAC-SHA1" || string(version) != "1.0" {
		return ErrUnsupportedSig
	}
	signedAt, err := parseTimestamp(ts)
	if err != nil {
		return ErrTimestampFormat
	}
	ak, cred, err := s.credential(akID)
	if err != nil {
		return err
	}
	c.action, c.version = bstr(vals[6]), bstr(vals[7])
	c.v3 = false
	// AppendV1StringToSign sorts the parameters in place: take what we
	// need from them first.
	sts := sign.AppendV1StringToSign(c.scratch[:0], c.ctx.Method(), c.params)
	c.scratch = sts
	if !sign.VerifyV1(cred.secret, sts, sig) {
		return ErrSignatureMismatch
	}
	return s.accept(c, ak, cred, nonce, signedAt)
}

// emptyBodyHash is the hex SHA-256 of an empty body.
var emptyBodyHash = func() (h [2 * sha256.Size]byte) {
	sum := sha256.Sum256(nil)
	hex.Encode(h[:], sum[:])
	return h
}()

func (s *Server) authenticateV3(c *call, header []byte) error {
	auth, err := sign.ParseV3Authorization(header)
	if err != nil {
		if errors.Is(err, sign.ErrUnsupportedAlgorithm) {
			return ErrUnsupportedSig
		}
		return ErrIncompleteSig
	}
	for _, h := range v3RequiredHeaders {
		if !listHas(auth.SignedHeaders, h) {
			return ErrIncompleteSig
		}
	}
	hdr := &c.ctx.Request.Header
	date, nonce, action, version := hdr.Peek("x-acs-date"), hdr.Peek("x-acs-signature-nonce"), hdr.Peek("x-acs-action"), hdr.Peek("x-acs-version")
	if len(nonce) == 0 || len(action) == 0 || len(version) == 0 {
		return ErrIncompleteSig
	}
	signedAt, err := parseTimestamp(date)
	if err != nil {
		return ErrTimestampFormat
	}
	// The signature covers x-acs-content-sha256; the body must match it. A
	// streamed body (a snapshot upload) is checked by its handler as it
	// reads it, never buffered here.
	payloadHash := hdr.Peek("x-acs-content-sha256")
	if !c.largeBody() {
		body, err := c.smallBody()
		if err != nil {
			return err
		}
		want := emptyBodyHash[:] // what the SDKs send: their parameters in the query
		if len(body) > 0 {
			sum := sha256.Sum256(body)
			var h [2 * sha256.Size]byte
			hex.Encode(h[:], sum[:])
			want = h[:]
		}
		if !bytes.Equal(payloadHash, want) {
			return ErrContentHash
		}
	} else if len(payloadHash) != 2*sha256.Size {
		return ErrContentHash
	}
	ak, cred, err := s.credential(auth.AccessKeyID)
	if err != nil {
		return err
	}
	// The canonical query covers the query string only; a form body is
	// covered by the content hash.
	query := c.params[:c.ctx.QueryArgs().Len()]
	cr := sign.AppendV3CanonicalRequest(c.scratch[:0], c.ctx.Method(), c.ctx.Path(), query, auth.SignedHeaders,
		func(name []byte) []byte {
			if string(name) == "host" {
				return c.ctx.Host() // exactly as received
			}
			return hdr.Peek(bstr(name))
		}, payloadHash)
	n := len(cr)
	buf := sign.AppendV3StringToSign(cr, cr) // hashes cr, then appends after it
	c.scratch = buf
	sts := buf[n:]
	if !sign.VerifyV3(cred.secret, sts, auth.Signature) {
		return ErrSignatureMismatch
	}
	c.action, c.version = bstr(action), bstr(version)
	c.v3 = true
	return s.accept(c, ak, cred, nonce, signedAt)
}

// accept runs the replay check of a verified request and records its caller.
func (s *Server) accept(c *call, ak *fsm.AccessKey, e cachedSecret, nonce []byte, signedAt time.Time) error {
	if err := s.replay.Check(sbytes(ak.ID), nonce, signedAt, c.now); err != nil {
		return err
	}
	c.principal = principal{account: ak.Account, kind: ak.Kind, name: ak.Principal, accessKeyID: ak.ID, system: e.system, userKey: e.userKey}
	e.lastUsed.Store(c.now.UnixNano())
	c.nonce = append(c.nonce[:0], nonce...)
	c.signedAt = signedAt
	return nil
}

// listHas reports whether a ';'-separated list holds name.
func listHas(list []byte, name string) bool {
	for len(list) > 0 {
		i := bytes.IndexByte(list, ';')
		item := list
		if i >= 0 {
			item, list = list[:i], list[i+1:]
		} else {
			list = nil
		}
		if string(bytes.TrimSpace(item)) == name {
			return true
		}
	}
	return false
}

// credential finds an active AccessKey and its cache entry (its unwrapped
// secret).
func (s *Server) credential(id []byte) (*fsm.AccessKey, cachedSecret, error) {
	ak, ok := s.deps.State.State().AccessKey(bstr(id))
	if !ok {
		return nil, cachedSecret{}, ErrAccessKeyNotFound
	}
	if !ak.Active {
		return nil, cachedSecret{}, ErrAccessKeyInactive
	}
	e, err := s.secrets.get(ak)
	return ak, e, err
}

// secretCache holds unwrapped AccessKey secrets, so a request costs a map
// lookup rather than an AES-GCM open. An entry is valid for exactly the
// AccessKey record it was unwrapped from: a changed record (disabled,
// rotated) is unwrapped again.
type secretCache struct {
	w  crypto.Wrapper
	st StateReader
	mu sync.RWMutex
	m  map[string]cachedSecret
}

type cachedSecret struct {
	ak       *fsm.AccessKey
	secret   []byte
	system   bool   // the AccessKey's account is the system account
	userKey  string // "account/user" for a user's key
	lastUsed *atomic.Int64
}

func newSecretCache(w crypto.Wrapper, st StateReader) *secretCache {
	return &secretCache{w: w, st: st, m: make(map[string]cachedSecret)}
}

// get returns ak's entry, unwrapping its secret if the cache does not hold
// it for this very record.
func (sc *secretCache) get(ak *fsm.AccessKey) (cachedSecret, error) {
	sc.mu.RLock()
	e, ok := sc.m[ak.ID]
	sc.mu.RUnlock()
	if ok && e.ak == ak {
		return e, nil
	}
	secret, err := sc.w.Unwrap(crypto.PurposeAccessKeySecret, ak.ID, ak.Secret)
	if err != nil {
		return cachedSecret{}, err
	}
	a, _ := sc.st.State().Account(ak.Account)
	e = cachedSecret{ak: ak, secret: secret, system: a != nil && a.System, lastUsed: new(atomic.Int64)}
	if ak.Kind == fsm.PrincipalUser {
		e.userKey = ak.Account + "/" + ak.Principal
	}
	sc.mu.Lock()
	if old, ok := sc.m[ak.ID]; ok {
		e.lastUsed = old.lastUsed // the record changed (say, LastUsed): keep counting
	}
	sc.m[ak.ID] = e
	sc.mu.Unlock()
	return e, nil
}

// sweep drops, and zeroes, the secrets of AccessKeys that were deleted or
// disabled, and returns the last-use times (unix ns) of the others that
// are newer than the replicated ones by more than a minute.
func (sc *secretCache) sweep(st *fsm.State) (ids []string, times []int64) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for id, e := range sc.m {
		ak, ok := st.AccessKey(id)
		if !ok || !ak.Active {
			clear(e.secret)
			delete(sc.m, id)
			continue
		}
		if used := e.lastUsed.Load(); used > ak.LastUsed+int64(time.Minute) {
			ids, times = append(ids, id), append(times, used)
		}
	}
	return ids, times
}
