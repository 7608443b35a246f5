// Package bench is kmsbench: a load generator that speaks the real
// protocol (V3-signed requests, keep-alive connections) to one raftkms
// node or a whole cluster, measures throughput and latency with HDR
// histograms (with coordinated-omission correction in open-loop runs),
// and reports them as a table, JSON or a self-contained HTML page; plus a
// baseline server that does only the cryptography of GenerateDataKey,
// the stack's limit on a machine, and a runner that compares the two side
// by side.
package bench

import (
	"fmt"
	"time"
)

// Result is one measured run of one workload against one target.
type Result struct {
	Name        string        `json:"name"`   // a label: the workload, or "compare round 2: raftkms"
	Target      string        `json:"target"` // "raftkms" or "baseline"
	Workload    string        `json:"workload"`
	Endpoints   []string      `json:"endpoints"`
	Concurrency int           `json:"concurrency"`
	Rate        float64       `json:"rate,omitempty"` // requests/s of an open-loop run; 0: closed loop
	Keys        int           `json:"keys"`
	KeySkew     float64       `json:"key_skew,omitempty"` // Zipf exponent of the key picks; 0: even
	Payload     int           `json:"payload_bytes,omitempty"`
	Duration    time.Duration `json:"duration_ns"` // measured time (after the warmup)
	Warmup      time.Duration `json:"warmup_ns"`

	Requests   int64            `json:"requests"` // answered with success
	Errors     map[string]int64 `json:"errors"`   // by Alibaba error code, or "transport", "timeout"
	Throughput float64          `json:"throughput"`
	Latency    Percentiles      `json:"latency"`
	PerNode    []NodeResult     `json:"per_node"`

	// Timeline has one point per second of the measured time.
	Timeline []Point `json:"timeline"`
	// Distribution is the latency histogram: counts of requests whose
	// latency falls at or below each bound (and above the previous one).
	Distribution []Bucket `json:"distribution"`

	// CPU time used while measuring, by the harness and by the nodes (from
	// their /metrics), and per successful request.
	HarnessCPU           time.Duration `json:"harness_cpu_ns"`
	NodeCPU              time.Duration `json:"node_cpu_ns"`
	HarnessCPUPerRequest time.Duration `json:"harness_cpu_per_request_ns"`
	NodeCPUPerRequest    time.Duration `json:"node_cpu_per_request_ns"`
	// NodeRSS is each node's resident memory at the end, in bytes.
	NodeRSS []int64 `json:"node_rss_bytes,omitempty"`
	// TrailCommitMean is how long committing a batch of trail records took
	// on average while measuring, and TrailBatchRecords how many records a
	// batch held (every node's batches; zero if none committed). Every
	// reply waits for its batch, so a slow disk shows here first.
	TrailCommitMean   time.Duration `json:"trail_commit_mean_ns,omitempty"`
	TrailBatchRecords float64       `json:"trail_batch_records,omitempty"`
}

// Percentiles of successful requests' latency.
type Percentiles struct {
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p999_ns"`
	Max  time.Duration `json:"max_ns"`
	Mean time.Duration `json:"mean_ns"`
}

// NodeResult is one endpoint's share of a run.
type NodeResult struct {
	Endpoint   string  `json:"endpoint"`
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	Throughput float64 `json:"throughput"`
}

// Point is one second of a run.
type Point struct {
	Second   int           `json:"second"` // from the end of the warmup
	Requests int64         `json:"requests"`
	Errors   int64         `json:"errors"`
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
}

// Bucket is one bar of the latency distribution.
type Bucket struct {
	UpTo  time.Duration `json:"up_to_ns"`
	Count int64         `json:"count"`
}

// Comparison is a compare run: rounds of the baseline and raftkms,
// alternated, under the same load.
type Comparison struct {
	Workload string    `json:"workload"`
	Rounds   []Result  `json:"rounds"` // baseline, raftkms, baseline, raftkms, …
	Ratios   []float64 `json:"ratios"` // raftkms/baseline throughput, per pair
	Median   float64   `json:"median_ratio"`
}

// keysText says how many keys a run spread its load over, and how.
func (r *Result) keysText(count string) string {
	if r.KeySkew > 0 {
		return fmt.Sprintf("%s keys, picked by Zipf's law (s = %g)", count, r.KeySkew)
	}
	return count + " keys"
}
