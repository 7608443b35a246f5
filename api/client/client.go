package client

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/raftkms/raftkms/api/sign"
)

// KMSVersion is the API version of the KMS actions.
const KMSVersion = "2016-01-20"

// Credentials is an AccessKey pair, in the JSON form of root-credentials.json.
type Credentials struct {
	AccessKeyID     string `json:"AccessKeyId"`
	AccessKeySecret string `json:"AccessKeySecret"`
}

// LoadCredentials reads a credentials file ({"AccessKeyId":…,"AccessKeySecret":…}).
func LoadCredentials(path string) (Credentials, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Credentials{}, err
	}
	var c Credentials
	if err := json.Unmarshal(b, &c); err != nil {
		return Credentials{}, fmt.Errorf("client: %s: %w", path, err)
	}
	if c.AccessKeyID == "" || c.AccessKeySecret == "" {
		return Credentials{}, fmt.Errorf("client: %s has no AccessKeyId/AccessKeySecret", path)
	}
	return c, nil
}

// CredentialsFromEnv reads ALIBABA_CLOUD_ACCESS_KEY_ID and
// ALIBABA_CLOUD_ACCESS_KEY_SECRET, the variables the Alibaba SDKs read.
func CredentialsFromEnv() (Credentials, bool) {
	c := Credentials{os.Getenv("ALIBABA_CLOUD_ACCESS_KEY_ID"), os.Getenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET")}
	return c, c.AccessKeyID != "" && c.AccessKeySecret != ""
}

// Config configures a Client.
type Config struct {
	Endpoint    string // http://host:port; default http://127.0.0.1:8080
	Credentials Credentials
	Timeout     time.Duration // per request; default 30s
	MaxConns    int           // connections kept to the endpoint; default 64
	// Clock dates the signatures; default time.Now. (Tests that move a
	// server's clock move the client's with it.)
	Clock func() time.Time
	// TLS configures https endpoints (CAs to trust); nil uses the system's.
	TLS *tls.Config
}

// LoadCA returns a TLS configuration that trusts the CA certificates in a
// PEM file (for a cluster with its own CA, like the one kmsd dev-certs makes).
func LoadCA(path string) (*tls.Config, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("client: %s holds no PEM certificate", path)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// Client calls one raftkms endpoint. It is safe for concurrent use.
type Client struct {
	cfg     Config
	host    string
	scheme  string
	hc      *fasthttp.HostClient
	streams *fasthttp.HostClient // for Download and Upload: no read timeout per byte
}

// New returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.Endpoint == "" {
		cfg.Endpoint = "http://127.0.0.1:8080"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 64
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("client: endpoint %q is not a URL like http://127.0.0.1:8080", cfg.Endpoint)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("client: endpoint scheme %q is not supported (use http or https)", u.Scheme)
	}
	if cfg.Credentials.AccessKeyID == "" || cfg.Credentials.AccessKeySecret == "" {
		return nil, errors.New("client: credentials are required")
	}
	tlsCfg := cfg.TLS
	if u.Scheme == "https" && tlsCfg == nil {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	hc := func(timeout time.Duration, maxConns int) *fasthttp.HostClient {
		return &fasthttp.HostClient{Addr: addr, IsTLS: u.Scheme == "https", TLSConfig: tlsCfg, MaxConns: maxConns,
			ReadTimeout: timeout, WriteTimeout: timeout, MaxIdleConnDuration: 30 * time.Second,
			NoDefaultUserAgentHeader: true, StreamResponseBody: timeout == 0}
	}
	return &Client{cfg: cfg, host: u.Host, scheme: u.Scheme, hc: hc(cfg.Timeout, cfg.MaxConns), streams: hc(0, 2)}, nil
}

// Endpoint returns the endpoint the client calls.
func (c *Client) Endpoint() string { return c.cfg.Endpoint }

// Error is an error answered by the service.
type Error struct {
	StatusCode int    // HTTP status
	Code       string // Alibaba error code, e.g. Forbidden.KeyNotFound
	Message    string
	RequestID  string
	Recommend  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s (HTTP %d, RequestId %s)", e.Code, e.Message, e.StatusCode, e.RequestID)
}

// Retryable reports whether the same request may succeed if sent again
// (the service was busy or unavailable).
func (e *Error) Retryable() bool {
	return e.StatusCode >= 500 || strings.HasPrefix(e.Code, "Throttling")
}

// Call invokes a KMS action with string parameters and returns the JSON
// response body. An error answered by the service is an *Error.
func (c *Client) Call(ctx context.Context, action string, params map[string]string) ([]byte, error) {
	return c.CallVersion(ctx, KMSVersion, action, params)
}

// CallVersion is Call for an action of another API version (raftkms's own
// cluster, identity and trail actions).
func (c *Client) CallVersion(ctx context.Context, version, action string, params map[string]string) ([]byte, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	c.prepare(req, version, action, params, "")
	if err := c.hc.DoDeadline(req, resp, c.deadline(ctx)); err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", action, c.cfg.Endpoint, err)
	}
	body := append([]byte(nil), resp.Body()...)
	if code := resp.StatusCode(); code < 200 || code > 299 {
		return nil, decodeError(code, body)
	}
	return body, nil
}

