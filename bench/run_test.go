package bench

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/raftkms/raftkms/api/client"
)

// startBaseline serves the baseline on a loopback port for a test.
func startBaseline(t *testing.T) string {
	t.Helper()
	b, err := NewBaseline()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go b.Serve(ln)
	t.Cleanup(func() { b.Shutdown() })
	return "http://" + ln.Addr().String()
}

func baselineConfig(url string) Config {
	return Config{Endpoints: []string{url}, Credentials: client.Credentials{AccessKeyID: "AK", AccessKeySecret: "secret"},
		Workload: GenerateDataKey, KeyIDs: NewList("key-a", "key-b"), Baseline: true, Concurrency: 8,
		Duration: time.Second, Warmup: 200 * time.Millisecond}
}

func TestClosedLoopRunMeasuresEveryAnsweredRequest(t *testing.T) {
	url := startBaseline(t)
	r, err := Run(context.Background(), baselineConfig(url))
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests < 100 || len(r.Errors) != 0 || r.Target != "baseline" {
		t.Fatalf("result: %d requests, errors %v", r.Requests, r.Errors)
	}
	if d := r.Throughput - float64(r.Requests)/r.Duration.Seconds(); d > 1 || d < -1 {
		t.Fatalf("throughput %.0f for %d requests in %s", r.Throughput, r.Requests, r.Duration)
	}
	l := r.Latency
	if !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Fatalf("percentiles out of order: %+v", l)
	}
	var timed, binned int64
	for _, p := range r.Timeline {
		timed += p.Requests
	}
	for _, b := range r.Distribution {
		binned += b.Count
	}
	if timed != r.Requests || binned != r.Requests || len(r.Timeline) != 1 {
		t.Fatalf("timeline holds %d, distribution %d, of %d requests (%d seconds)", timed, binned, r.Requests, len(r.Timeline))
	}
	if r.HarnessCPU <= 0 || r.HarnessCPUPerRequest <= 0 {
		t.Fatalf("harness CPU not measured: %v", r.HarnessCPU)
	}
	if len(r.PerNode) != 1 || r.PerNode[0].Requests != r.Requests {
		t.Fatalf("per node: %+v", r.PerNode)
	}
}

func TestOpenLoopRunKeepsItsRateAndCountsLatencyFromWhenDue(t *testing.T) {
	url := startBaseline(t)
	cfg := baselineConfig(url)
	cfg.Rate, cfg.Duration, cfg.Warmup = 400, 2*time.Second, 0
	r, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests < 700 || r.Requests > 820 {
		t.Fatalf("%d requests in 2 s at 400/s", r.Requests)
	}
	if len(r.Timeline) != 2 {
		t.Fatalf("timeline of %d seconds", len(r.Timeline))
	}
}

func TestErrorsAreCountedByCode(t *testing.T) {
	url := startBaseline(t)
	cfg := baselineConfig(url)
	cfg.Endpoints = append(cfg.Endpoints, "http://127.0.0.1:1") // nothing listens there
	cfg.Concurrency = 4
	r, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors["transport"] == 0 || r.Requests == 0 || r.PerNode[1].Errors == 0 || r.PerNode[0].Errors != 0 {
		t.Fatalf("errors %v, per node %+v", r.Errors, r.PerNode)
	}
	if got := errorCode(404, []byte(`{"Code":"Forbidden.KeyNotFound","Message":"x"}`)); got != "Forbidden.KeyNotFound" {
		t.Fatalf("errorCode = %q", got)
	}
	if got := errorCode(502, []byte("bad gateway")); got != "HTTP 502" {
		t.Fatalf("errorCode of a non-JSON body = %q", got)
	}
}

func TestCompareAlternatesAndTakesTheMedianRatio(t *testing.T) {
	a, b := startBaseline(t), startBaseline(t)
	cfg := baselineConfig(b) // a second baseline stands in for raftkms
	cfg.Baseline, cfg.Duration, cfg.Warmup = false, 300*time.Millisecond, 0
	c, err := Compare(context.Background(), cfg, a, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Rounds) != 6 || len(c.Ratios) != 3 || c.Rounds[0].Target != "baseline" || c.Rounds[1].Target != "raftkms" {
		t.Fatalf("rounds %d, ratios %v", len(c.Rounds), c.Ratios)
	}
	if c.Median < 0.2 || c.Median > 5 { // the same server twice: about 1
		t.Fatalf("median ratio %.2f of a server against itself", c.Median)
	}
}

