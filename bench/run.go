package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/fasthttp"

	"github.com/raftkms/raftkms/api/client"
	"github.com/raftkms/raftkms/api/sign"
)

// Workloads.
const (
	GenerateDataKey                 = "generate-data-key"
	GenerateDataKeyWithoutPlaintext = "generate-data-key-without-plaintext"
	Encrypt                         = "encrypt"
	Decrypt                         = "decrypt"
	ReEncrypt                       = "re-encrypt"
	Mixed                           = "mixed"
	CreateKey                       = "create-key"
)

// Workloads lists every workload.
var Workloads = []string{GenerateDataKey, GenerateDataKeyWithoutPlaintext, Encrypt, Decrypt, ReEncrypt, Mixed, CreateKey}

// Config describes one run.
type Config struct {
	Endpoints   []string // API URLs; connections are spread over them
	Credentials client.Credentials
	TLS         *tls.Config // for https endpoints (nil: system roots)

	Workload string
	// Mix weighs the workloads of a mixed run, e.g. {generate-data-key: 60,
	// decrypt: 30, encrypt: 10}.
	Mix map[string]int

	Concurrency int           // connections, each with one request in flight (closed loop)
	Duration    time.Duration // measured
	Warmup      time.Duration // run but not measured
	// Rate, if positive, makes the run open-loop: requests are due at a
	// constant rate and latency counts from when a request was due, not
	// sent (coordinated-omission correction, as in wrk2).
	Rate float64

	KeyIDs            List    // keys to spread the load over (CreateKeys or ReadKeys makes them)
	KeySkew           float64 // 0: keys picked evenly; above 1, the exponent of Zipf's law (planner.keyIndex)
	Blobs             List    // ciphertexts to decrypt (MakeBlobs makes them)
	DataKeyBytes      int     // NumberOfBytes of generated data keys; default 32
	PayloadBytes      int     // plaintext size for encrypt; default 32
	EncryptionContext string  // JSON, sent with every cryptographic call; "" for none
	Seed              uint64
	Timeout           time.Duration // per request; default 10s

	// Baseline marks a target that is the baseline server: it takes the
	// same requests, answers only GenerateDataKey, and has no /metrics.
	Baseline bool
	// Progress, if set, receives a progress line every second.
	Progress io.Writer
	// Name labels the result (default: the workload).
	Name string
}

