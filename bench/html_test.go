package bench

import (
	"bytes"
	"encoding/xml"
	"errors"
	"html"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// htmlTestResult is a realistic run: a 30-second timeline with some
// noise, a latency spike at second 17 and a few errors, ~20
// distribution buckets, three nodes.
func htmlTestResult(name, target string, rps float64, p50, p99 time.Duration, seed float64) Result {
	r := Result{
		Name: name, Target: target, Workload: "GenerateDataKey",
		Endpoints:   []string{"http://10.0.0.1:8080", "http://10.0.0.2:8080", "http://10.0.0.3:8080"},
		Concurrency: 64, Keys: 100, Payload: 32,
		Duration: 30 * time.Second, Warmup: 5 * time.Second,
		Errors: map[string]int64{},
	}
	for s := 0; s < 30; s++ {
		wave := math.Sin(float64(s)/3 + seed)
		p := Point{
			Second:   s,
			Requests: int64(rps * (1 + 0.06*wave)),
			P50:      time.Duration(float64(p50) * (1 + 0.1*wave)),
			P99:      time.Duration(float64(p99) * (1 + 0.2*math.Cos(float64(s)/2+seed))),
		}
		if s == 17 { // a leader election: slow and failing for a second
			p.Requests /= 3
			p.Errors = 42
			p.P99 *= 40
		}
		if s%11 == 5 {
			p.Errors += 3
		}
		r.Timeline = append(r.Timeline, p)
		r.Requests += p.Requests
	}
	r.Errors["Rejected.Throttling"] = 42 // second 17
	r.Errors["transport"] = 3 * 3        // seconds 5, 16, 27
	r.Throughput = float64(r.Requests) / r.Duration.Seconds()
	r.Latency = Percentiles{P50: p50, P90: p50 * 2, P99: p99, P999: p99 * 3, Max: p99 * 45, Mean: p50 * 13 / 10}
	// Log-normal-ish counts over doubling bounds from 10 µs.
	for i, bound := 0, 10*time.Microsecond; i < 20; i, bound = i+1, bound*2 {
		x := math.Log2(float64(bound) / float64(p50))
		r.Distribution = append(r.Distribution, Bucket{UpTo: bound, Count: int64(float64(r.Requests) * 0.4 * math.Exp(-x*x/1.5))})
	}
	var errTotal int64
	for _, c := range r.Errors {
		errTotal += c
	}
	for i, e := range r.Endpoints {
		share := []float64{0.34, 0.33, 0.33}[i]
		r.PerNode = append(r.PerNode, NodeResult{Endpoint: e, Requests: int64(float64(r.Requests) * share),
			Errors: int64(float64(errTotal) * share), Throughput: r.Throughput * share})
	}
	r.HarnessCPU = time.Duration(r.Requests) * 41 * time.Microsecond
	r.NodeCPU = time.Duration(r.Requests) * 95 * time.Microsecond
	r.HarnessCPUPerRequest = 41 * time.Microsecond
	r.NodeCPUPerRequest = 95 * time.Microsecond
	r.NodeRSS = []int64{412 << 20, 398 << 20, 405 << 20}
	return r
}

func htmlTestComparison() Comparison {
	c := Comparison{Workload: "GenerateDataKey"}
	for i := 0; i < 3; i++ {
		b := htmlTestResult("compare round: baseline", "baseline", 21000+300*float64(i), 900*time.Microsecond, 3*time.Millisecond, float64(i))
		k := htmlTestResult("compare round: raftkms", "raftkms", 12000+500*float64(i), 1500*time.Microsecond, 6*time.Millisecond, float64(i)+0.5)
		c.Rounds = append(c.Rounds, b, k)
		c.Ratios = append(c.Ratios, k.Throughput/b.Throughput)
	}
	sorted := append([]float64(nil), c.Ratios...)
	slices.Sort(sorted)
	c.Median = sorted[len(sorted)/2]
	return c
}

func htmlRender(t *testing.T, title string, results []Result, cmps []Comparison) string {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteHTML(&buf, title, results, cmps); err != nil {
		t.Fatalf("WriteHTML: %v", err)
	}
	return buf.String()
}

func htmlSamplePage(t *testing.T) string {
	a := htmlTestResult("GenerateDataKey, 3 nodes", "raftkms", 12345, 1200*time.Microsecond, 4560*time.Microsecond, 0)
	a.Throughput = 12345.67
	b := htmlTestResult("GenerateDataKey, open loop", "raftkms", 8000, 700*time.Microsecond, 2*time.Millisecond, 1)
	b.Rate = 8000
	b.Errors = nil
	for i := range b.Timeline {
		b.Timeline[i].Errors = 0
	}
	return htmlRender(t, "kmsbench GenerateDataKey", []Result{a, b}, []Comparison{htmlTestComparison()})
}

var (
	htmlTagRE      = regexp.MustCompile(`<(/?)([a-zA-Z][a-zA-Z0-9-]*)\b[^>]*?(/?)>`)
	htmlStyleRE    = regexp.MustCompile(`(?s)<style>.*?</style>`)
	htmlSVGRE      = regexp.MustCompile(`(?s)<svg\b.*?</svg>`)
	htmlVoidTags   = map[string]bool{"meta": true, "link": true, "br": true, "hr": true, "img": true, "input": true, "wbr": true}
	htmlCoordRE    = regexp.MustCompile(`\s(x1|x2|y1|y2|cx|cy|width|height)="([^"]*)"`)
	htmlPathRE     = regexp.MustCompile(`\sd="([^"]*)"`)
	htmlPathNumRE  = regexp.MustCompile(`-?[0-9.]+(e[-+]?[0-9]+)?`)
	htmlNoDataText = "no data"
)

// htmlCheckWellFormed fails unless the page is one HTML document whose
// tags nest properly and whose charts are well-formed XML.
func htmlCheckWellFormed(t *testing.T, page string) {
	t.Helper()
	if n := strings.Count(page, "<!DOCTYPE html>"); n != 1 {
		t.Errorf("%d doctypes, want 1", n)
	}
	if n := strings.Count(page, "<html"); n != 1 {
		t.Errorf("%d <html, want 1", n)
	}
	if n := strings.Count(page, "</html>"); n != 1 {
		t.Errorf("%d </html>, want 1", n)
	}
	if !strings.HasSuffix(strings.TrimSpace(page), "</html>") {
		t.Errorf("the page does not end with </html>")
	}
	if o, c := strings.Count(page, "<svg"), strings.Count(page, "</svg>"); o != c {
		t.Errorf("%d <svg but %d </svg>", o, c)
	}
	var stack []string
	for _, m := range htmlTagRE.FindAllStringSubmatch(htmlStyleRE.ReplaceAllString(page, "<style></style>"), -1) {
		closing, name, self := m[1] == "/", strings.ToLower(m[2]), m[3] == "/"
		switch {
		case self || htmlVoidTags[name]:
		case !closing:
			stack = append(stack, name)
		case len(stack) == 0 || stack[len(stack)-1] != name:
			t.Fatalf("</%s> closes %v", name, stack)
		default:
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		t.Errorf("never closed: %v", stack)
	}
	for _, svg := range htmlSVGRE.FindAllString(page, -1) {
		d := xml.NewDecoder(strings.NewReader(svg))
		for {
			_, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("a chart is not well-formed XML: %v\n%s", err, svg)
			}
		}
	}
}

func TestHTMLReportIsWellFormed(t *testing.T) {
	page := htmlSamplePage(t)
	htmlCheckWellFormed(t, page)
	// Two results with three charts each, one comparison with one.
	if n := strings.Count(page, "<svg"); n != 7 {
		t.Errorf("%d charts, want 7", n)
	}
	htmlCheckWellFormed(t, htmlRender(t, "", nil, nil))
	htmlCheckWellFormed(t, htmlRender(t, "empty", []Result{{}}, []Comparison{{}}))
}

func TestHTMLReportShowsThroughputAndP99(t *testing.T) {
	page := htmlSamplePage(t)
	for _, want := range []string{
		"12,346",  // requests/s of the first result (12345.67)
		"4.56 ms", // its p99
		"1.2 ms",  // its p50
		"8,000",   // the second result's open-loop rate
		"41 µs",   // harness CPU per request
		"95 µs",   // node CPU per request
		"412 MiB", // a node's RSS
		"GenerateDataKey, 3 nodes",
		"Rejected.Throttling",
		"latency distribution",
	} {
		if !strings.Contains(strings.ToLower(page), strings.ToLower(want)) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

func TestHTMLReportIsSelfContained(t *testing.T) {
	r := htmlTestResult("urls", "raftkms", 1000, time.Millisecond, 3*time.Millisecond, 0)
	r.Endpoints = []string{"http://10.9.8.7:8080", "HTTPS://kms.example:443"}
	r.PerNode[0].Endpoint = "https://10.9.8.7:8080"
	page := htmlSamplePage(t) + htmlRender(t, "see https://example.com", []Result{r}, nil)
	lower := strings.ToLower(page)
	for _, bad := range []string{"http://", "https://", "//", "<script", "<link", "<img", "<iframe", "<object", "@import", "url(", "src=", "xlink:"} {
		if bad == "//" {
			// no protocol-relative references either
			if regexp.MustCompile(`(href|src)="//`).MatchString(lower) {
				t.Errorf("the page has a protocol-relative reference")
			}
			continue
		}
		if strings.Contains(lower, bad) {
			t.Errorf("the page contains %q", bad)
		}
	}
	for _, m := range regexp.MustCompile(`href="([^"]*)"`).FindAllStringSubmatch(page, -1) {
		if !strings.HasPrefix(m[1], "#") {
			t.Errorf("a link leaves the page: href=%q", m[1])
		}
	}
	// The page writes "://" as "&#58;//"; a browser decodes that in an
	// attribute, so check attributes as the browser reads them.
	for _, m := range regexp.MustCompile(`\s([a-zA-Z:-]+)="([^"]*)"`).FindAllStringSubmatch(page, -1) {
		if v := html.UnescapeString(m[2]); strings.Contains(v, "://") || strings.HasPrefix(v, "//") {
			t.Errorf("attribute %s=%q refers to an address", m[1], v)
		}
	}
	for _, style := range htmlStyleRE.FindAllString(page, -1) {
		if s := strings.ToLower(html.UnescapeString(style)); strings.Contains(s, "url(") || strings.Contains(s, "@import") {
			t.Errorf("the style sheet fetches something")
		}
	}
	// The endpoints are still shown.
	if !strings.Contains(page, "10.9.8.7:8080") || !strings.Contains(page, "kms.example:443") {
		t.Errorf("the endpoints are not shown")
	}
}

func TestHTMLReportEscapesUserStrings(t *testing.T) {
	const evil = `<script>alert(1)</script>`
	r := htmlTestResult(evil, evil, 1000, time.Millisecond, 3*time.Millisecond, 0)
	r.Workload = evil
	r.Endpoints = []string{evil, `"><svg onload=alert(2)>`}
	r.PerNode[0].Endpoint = evil
	r.Errors = map[string]int64{evil: 5}
	c := htmlTestComparison()
	c.Workload = evil
	c.Rounds[1].Target = evil
	page := htmlRender(t, evil, []Result{r}, []Comparison{c})
	if strings.Contains(page, "<script") {
		t.Errorf("a raw <script> tag reached the page")
	}
	if strings.Contains(page, "<svg onload") {
		t.Errorf("a raw <svg onload> reached the page")
	}
	if !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("the escaped name is not shown")
	}
	htmlCheckWellFormed(t, page)
}

func TestHTMLReportSaysNoDataForEmptyTimelineAndDistribution(t *testing.T) {
	r := htmlTestResult("empty", "raftkms", 1000, time.Millisecond, 3*time.Millisecond, 0)
	r.Timeline, r.Distribution = nil, []Bucket{}
	page := htmlRender(t, "empty", []Result{r}, []Comparison{{Workload: "nothing", Median: math.NaN()}})
	// Throughput, latency over time, distribution, comparison rounds.
	if n := strings.Count(page, htmlNoDataText); n != 4 {
		t.Errorf(`"no data" %d times, want 4`, n)
	}
	if strings.Contains(page, "<svg") {
		t.Errorf("a chart was drawn without data")
	}
	htmlCheckWellFormed(t, page)
}

func TestHTMLReportComparisonShowsMedianRatio(t *testing.T) {
	c := htmlTestComparison()
	c.Median = 0.8771 // unlike any pair's, to tell them apart
	page := htmlRender(t, "compare", nil, []Comparison{c})
	if !strings.Contains(page, "0.88×") {
		t.Errorf("the median ratio 0.8771 is not shown as 0.88×")
	}
	if !strings.Contains(page, "87.7%") {
		t.Errorf("the median is not shown as a percentage of the baseline")
	}
	// Each pair's ratio, and both colours in the chart.
	for _, r := range c.Ratios {
		if s := strconv.FormatFloat(r, 'f', 2, 64) + "×"; !strings.Contains(page, s) {
			t.Errorf("the ratio %s is not shown", s)
		}
	}
	if strings.Count(page, `class="bar c-base"`) != 3 || strings.Count(page, `class="bar c-kms"`) != 3 {
		t.Errorf("the chart does not have 3 baseline and 3 raftkms bars")
	}
}

func TestHTMLReportChartsStayInsideTheirBoxOnDegenerateData(t *testing.T) {
	huge := time.Duration(math.MaxInt64)
	cases := map[string]Result{
		"single point": {Timeline: []Point{{Second: 7, Requests: 100, P50: time.Millisecond, P99: 2 * time.Millisecond}},
			Distribution: []Bucket{{UpTo: time.Millisecond, Count: 100}}},
		"all zero": {Timeline: []Point{{Second: 0}, {Second: 1}, {Second: 2}},
			Distribution: []Bucket{{UpTo: 0}, {UpTo: time.Millisecond}}},
		"zero latency with requests": {Timeline: []Point{{Second: 0, Requests: 5}, {Second: 1, Requests: 5}},
			Distribution: []Bucket{{UpTo: 10 * time.Microsecond, Count: 10}}},
		"huge": {Throughput: math.MaxFloat64, Requests: math.MaxInt64,
			Latency:      Percentiles{P50: huge, P90: huge, P99: huge, P999: huge, Max: huge, Mean: huge},
			Timeline:     []Point{{Second: 0, Requests: math.MaxInt64, Errors: math.MaxInt64, P50: 1, P99: huge}, {Second: math.MaxInt32, Requests: 1, P50: huge, P99: huge}},
			Distribution: []Bucket{{UpTo: 1, Count: math.MaxInt64}, {UpTo: huge, Count: 1}}},
		"negative and unsorted": {Timeline: []Point{{Second: 3, Requests: -5, P50: -1}, {Second: -2, Requests: 10, P50: time.Second}},
			Distribution: []Bucket{{UpTo: time.Second, Count: -3}, {UpTo: time.Millisecond, Count: 4}, {UpTo: time.Millisecond, Count: 1}}},
	}
	cmp := Comparison{Rounds: []Result{{Target: "baseline"}, {Target: "raftkms", Throughput: math.Inf(1)}, {Target: "baseline", Throughput: math.NaN()}},
		Ratios: []float64{math.Inf(1), math.NaN()}, Median: math.Inf(1)}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			r.Name = name
			page := htmlRender(t, name, []Result{r}, []Comparison{cmp})
			htmlCheckWellFormed(t, page)
			if strings.Contains(page, htmlNoDataText) {
				t.Errorf(`"no data" although there is data`)
			}
			for _, bad := range []string{"NaN", "Inf", "e+"} {
				if strings.Contains(page, bad) {
					t.Errorf("the page contains %q", bad)
				}
			}
			check := func(what, s string) {
				v, err := strconv.ParseFloat(s, 64)
				if err != nil || v < 0 || v > htmlChartW {
					t.Errorf("%s=%q is not a coordinate inside the chart", what, s)
				}
			}
			for _, m := range htmlCoordRE.FindAllStringSubmatch(page, -1) {
				check(m[1], m[2])
			}
			for _, m := range htmlPathRE.FindAllStringSubmatch(page, -1) {
				for _, n := range htmlPathNumRE.FindAllString(m[1], -1) {
					check("d", n)
				}
			}
		})
	}
}