func TestConfigRefusesWhatCannotRun(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"unknown workload":   func(c *Config) { c.Workload = "teleport" },
		"mixed without mix":  func(c *Config) { c.Workload, c.Mix = Mixed, nil },
		"plaintext too long": func(c *Config) { c.PayloadBytes = 7000 },
		"no endpoints":       func(c *Config) { c.Endpoints = nil },
		"decrypt, no blobs":  func(c *Config) { c.Workload, c.Baseline = Decrypt, false },
		"key skew of 1":      func(c *Config) { c.KeySkew = 1 },
		"negative key skew":  func(c *Config) { c.KeySkew = -2 },
	} {
		cfg := baselineConfig("http://127.0.0.1:1")
		mutate(&cfg)
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("%s: Run accepted it", name)
		}
	}
	if _, err := ParseMix("generate-data-key=60,decrypt"); err == nil {
		t.Error("ParseMix accepted an entry without a weight")
	}
	if m, err := ParseMix("generate-data-key=60, decrypt=40"); err != nil || m[Decrypt] != 40 {
		t.Errorf("ParseMix = %v, %v", m, err)
	}
}

func TestPlannerDrawsEveryWorkloadOfAMix(t *testing.T) {
	cfg := Config{Workload: Mixed, Mix: map[string]int{GenerateDataKey: 1, Decrypt: 1, Encrypt: 1, ReEncrypt: 1},
		KeyIDs: NewList("k"), Blobs: NewList("b"), PayloadBytes: 16, DataKeyBytes: 32}
	p := newPlanner(&cfg, 0)
	seen := map[string]bool{}
	for range 200 {
		o := p.next()
		seen[o.action] = true
		for i := 1; i < len(o.params); i++ {
			if string(o.params[i-1].Key) > string(o.params[i].Key) {
				t.Fatalf("%s parameters not sorted", o.action)
			}
		}
	}
	if len(seen) != 4 {
		t.Fatalf("drew %v", seen)
	}
}

// With --key-skew the load falls on a few hot keys and a long tail (Zipf's
// law), the hot ones scattered over the list; without it, evenly.
func TestKeySkewPicksAFewKeysOftenAndScattersThem(t *testing.T) {
	const n, draws = 1000, 100000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("key-%04d", i)
	}
	counts := func(skew float64) map[string]int {
		cfg := Config{Workload: GenerateDataKey, KeyIDs: NewList(ids...), KeySkew: skew, Seed: 7}
		p, c := newPlanner(&cfg, 0), map[string]int{}
		for range draws {
			o := p.next()
			for _, kv := range o.params {
				if string(kv.Key) == "KeyId" {
					c[string(kv.Value)]++
				}
			}
		}
		return c
	}
	top := func(c map[string]int) (string, int) {
		best, most := "", 0
		for k, v := range c {
			if v > most {
				best, most = k, v
			}
		}
		return best, most
	}
	even := counts(0)
	if _, most := top(even); len(even) != n || most > draws/n*2 {
		t.Fatalf("even picks: %d keys drawn, the most often %d times", len(even), most)
	}
	skewed := counts(1.2)
	hot, most := top(skewed)
	if most < draws/10 || len(skewed) < n/4 {
		t.Fatalf("Zipf picks: the hottest key drawn %d of %d times, %d keys drawn at all", most, draws, len(skewed))
	}
	if hot == ids[0] {
		t.Fatalf("the hottest key is the list's first: ranks are not scattered")
	}
	var text, page strings.Builder
	r := &Result{Name: "gdk", Workload: GenerateDataKey, Keys: n, KeySkew: 1.2}
	WriteText(&text, r)
	WriteHTML(&page, "skew", []Result{*r}, nil)
	for _, out := range []string{text.String(), page.String()} {
		if !strings.Contains(out, "1.2") || !strings.Contains(out, "Zipf") {
			t.Fatalf("a report does not name the skew:\n%.400s", out)
		}
	}
}