func (c *Config) defaults() error {
	if len(c.Endpoints) == 0 {
		return errors.New("bench: no endpoints")
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 64
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.DataKeyBytes <= 0 {
		c.DataKeyBytes = 32
	}
	if c.PayloadBytes <= 0 {
		c.PayloadBytes = 32
	}
	if c.KeySkew != 0 && !(c.KeySkew > 1) {
		return errors.New("bench: the key skew is 0 (keys picked evenly) or above 1 (the exponent of a Zipf distribution)")
	}
	if c.PayloadBytes > 6144 {
		return errors.New("bench: Encrypt takes at most 6144 bytes of plaintext")
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Name == "" {
		c.Name = c.Workload
	}
	if !slices.Contains(Workloads, c.Workload) {
		return fmt.Errorf("bench: unknown workload %q (one of %s)", c.Workload, strings.Join(Workloads, ", "))
	}
	if c.Workload == Mixed {
		if len(c.Mix) == 0 {
			return errors.New("bench: a mixed run needs weights (--mix generate-data-key=60,decrypt=40)")
		}
		for w, n := range c.Mix {
			if !slices.Contains(Workloads, w) || w == Mixed || n <= 0 {
				return fmt.Errorf("bench: bad mix entry %s=%d", w, n)
			}
		}
	}
	return nil
}

// ParseMix reads "generate-data-key=60,decrypt=30,encrypt=10".
func ParseMix(s string) (map[string]int, error) {
	m := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		name, weight, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(weight)
		if !ok || err != nil || n <= 0 {
			return nil, fmt.Errorf("bench: mix entry %q is not workload=weight", part)
		}
		m[name] += n
	}
	return m, nil
}

// target is one endpoint.
type target struct {
	url     string
	host    string
	hc      *fasthttp.HostClient // the load's connections
	metrics *fasthttp.HostClient // one more, for /metrics while the load holds all of hc's
}

func newTargets(cfg *Config) ([]*target, error) {
	var out []*target
	perNode := (cfg.Concurrency + len(cfg.Endpoints) - 1) / len(cfg.Endpoints)
	for _, e := range cfg.Endpoints {
		u, err := url.Parse(e)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("bench: endpoint %q is not a URL like http://127.0.0.1:8080", e)
		}
		addr := u.Host
		if u.Port() == "" {
			addr = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
		}
		tlsCfg := cfg.TLS
		if u.Scheme == "https" && tlsCfg == nil {
			tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		hc := func(conns int) *fasthttp.HostClient {
			return &fasthttp.HostClient{Addr: addr, IsTLS: u.Scheme == "https", TLSConfig: tlsCfg, MaxConns: conns,
				ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout, MaxIdleConnDuration: time.Minute, NoDefaultUserAgentHeader: true}
		}
		out = append(out, &target{url: e, host: u.Host, hc: hc(perNode), metrics: hc(1)})
	}
	return out, nil
}

// op is one request to make.
type op struct {
	action string
	params []sign.KV // sorted by key
}

// planner draws the next request of a worker's workload.
type planner struct {
	cfg     *Config
	rng     *rand.Rand
	zipf    *rand.Zipf // key ranks, with Config.KeySkew
	scatter uint64     // maps a rank to a key: coprime with the key count
	mix     []string   // one entry per weight unit
	payload []byte
	params  []sign.KV
	// The values every request of the run sends.
	numberOfBytes, context []byte
}

func newPlanner(cfg *Config, worker int) *planner {
	p := &planner{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(worker))),
		numberOfBytes: strconv.AppendInt(nil, int64(cfg.DataKeyBytes), 10), context: []byte(cfg.EncryptionContext)}
	if cfg.Workload == Mixed {
		names := make([]string, 0, len(cfg.Mix))
		for w := range cfg.Mix {
			names = append(names, w)
		}
		sort.Strings(names)
		for _, w := range names {
			for range cfg.Mix[w] {
				p.mix = append(p.mix, w)
			}
		}
	}
	if n := uint64(cfg.KeyIDs.Len()); cfg.KeySkew > 1 && n > 0 {
		p.zipf = rand.NewZipf(p.rng, cfg.KeySkew, 1, n-1)
		p.scatter = scatterStep(n)
	}
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	p.payload = make([]byte, cfg.PayloadBytes)
	for i := range p.payload {
		p.payload[i] = letters[p.rng.IntN(len(letters))]
	}
	return p
}

// keyIndex picks the next key: evenly, or with Config.KeySkew s > 1 by
// Zipf's law — the key of rank r in proportion to 1/(r+1)^s, a few hot
// keys and a long tail, as many tenants' traffic is. Rank r is key
// (r+1)×scatter mod n (a bijection, as scatter and n are coprime), so the
// hot keys are spread over the list instead of being the first ones made.
func (p *planner) keyIndex() int {
	n := p.cfg.KeyIDs.Len()
	if p.zipf == nil {
		return p.rng.IntN(n)
	}
	return int((p.zipf.Uint64() + 1) * p.scatter % uint64(n))
}