// prepare builds a signed POST with params in the query string. bodyHash
// is the hex SHA-256 of a body the caller streams ("" for no body).
func (c *Client) prepare(req *fasthttp.Request, version, action string, params map[string]string, bodyHash string) {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	query := make([]sign.KV, 0, len(params))
	for _, k := range keys {
		query = append(query, sign.KV{Key: []byte(k), Value: []byte(params[k])})
	}
	req.Header.SetMethod("POST")
	req.SetRequestURIBytes(sign.AppendQuery([]byte("/?"), query))
	req.SetHost(c.host)
	req.URI().SetScheme(c.scheme)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "raftkms-go-client")
	for _, h := range sign.SignV3(c.cfg.Credentials.AccessKeyID, c.cfg.Credentials.AccessKeySecret, sign.V3Request{
		Method: "POST", Host: c.host, Action: action, Version: version, Query: query, Date: c.cfg.Clock(), BodySHA256: bodyHash,
	}) {
		req.Header.SetBytesKV(h.Key, h.Value)
	}
}

func (c *Client) deadline(ctx context.Context) time.Time {
	deadline := time.Now().Add(c.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return deadline
}

// Download calls an action whose reply is a byte stream (a snapshot) and
// copies it to w.
func (c *Client) Download(ctx context.Context, version, action string, params map[string]string, w io.Writer) error {
	return c.Stream(ctx, version, action, params, func(_ Header, body io.Reader) error {
		_, err := io.Copy(w, body)
		return err
	})
}

// Header holds a streamed response's headers, by lower-case name.
type Header map[string]string

// Get returns a header's value ("" if absent).
func (h Header) Get(name string) string { return h[strings.ToLower(name)] }

// Stream calls an action whose response is a stream (an export) and hands
// its headers and body to fn as the body arrives. An error response is
// returned as *Error without calling fn.
func (c *Client) Stream(ctx context.Context, version, action string, params map[string]string, fn func(Header, io.Reader) error) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	c.prepare(req, version, action, params, "")
	resp.StreamBody = true
	if err := c.streams.DoDeadline(req, resp, c.deadline(ctx)); err != nil {
		return fmt.Errorf("client: %s %s: %w", action, c.cfg.Endpoint, err)
	}
	defer resp.CloseBodyStream()
	if code := resp.StatusCode(); code < 200 || code > 299 {
		body, _ := io.ReadAll(io.LimitReader(resp.BodyStream(), 1<<20))
		return decodeError(code, body)
	}
	h := Header{}
	resp.Header.VisitAll(func(k, v []byte) { h[strings.ToLower(string(k))] = string(v) })
	return fn(h, resp.BodyStream())
}

// Upload calls an action with a body streamed from r (size bytes; a
// snapshot). r is read twice: once to hash it for the signature, once to send.
func (c *Client) Upload(ctx context.Context, version, action string, params map[string]string, r io.ReadSeeker) ([]byte, error) {
	h := sha256.New()
	size, err := io.Copy(h, r)
	if err != nil {
		return nil, err
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	c.prepare(req, version, action, params, hex.EncodeToString(h.Sum(nil)))
	req.Header.SetContentType("application/octet-stream")
	req.SetBodyStream(r, int(size))
	if err := c.streams.DoDeadline(req, resp, c.deadline(ctx)); err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", action, c.cfg.Endpoint, err)
	}
	body := append([]byte(nil), resp.Body()...)
	if code := resp.StatusCode(); code < 200 || code > 299 {
		return nil, decodeError(code, body)
	}
	return body, nil
}

func decodeError(status int, body []byte) error {
	var e struct{ RequestId, Code, Message, Recommend string }
	if err := json.Unmarshal(body, &e); err != nil || e.Code == "" {
		return &Error{StatusCode: status, Code: "HTTP" + fmt.Sprint(status), Message: strings.TrimSpace(string(body))}
	}
	return &Error{StatusCode: status, Code: e.Code, Message: e.Message, RequestID: e.RequestId, Recommend: e.Recommend}
}

// Do is Call that decodes the response into out (nil discards it).
func (c *Client) Do(ctx context.Context, action string, params map[string]string, out any) error {
	b, err := c.Call(ctx, action, params)
	if err != nil || out == nil {
		return err
	}
	return json.Unmarshal(b, out)
}