func TestTextReportNamesTheNumbers(t *testing.T) {
	r := &Result{Name: "gdk", Workload: GenerateDataKey, Target: "raftkms", Concurrency: 64, Throughput: 12345,
		Requests: 123450, Duration: 10 * time.Second, Errors: map[string]int64{"ServiceUnavailableTemporary": 3},
		Latency: Percentiles{P50: 1200 * time.Microsecond, P99: 9 * time.Millisecond}}
	var b strings.Builder
	WriteText(&b, r)
	for _, want := range []string{"12345 requests/s", "p99 9.00ms", "ServiceUnavailableTemporary 3", "p50 1.20ms"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

// A run reads each node's CPU, memory and trail commits from /metrics when
// the measured time begins and ends — not before the warm-up — and reports
// what changed in between.
func TestRunReportsTheNodesCPUAndTrailCommitsFromTheirMetrics(t *testing.T) {
	b, err := NewBaseline()
	if err != nil {
		t.Fatal(err)
	}
	var scrapes atomic.Int64
	started := time.Now() // the node's CPU counter runs at one second per second
	node := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) != "/metrics" {
			b.handle(ctx)
			return
		}
		k := float64(scrapes.Add(1) - 1) // 0 before the measured time, 1 after
		fmt.Fprintf(ctx, "# HELP process_cpu_seconds_total CPU\nprocess_cpu_seconds_total %g\n", time.Since(started).Seconds())
		fmt.Fprintf(ctx, "process_resident_memory_bytes %d\n", 300<<20)
		fmt.Fprintf(ctx, "raftkms_trail_commit_seconds_bucket{le=\"+Inf\"} %g\n", 250*k)
		fmt.Fprintf(ctx, "raftkms_trail_commit_seconds_sum %g\nraftkms_trail_commit_seconds_count %g\n", 1+0.5*k, 10+250*k)
		fmt.Fprintf(ctx, "raftkms_trail_batch_records_sum %g\n", 5000*k)
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go node.Serve(ln)
	t.Cleanup(func() { node.Shutdown() })

	cfg := baselineConfig("http://" + ln.Addr().String())
	cfg.Baseline = false
	r, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if scrapes.Load() != 2 {
		t.Fatalf("%d scrapes of /metrics, want one before and one after", scrapes.Load())
	}
	// The counter moved cfg.Duration while measured; with the warm-up it would be 1.2 s.
	if r.NodeCPU < 900*time.Millisecond || r.NodeCPU > 1100*time.Millisecond || len(r.NodeRSS) != 1 || r.NodeRSS[0] != 300<<20 {
		t.Errorf("node CPU %s over a %s run after %s of warm-up, RSS %v", r.NodeCPU, cfg.Duration, cfg.Warmup, r.NodeRSS)
	}
	if r.TrailCommitMean != 2*time.Millisecond || r.TrailBatchRecords != 20 {
		t.Errorf("trail commits: %s mean, %.1f records per batch; want 2ms, 20", r.TrailCommitMean, r.TrailBatchRecords)
	}
	var out strings.Builder
	if err := WriteText(&out, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "2.00ms mean") || !strings.Contains(out.String(), "20.0 records per batch") {
		t.Errorf("the report does not show the trail commits:\n%s", out.String())
	}
}

// A node whose /metrics did not answer when the measured time began adds
// nothing: its counters at the end alone would count its whole life.
func TestANodeReadAtOneEndOnlyAddsNoCPU(t *testing.T) {
	var r Result
	before := [][]float64{{10, 100, 1, 10, 100}, {0, 0, 0, 0, 0}}
	after := [][]float64{{12, 200, 2, 30, 500}, {5000, 300, 90, 900, 9000}}
	r.nodeMetrics(before, after)
	if r.NodeCPU != 2*time.Second || r.TrailCommitMean != 50*time.Millisecond || r.TrailBatchRecords != 20 {
		t.Errorf("node CPU %s, commits %s mean, %.1f records per batch; want 2s, 50ms, 20", r.NodeCPU, r.TrailCommitMean, r.TrailBatchRecords)
	}
	if len(r.NodeRSS) != 2 || r.NodeRSS[0] != 200 || r.NodeRSS[1] != 300 {
		t.Errorf("RSS %v", r.NodeRSS)
	}
}
