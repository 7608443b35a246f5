package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
}

// Client calls one raftkms endpoint. It is safe for concurrent use.
type Client struct {
	cfg  Config
	host string
	hc   *fasthttp.HostClient
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
	if u.Scheme != "http" {
		return nil, fmt.Errorf("client: endpoint scheme %q is not supported (use http)", u.Scheme)
	}
	if cfg.Credentials.AccessKeyID == "" || cfg.Credentials.AccessKeySecret == "" {
		return nil, errors.New("client: credentials are required")
	}
	return &Client{cfg: cfg, host: u.Host, hc: &fasthttp.HostClient{
		Addr: u.Host, MaxConns: cfg.MaxConns, ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout,
		MaxIdleConnDuration: 30 * time.Second, NoDefaultUserAgentHeader: true,
	}}, nil
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
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	query := make([]sign.KV, 0, len(params))
	for _, k := range keys {
		query = append(query, sign.KV{Key: []byte(k), Value: []byte(params[k])})
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod("POST")
	req.SetRequestURIBytes(sign.AppendQuery([]byte("/?"), query))
	req.SetHost(c.host)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "raftkms-go-client")
	for _, h := range sign.SignV3(c.cfg.Credentials.AccessKeyID, c.cfg.Credentials.AccessKeySecret, sign.V3Request{
		Method: "POST", Host: c.host, Action: action, Version: version, Query: query, Date: c.cfg.Clock(),
	}) {
		req.Header.SetBytesKV(h.Key, h.Value)
	}
	deadline := time.Now().Add(c.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.hc.DoDeadline(req, resp, deadline); err != nil {
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