// scatterStep returns a step coprime with n near n×0.618 (the golden
// ratio spreads consecutive ranks evenly over the list).
func scatterStep(n uint64) uint64 {
	s := max(n*618/1000, 1)
	for gcd(s, n) != 1 {
		s++
	}
	return s
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// The parameters' names, made once: the planner allocates nothing.
var (
	paramKeyID             = []byte("KeyId")
	paramNumberOfBytes     = []byte("NumberOfBytes")
	paramPlaintext         = []byte("Plaintext")
	paramCiphertextBlob    = []byte("CiphertextBlob")
	paramDestinationKeyID  = []byte("DestinationKeyId")
	paramEncryptionContext = []byte("EncryptionContext")
	paramSourceContext     = []byte("SourceEncryptionContext")
	paramDestContext       = []byte("DestinationEncryptionContext")
	paramDescription       = []byte("Description")
	benchDescription       = []byte("kmsbench")
)

func (p *planner) next() op {
	w := p.cfg.Workload
	if w == Mixed {
		w = p.mix[p.rng.IntN(len(p.mix))]
	}
	p.params = p.params[:0]
	add := func(k, v []byte) { p.params = append(p.params, sign.KV{Key: k, Value: v}) }
	key := func() []byte { return p.cfg.KeyIDs.Bytes(p.keyIndex()) }
	blob := func() []byte { return p.cfg.Blobs.Bytes(p.rng.IntN(p.cfg.Blobs.Len())) }
	ec := func(name []byte) {
		if len(p.context) > 0 {
			add(name, p.context)
		}
	}
	var action string
	switch w {
	case GenerateDataKey, GenerateDataKeyWithoutPlaintext:
		action = "GenerateDataKey"
		if w == GenerateDataKeyWithoutPlaintext {
			action = "GenerateDataKeyWithoutPlaintext"
		}
		add(paramKeyID, key())
		add(paramNumberOfBytes, p.numberOfBytes)
		ec(paramEncryptionContext)
	case Encrypt:
		action = "Encrypt"
		add(paramKeyID, key())
		add(paramPlaintext, p.payload)
		ec(paramEncryptionContext)
	case Decrypt:
		action = "Decrypt"
		add(paramCiphertextBlob, blob())
		ec(paramEncryptionContext)
	case ReEncrypt:
		action = "ReEncrypt"
		add(paramCiphertextBlob, blob())
		add(paramDestinationKeyID, key())
		ec(paramSourceContext)
		ec(paramDestContext)
	case CreateKey:
		action = "CreateKey"
		add(paramDescription, benchDescription)
	}
	slices.SortFunc(p.params, func(a, b sign.KV) int { return bytes.Compare(a.Key, b.Key) })
	return op{action, p.params}
}

// recorder collects one worker's measurements.
type recorder struct {
	total    *hdrhistogram.Histogram
	cur      *hdrhistogram.Histogram // the current second
	curSec   int
	curReqs  int64
	curErrs  int64
	requests int64
	errors   map[string]int64
}

const (
	minLatency = int64(time.Microsecond)
	maxLatency = int64(time.Minute)
)

func newRecorder() *recorder {
	return &recorder{total: hdrhistogram.New(minLatency, maxLatency, 3), cur: hdrhistogram.New(minLatency, maxLatency, 2),
		errors: map[string]int64{}}
}

func (r *recorder) record(sec int, lat time.Duration, code string, tl *timeline) {
	if sec != r.curSec {
		tl.add(r.curSec, r.cur, r.curReqs, r.curErrs)
		r.cur.Reset()
		r.curSec, r.curReqs, r.curErrs = sec, 0, 0
	}
	if code != "" {
		r.errors[code]++
		r.curErrs++
		return
	}
	v := min(max(int64(lat), minLatency), maxLatency)
	r.total.RecordValue(v)
	r.cur.RecordValue(v)
	r.requests++
	r.curReqs++
}

// timeline merges the workers' per-second measurements.
type timeline struct {
	mu   sync.Mutex
	secs map[int]*secondStats
}

type secondStats struct {
	h          *hdrhistogram.Histogram
	reqs, errs int64
}

func (t *timeline) add(sec int, h *hdrhistogram.Histogram, reqs, errs int64) {
	if sec < 0 || reqs+errs == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.secs[sec]
	if s == nil {
		s = &secondStats{h: hdrhistogram.New(minLatency, maxLatency, 2)}
		t.secs[sec] = s
	}
	s.h.Merge(h)
	s.reqs += reqs
	s.errs += errs
}

// Run drives the workload against the endpoints for the warmup and then
// the measured duration, and reports the measured part.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	needKeys := cfg.Workload != CreateKey && cfg.Workload != Decrypt
	if cfg.Workload == Mixed {
		_, needKeys = cfg.Mix[GenerateDataKey]
		needKeys = needKeys || cfg.Mix[GenerateDataKeyWithoutPlaintext] > 0 || cfg.Mix[Encrypt] > 0 || cfg.Mix[ReEncrypt] > 0
	}
	if needKeys && cfg.KeyIDs.Len() == 0 {
		return nil, errors.New("bench: no keys to use (CreateKeys or ReadKeys makes them)")
	}
	needBlobs := cfg.Workload == Decrypt || cfg.Workload == ReEncrypt || cfg.Mix[Decrypt] > 0 || cfg.Mix[ReEncrypt] > 0
	if needBlobs && cfg.Blobs.Len() == 0 {
		return nil, errors.New("bench: no ciphertexts to decrypt (MakeBlobs makes them)")
	}
	targets, err := newTargets(&cfg)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	measureFrom := start.Add(cfg.Warmup)
	end := measureFrom.Add(cfg.Duration)
	var (
		wg       sync.WaitGroup
		tl       = &timeline{secs: map[int]*secondStats{}}
		recs     = make([]*recorder, cfg.Concurrency)
		perNode  = make([]atomic.Int64, len(targets))
		perNodeE = make([]atomic.Int64, len(targets))
		due      atomic.Int64 // open loop: the next request's number
		live     atomic.Int64 // successes so far, for the progress line
	)
	measured := make(chan usage, 1)
	go func() { // the harness's and the nodes' CPU over the measured part, not the warm-up
		var u usage
		defer func() { measured <- u }()
		select {
		case <-time.After(time.Until(measureFrom)):
		case <-ctx.Done():
			return
		}
		if !cfg.Baseline {
			u.before = scrapeAll(targets, nodeMetricNames...)
		}
		var start, stop syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &start)
		select {
		case <-time.After(time.Until(end)):
		case <-ctx.Done():
		}
		syscall.Getrusage(syscall.RUSAGE_SELF, &stop)
		u.harness = cpuTime(stop) - cpuTime(start)
		if !cfg.Baseline && u.before != nil {
			u.after = scrapeAll(targets, nodeMetricNames...)
		}
	}()
	stopProgress := progress(cfg.Progress, measureFrom, end, &live)
	for w := range cfg.Concurrency {
		recs[w] = newRecorder()
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := w % len(targets)
			t := targets[node]
			pl := newPlanner(&cfg, w)
			rec := recs[w]
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			var uri []byte
			for ctx.Err() == nil {
				sent := time.Now()
				if cfg.Rate > 0 {
					n := due.Add(1) - 1
					sent = start.Add(time.Duration(float64(n) / cfg.Rate * float64(time.Second)))
					if sent.After(end) {
						return
					}
					if d := time.Until(sent); d > 0 {
						time.Sleep(d)
					}
				} else if sent.After(end) {
					return
				}
				o := pl.next()
				uri = prepare(req, uri, t, &cfg, o)
				err := t.hc.DoTimeout(req, resp, cfg.Timeout)
				done := time.Now()
				code := ""
				switch {
				case errors.Is(err, fasthttp.ErrTimeout):
					code = "timeout"
				case err != nil:
					code = "transport"
				case resp.StatusCode() != 200:
					code = errorCode(resp.StatusCode(), resp.Body())
				}
				if code == "" {
					live.Add(1)
				}
				if sent.Before(measureFrom) {
					continue // warmup
				}
				if code == "" {
					perNode[node].Add(1)
				} else {
					perNodeE[node].Add(1)
				}
				rec.record(int(sent.Sub(measureFrom)/time.Second), done.Sub(sent), code, tl)
			}
		}()
	}
	wg.Wait()
	stopProgress()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	elapsed := cfg.Duration

	res := &Result{Name: cfg.Name, Target: "raftkms", Workload: cfg.Workload, Endpoints: cfg.Endpoints,
		Concurrency: cfg.Concurrency, Rate: cfg.Rate, Keys: cfg.KeyIDs.Len(), KeySkew: cfg.KeySkew, Duration: cfg.Duration, Warmup: cfg.Warmup,
		Errors: map[string]int64{}}
	if cfg.Baseline {
		res.Target = "baseline"
	}
	if cfg.Workload == Encrypt || cfg.Mix[Encrypt] > 0 {
		res.Payload = cfg.PayloadBytes
	}
	total := hdrhistogram.New(minLatency, maxLatency, 3)
	for _, r := range recs {
		tl.add(r.curSec, r.cur, r.curReqs, r.curErrs)
		total.Merge(r.total)
		res.Requests += r.requests
		for c, n := range r.errors {
			res.Errors[c] += n
		}
	}
	res.Throughput = float64(res.Requests) / elapsed.Seconds()
	res.Latency = percentiles(total)
	res.Distribution = distribution(total)
	secs := int(math.Ceil(cfg.Duration.Seconds()))
	for s := range secs {
		p := Point{Second: s}
		if st := tl.secs[s]; st != nil {
			p.Requests, p.Errors = st.reqs, st.errs
			p.P50, p.P99 = time.Duration(st.h.ValueAtQuantile(50)), time.Duration(st.h.ValueAtQuantile(99))
		}
		res.Timeline = append(res.Timeline, p)
	}
	for i, t := range targets {
		res.PerNode = append(res.PerNode, NodeResult{Endpoint: t.url, Requests: perNode[i].Load(), Errors: perNodeE[i].Load(),
			Throughput: float64(perNode[i].Load()) / elapsed.Seconds()})
	}
	u := <-measured
	res.HarnessCPU = u.harness
	if u.after != nil {
		res.nodeMetrics(u.before, u.after)
	}
	if res.Requests > 0 {
		res.HarnessCPUPerRequest = res.HarnessCPU / time.Duration(res.Requests)
		res.NodeCPUPerRequest = res.NodeCPU / time.Duration(res.Requests)
	}
	return res, nil
}