func TestHTMLLatencyChartSwitchesToLogScaleForWideRanges(t *testing.T) {
	narrow := htmlTestResult("narrow", "raftkms", 1000, time.Millisecond, 2*time.Millisecond, 0)
	for i := range narrow.Timeline {
		narrow.Timeline[i].P50, narrow.Timeline[i].P99 = time.Millisecond, 3*time.Millisecond
	}
	if page := htmlRender(t, "narrow", []Result{narrow}, nil); strings.Contains(page, "log₁₀") {
		t.Errorf("latencies within 3× of each other are drawn on a log scale")
	}
	wide := narrow
	wide.Timeline = append([]Point(nil), narrow.Timeline...)
	wide.Timeline[3].P50, wide.Timeline[4].P99 = 50*time.Microsecond, 2*time.Second
	if page := htmlRender(t, "wide", []Result{wide}, nil); !strings.Contains(page, "latency (log₁₀ scale)") {
		t.Errorf("latencies spanning 40000× are not drawn on a labelled log scale")
	}
}

func TestHTMLThroughputChartDrawsErrorsOnlyWhenThereAreSome(t *testing.T) {
	r := htmlTestResult("with errors", "raftkms", 1000, time.Millisecond, 3*time.Millisecond, 0)
	if page := htmlRender(t, "", []Result{r}, nil); !strings.Contains(page, `class="line c-err"`) || !strings.Contains(page, "errors/s") {
		t.Errorf("errors in the timeline are not drawn")
	}
	for i := range r.Timeline {
		r.Timeline[i].Errors = 0
	}
	if page := htmlRender(t, "", []Result{r}, nil); strings.Contains(page, `class="line c-err"`) || strings.Contains(page, "errors/s") {
		t.Errorf("an error series is drawn without errors")
	}
}

