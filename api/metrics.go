package api

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// metrics are the node's Prometheus metrics, served at /metrics.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec   // action, code
	latency  *prometheus.HistogramVec // action
	local    prometheus.Counter       // answered without a Raft write
	writes   prometheus.Counter       // state changes proposed by this node
	byAction map[string]*actionMetrics
	handler  fasthttp.RequestHandler

	trailRecords     prometheus.Counter   // records committed by this node's batches
	trailFailed      prometheus.Counter   // batches that did not commit
	trailBatchSize   prometheus.Histogram // records per batch
	trailCommitTimes prometheus.Histogram // time to commit a batch
}

// actionMetrics are resolved once per known action so a request costs two
// atomic updates, not label lookups.
type actionMetrics struct {
	name    string // the action, owned (c.action views the request)
	ok      prometheus.Counter
	latency prometheus.Observer
}

// unknownAction labels requests for actions the server does not serve, so
// clients cannot grow the label set.
const unknownAction = "unknown"

func newMetrics(node Node) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raftkms_requests_total", Help: "API requests by action and result code (OK or the Alibaba error code).",
		}, []string{"action", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "raftkms_request_duration_seconds", Help: "Time to answer an API request, by action.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 18), // 50µs … 6.5s
		}, []string{"action"}),
		local: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftkms_requests_local_total", Help: "Requests answered from this node's replica, with no Raft write (the fast path and reads).",
		}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftkms_writes_total", Help: "State changes this node proposed (committed here as the leader, or forwarded to it).",
		}),
		byAction: map[string]*actionMetrics{},
		trailRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftkms_trail_records_total", Help: "Trail records this node committed in batches (state changes carry their own).",
		}),
		trailFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftkms_trail_batches_failed_total", Help: "Batches of trail records that did not commit; their requests were refused.",
		}),
		trailBatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "raftkms_trail_batch_records", Help: "Records per batch committed to the trail.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12), // 1 … 2048
		}),
		trailCommitTimes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "raftkms_trail_commit_seconds", Help: "Time to commit one batch of trail records.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 18),
		}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.local, m.writes, nodeCollector{node},
		m.trailRecords, m.trailFailed, m.trailBatchSize, m.trailCommitTimes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, actions := range routes {
		for a := range actions {
			m.byAction[a] = &actionMetrics{name: a, ok: m.requests.WithLabelValues(a, "OK"), latency: m.latency.WithLabelValues(a)}
		}
	}
	m.handler = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	return m
}

// observe records one finished request; code is "" on success.
func (m *metrics) observe(c *call, code string, took time.Duration) {
	am, known := m.byAction[c.action]
	if !known {
		m.requests.WithLabelValues(unknownAction, code).Inc()
		return
	}
	am.latency.Observe(took.Seconds())
	if code == "" {
		am.ok.Inc()
		if !c.proposed {
			m.local.Inc()
		}
		return
	}
	m.requests.WithLabelValues(am.name, code).Inc()
}

// nodeCollector reports the node's Raft and lease state at scrape time.
type nodeCollector struct{ node Node }

var (
	descLeader    = prometheus.NewDesc("raftkms_raft_leader", "1 if this node is the Raft leader.", nil, nil)
	descTerm      = prometheus.NewDesc("raftkms_raft_term", "Current Raft term.", nil, nil)
	descApplied   = prometheus.NewDesc("raftkms_raft_applied_index", "Last Raft index applied to the state machine.", nil, nil)
	descCommit    = prometheus.NewDesc("raftkms_raft_commit_index", "Last Raft index known committed.", nil, nil)
	descReady     = prometheus.NewDesc("raftkms_ready", "1 if the node serves (leads or holds a fresh lease, and caught up).", nil, nil)
	descLeaseHeld = prometheus.NewDesc("raftkms_lease_held", "1 if the node holds a lease (a self-lease on the leader).", nil, nil)
	descLeaseLeft = prometheus.NewDesc("raftkms_lease_remaining_seconds", "Time until the node's lease runs out (negative once expired).", nil, nil)
	descGrants    = prometheus.NewDesc("raftkms_lease_grants", "On the leader: followers holding a live lease.", nil, nil)
	descForwarded = prometheus.NewDesc("raftkms_writes_forwarded_total", "Writes this node forwarded to the leader.", nil, nil)
)

func (nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLeader, descTerm, descApplied, descCommit, descReady, descLeaseHeld, descLeaseLeft, descGrants, descForwarded} {
		ch <- d
	}
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.node.Status()
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	gauge(descLeader, b(st.Role == "leader"))
	gauge(descTerm, float64(st.Term))
	gauge(descApplied, float64(st.FSMIndex))
	gauge(descCommit, float64(st.CommitIndex))
	gauge(descReady, b(st.Ready))
	gauge(descLeaseHeld, b(st.Lease.Held))
	gauge(descLeaseLeft, st.Lease.ExpiresIn/1000)
	gauge(descGrants, float64(st.Lease.Grants))
	ch <- prometheus.MustNewConstMetric(descForwarded, prometheus.CounterValue, float64(st.ForwardedWrites))
}

// watchJournal exports how many journaled records wait to be shipped.
func (m *metrics) watchJournal(backlog func() uint64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "raftkms_trail_journal_backlog", Help: "Trail records in this node's journal not yet shipped into the replicated trail.",
	}, func() float64 { return float64(backlog()) }))
}

// trailBatch records one batch commit of n trail records.
func (m *metrics) trailBatch(n int, took time.Duration, err error) {
	if err != nil {
		m.trailFailed.Inc()
		return
	}
	m.trailRecords.Add(float64(n))
	m.trailBatchSize.Observe(float64(n))
	m.trailCommitTimes.Observe(took.Seconds())
}