// usage is the CPU a run measured: the harness's (getrusage), and what it
// read from each node's /metrics when the measured time began and ended.
type usage struct {
	harness       time.Duration
	before, after [][]float64
}

// nodeMetricNames are what a run reads from each node's /metrics when the
// measured time begins and ends, in the order Result.nodeMetrics takes them.
var nodeMetricNames = []string{"process_cpu_seconds_total", "process_resident_memory_bytes",
	"raftkms_trail_commit_seconds_sum", "raftkms_trail_commit_seconds_count", "raftkms_trail_batch_records_sum"}

// nodeMetrics sets the node figures from the scrapes before and after the
// measured time: CPU used, RSS at the end, and the trail's commits — their
// mean time and records per batch, over every node's batches. A node not
// read at both ends (its CPU counter 0) adds nothing but its RSS: a counter
// read only at the end would count the node's whole life.
func (r *Result) nodeMetrics(before, after [][]float64) {
	var commitTime, commits, records float64
	for i := range after {
		r.NodeRSS = append(r.NodeRSS, int64(after[i][1]))
		if before[i][0] == 0 || after[i][0] == 0 {
			continue
		}
		d := func(j int) float64 { return after[i][j] - before[i][j] }
		r.NodeCPU += time.Duration(d(0) * float64(time.Second))
		commitTime, commits, records = commitTime+d(2), commits+d(3), records+d(4)
	}
	if commits > 0 {
		r.TrailCommitMean = time.Duration(commitTime / commits * float64(time.Second))
		r.TrailBatchRecords = records / commits
	}
}