func TestHTMLDurationsAreHumanReadable(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                        "0",
		1:                        "1 ns",
		850 * time.Microsecond:   "850 µs",
		1234567:                  "1.23 ms",
		1500 * time.Microsecond:  "1.5 ms",
		999999 * time.Nanosecond: "1 ms",
		30 * time.Second:         "30 s",
		-2 * time.Millisecond:    "-2 ms",
		time.Hour:                "3,600 s",
		math.MaxInt64:            "9.22G s",
	} {
		if got := htmlFmtDuration(d); got != want {
			t.Errorf("htmlFmtDuration(%d) = %q, want %q", int64(d), got, want)
		}
	}
	for v, want := range map[float64]string{0: "0", 3.456: "3.46", 45.67: "45.7", 12345.67: "12,346", 1234567: "1,234,567"} {
		if got := htmlFmtRate(v); got != want {
			t.Errorf("htmlFmtRate(%v) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[float64]string{0: "0", 0.5: "0.5", 850: "850", 12500: "12.5k", 3e6: "3M", 9.2e18: "9.2E"} {
		if got := htmlFmtSI(v); got != want {
			t.Errorf("htmlFmtSI(%v) = %q, want %q", v, got, want)
		}
	}
}

type htmlFailingWriter struct{}

func (htmlFailingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteHTMLReturnsTheWritersError(t *testing.T) {
	if err := WriteHTML(htmlFailingWriter{}, "x", nil, nil); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("WriteHTML to a failing writer = %v, want its error", err)
	}
}

// TestHTMLSamplePageRenders renders the sample page and, with
// KMSBENCH_HTML_SAMPLE=path, writes it there to be looked at.
func TestHTMLSamplePageRenders(t *testing.T) {
	page := htmlSamplePage(t)
	htmlCheckWellFormed(t, page)
	if path := os.Getenv("KMSBENCH_HTML_SAMPLE"); path != "" {
		if err := os.WriteFile(path, []byte(page), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", path, len(page))
	}
}