// prepare builds a V3-signed POST of o to t, reusing uri's buffer.
func prepare(req *fasthttp.Request, uri []byte, t *target, cfg *Config, o op) []byte {
	req.Reset()
	req.Header.SetMethod("POST")
	uri = sign.AppendQuery(append(uri[:0], "/?"...), o.params)
	req.SetRequestURIBytes(uri)
	req.SetHost(t.host)
	req.Header.Set("User-Agent", "kmsbench")
	for _, h := range sign.SignV3(cfg.Credentials.AccessKeyID, cfg.Credentials.AccessKeySecret, sign.V3Request{
		Method: "POST", Host: t.host, Action: o.action, Version: client.KMSVersion, Query: o.params,
	}) {
		req.Header.SetBytesKV(h.Key, h.Value)
	}
	return uri
}

// errorCode reads the Alibaba error code of an error response.
func errorCode(status int, body []byte) string {
	var e struct{ Code string }
	if json.Unmarshal(body, &e) == nil && e.Code != "" {
		return e.Code
	}
	return "HTTP " + strconv.Itoa(status)
}

func percentiles(h *hdrhistogram.Histogram) Percentiles {
	if h.TotalCount() == 0 {
		return Percentiles{}
	}
	q := func(p float64) time.Duration { return time.Duration(h.ValueAtQuantile(p)) }
	return Percentiles{P50: q(50), P90: q(90), P99: q(99), P999: q(99.9), Max: time.Duration(h.Max()), Mean: time.Duration(h.Mean())}
}

// distribution groups the histogram into buckets of doubling latency,
// from 10 µs up to the largest recorded.
func distribution(h *hdrhistogram.Histogram) []Bucket {
	if h.TotalCount() == 0 {
		return nil
	}
	var out []Bucket
	for bound := 10 * time.Microsecond; ; bound *= 2 {
		out = append(out, Bucket{UpTo: bound})
		if int64(bound) >= h.Max() {
			break
		}
	}
	for _, bar := range h.Distribution() {
		if bar.Count == 0 {
			continue
		}
		i := 0
		for i < len(out)-1 && int64(out[i].UpTo) < bar.To {
			i++
		}
		out[i].Count += bar.Count
	}
	return out
}

func cpuTime(ru syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
