package bench

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// WriteHTML writes a self-contained HTML page (no external scripts, styles, fonts or images; nothing fetched from the network) showing the results.
//
// Every string taken from the results goes through html/template's
// contextual escaping; the charts are inline SVG whose coordinates are
// computed here. The template refers to nothing outside the page (its
// only links are to "#" anchors, its SVG has no xmlns), and its source
// never contains "://" at all: endpoints are URLs, so the colon before
// "//" is written as the character reference "&#58;", which a browser
// shows as ":" — the text reads the same, and a grep for http:// finds
// nothing.
func WriteHTML(w io.Writer, title string, results []Result, comparisons []Comparison) error {
	page := htmlPage{Title: title}
	if strings.TrimSpace(page.Title) == "" {
		page.Title = "kmsbench results"
	}
	for i := range results {
		page.Results = append(page.Results, htmlResultViewOf(i+1, &results[i]))
	}
	for i := range comparisons {
		page.Comparisons = append(page.Comparisons, htmlComparisonViewOf(i+1, &comparisons[i]))
	}
	var buf bytes.Buffer
	if err := htmlReportTemplate.Execute(&buf, page); err != nil {
		return fmt.Errorf("bench: rendering the HTML report: %w", err)
	}
	// After escaping, so nothing can be smuggled in: outside <style>
	// (which holds no data), a character reference means the same
	// character in every context the template writes data into.
	out := bytes.ReplaceAll(buf.Bytes(), []byte("://"), []byte("&#58;//"))
	_, err := w.Write(out)
	return err
}

// The page's model: every string is final text, every number a
// coordinate; the template only places them.

type htmlPage struct {
	Title       string
	Results     []htmlResultView
	Comparisons []htmlComparisonView
}

type htmlKV struct{ K, V string }

type htmlResultView struct {
	ID, Name string
	Meta     []htmlKV // the header line
	Cards    []htmlKV // the few numbers in large print
	Latency  []htmlKV // p50 … mean, one column each
	Summary  []htmlKV
	Errors   []htmlErrorRow
	Nodes    []htmlNodeRow
	NodeRSS  bool // Nodes have an RSS column
	Charts   []htmlChart
}

type htmlErrorRow struct{ Code, Count, Share string }

type htmlNodeRow struct{ Endpoint, Requests, Errors, Rate, RSS string }

type htmlComparisonView struct {
	ID, Heading string
	Median      string
	Summary     string
	Rounds      []htmlRoundRow
	Ratios      []htmlKV
	Chart       htmlChart
}

type htmlRoundRow struct{ N, Target, Class, Rate, P50, P99 string }

func htmlResultViewOf(n int, r *Result) htmlResultView {
	v := htmlResultView{ID: "result-" + strconv.Itoa(n), Name: r.Name}
	if strings.TrimSpace(v.Name) == "" {
		v.Name = "Result " + strconv.Itoa(n)
	}

	meta := func(k, val string) { v.Meta = append(v.Meta, htmlKV{k, val}) }
	meta("target", htmlOr(r.Target, "—"))
	meta("workload", htmlOr(r.Workload, "—"))
	meta("endpoints", htmlOr(strings.Join(r.Endpoints, ", "), "—"))
	meta("concurrency", htmlFmtInt(int64(r.Concurrency)))
	if r.Rate > 0 {
		meta("open-loop rate", htmlFmtRate(r.Rate)+" req/s")
	} else {
		meta("load", "closed loop")
	}
	meta("keys", r.keysText(htmlFmtInt(int64(r.Keys))))
	meta("payload", htmlFmtInt(int64(r.Payload))+" B")
	dur := htmlFmtDuration(r.Duration)
	if r.Warmup > 0 {
		dur += " (after " + htmlFmtDuration(r.Warmup) + " warmup)"
	}
	meta("duration", dur)

	var errTotal int64
	for _, c := range r.Errors {
		errTotal += c
	}
	errText := htmlFmtInt(errTotal)
	if errTotal > 0 && r.Requests+errTotal > 0 {
		errText += " (" + htmlFmtPercent(float64(errTotal)/float64(r.Requests+errTotal)) + ")"
	}
	v.Cards = []htmlKV{
		{"requests/s", htmlFmtRate(r.Throughput)},
		{"p50 latency", htmlFmtDuration(r.Latency.P50)},
		{"p99 latency", htmlFmtDuration(r.Latency.P99)},
		{"errors", errText},
	}
	v.Latency = []htmlKV{
		{"p50", htmlFmtDuration(r.Latency.P50)},
		{"p90", htmlFmtDuration(r.Latency.P90)},
		{"p99", htmlFmtDuration(r.Latency.P99)},
		{"p99.9", htmlFmtDuration(r.Latency.P999)},
		{"max", htmlFmtDuration(r.Latency.Max)},
		{"mean", htmlFmtDuration(r.Latency.Mean)},
	}

	cpu := func(per, total time.Duration) string {
		if per <= 0 && total <= 0 {
			return "n/a"
		}
		return htmlFmtDuration(per) + " per request (" + htmlFmtDuration(total) + " in all)"
	}
	v.Summary = []htmlKV{
		{"throughput", htmlFmtRate(r.Throughput) + " requests/s"},
		{"requests", htmlFmtInt(r.Requests) + " succeeded"},
		{"errors", errText},
		{"harness CPU", cpu(r.HarnessCPUPerRequest, r.HarnessCPU)},
		{"node CPU", cpu(r.NodeCPUPerRequest, r.NodeCPU)},
	}
	if len(r.NodeRSS) > 0 {
		rss := make([]string, len(r.NodeRSS))
		for i, b := range r.NodeRSS {
			rss[i] = htmlFmtMiB(b)
		}
		v.Summary = append(v.Summary, htmlKV{"node RSS", strings.Join(rss, " · ")})
	}
	if r.TrailBatchRecords > 0 {
		v.Summary = append(v.Summary, htmlKV{"trail commits", fmt.Sprintf("%s mean, %.1f records per batch",
			htmlFmtDuration(r.TrailCommitMean), r.TrailBatchRecords)})
	}

	codes := make([]string, 0, len(r.Errors))
	for c := range r.Errors {
		codes = append(codes, c)
	}
	sort.Slice(codes, func(i, j int) bool {
		a, b := r.Errors[codes[i]], r.Errors[codes[j]]
		if a != b {
			return a > b
		}
		return codes[i] < codes[j]
	})
	for _, c := range codes {
		share := "—"
		if errTotal > 0 {
			share = htmlFmtPercent(float64(r.Errors[c]) / float64(errTotal))
		}
		v.Errors = append(v.Errors, htmlErrorRow{Code: htmlOr(c, "(none)"), Count: htmlFmtInt(r.Errors[c]), Share: share})
	}

	v.NodeRSS = len(r.NodeRSS) > 0 && len(r.NodeRSS) == len(r.PerNode)
	for i, nr := range r.PerNode {
		row := htmlNodeRow{Endpoint: htmlOr(nr.Endpoint, "—"), Requests: htmlFmtInt(nr.Requests),
			Errors: htmlFmtInt(nr.Errors), Rate: htmlFmtRate(nr.Throughput)}
		if v.NodeRSS {
			row.RSS = htmlFmtMiB(r.NodeRSS[i])
		}
		v.Nodes = append(v.Nodes, row)
	}

	v.Charts = []htmlChart{
		htmlThroughputChart(r.Timeline),
		htmlLatencyChart(r.Timeline),
		htmlDistributionChart(r.Distribution, r.Latency),
	}
	return v
}

func htmlComparisonViewOf(n int, c *Comparison) htmlComparisonView {
	v := htmlComparisonView{ID: "comparison-" + strconv.Itoa(n), Heading: "Comparison " + strconv.Itoa(n)}
	if strings.TrimSpace(c.Workload) != "" {
		v.Heading += ": " + c.Workload
	}
	v.Median = htmlFmtRatio(c.Median)
	if htmlFinite(c.Median) && c.Median >= 0 {
		v.Summary = fmt.Sprintf("raftkms reached %s of the baseline's throughput (median over %d pairs of rounds).",
			htmlFmtPercent(c.Median), len(c.Ratios))
	} else {
		v.Summary = "No usable ratio: the baseline measured no throughput."
	}
	for i := range c.Rounds {
		r := &c.Rounds[i]
		v.Rounds = append(v.Rounds, htmlRoundRow{N: strconv.Itoa(i + 1), Target: htmlOr(r.Target, "—"),
			Class: htmlTargetClass(r.Target), Rate: htmlFmtRate(r.Throughput),
			P50: htmlFmtDuration(r.Latency.P50), P99: htmlFmtDuration(r.Latency.P99)})
	}
	for i, r := range c.Ratios {
		v.Ratios = append(v.Ratios, htmlKV{strconv.Itoa(i + 1), htmlFmtRatio(r)})
	}
	v.Chart = htmlComparisonChart(c.Rounds)
	return v
}

// Charts.

const (
	htmlChartW = 640
	htmlChartH = 280
	htmlPadL   = 70 // room for the y tick labels and the y axis title
	htmlPadR   = 26 // room for half the last x tick label
	htmlPadT   = 30 // room for the legend
	htmlPadB   = 46 // room for the x tick labels and the x axis title
	// With no more points than this every point gets a dot (with a
	// tooltip); with more only the isolated ones do.
	htmlMaxDots = 120
)

type htmlChart struct {
	Title, Note string
	Empty       bool // "no data" instead of a chart
	W, H        int
	L, R, T, B  float64 // the plot area: x from L to R, y from T (top) to B (bottom)
	XTicks      []htmlTick
	YTicks      []htmlTick
	XLabels     []htmlTick // under the x axis, with no grid line
	XLabel      string
	YLabel      string
	XLabelX     float64
	XLabelY     float64
	YLabelX     float64 // in the coordinates rotated by -90°
	YLabelY     float64
	Series      []htmlSeries
	Dots        []htmlDot
	Bars        []htmlBar
	Marks       []htmlMark
	Legend      []htmlLegendItem
}

type htmlTick struct {
	Pos   float64
	Label string
}

type htmlSeries struct{ Name, Class, D string }

type htmlDot struct {
	X, Y       float64
	Class, Tip string
}

type htmlBar struct {
	X, Y, W, H float64
	Class, Tip string
	Label      string // above the bar, if any
	LX, LY     float64
}

type htmlMark struct {
	X, LY        float64
	Class, Label string
}

type htmlLegendItem struct {
	SX, SY, TX, TY float64
	Class, Name    string
}

func newHTMLChart(title string) htmlChart {
	c := htmlChart{Title: title, W: htmlChartW, H: htmlChartH,
		L: htmlPadL, R: htmlChartW - htmlPadR, T: htmlPadT, B: htmlChartH - htmlPadB}
	c.XLabelX, c.XLabelY = (c.L+c.R)/2, float64(c.H)-8
	c.YLabelX, c.YLabelY = -(c.T+c.B)/2, 14
	return c
}

func (c *htmlChart) legend(items ...[2]string) {
	x := c.L
	for _, it := range items {
		c.Legend = append(c.Legend, htmlLegendItem{SX: x, SY: 9, TX: x + 19, TY: 18, Class: it[0], Name: it[1]})
		x += 19 + 6.5*float64(len([]rune(it[1]))) + 18
	}
}

// line adds a series; ok[i] false leaves a gap at point i.
func (c *htmlChart) line(name, class string, xs, ys []float64, ok []bool, tips []string, xs2, ys2 htmlScale) {
	var d strings.Builder
	dots := len(xs) <= htmlMaxDots
	run := 0
	endRun := func(i int) { // point i-1 ended a run
		if run == 1 && !dots {
			c.Dots = append(c.Dots, htmlDot{X: xs2.at(xs[i-1]), Y: ys2.at(ys[i-1]), Class: class, Tip: tips[i-1]})
		}
		run = 0
	}
	for i := range xs {
		if !ok[i] {
			endRun(i)
			continue
		}
		x, y := xs2.at(xs[i]), ys2.at(ys[i])
		if run == 0 {
			d.WriteString("M")
		} else {
			d.WriteString(" L")
		}
		d.WriteString(htmlNum(x) + " " + htmlNum(y))
		run++
		if dots {
			c.Dots = append(c.Dots, htmlDot{X: x, Y: y, Class: class, Tip: tips[i]})
		}
	}
	endRun(len(xs))
	c.Series = append(c.Series, htmlSeries{Name: name, Class: class, D: d.String()})
}

// htmlScale maps a value to a coordinate: lo to p0, hi to p1 (hi > lo,
// and lo > 0 on a log scale); values outside are clamped.
type htmlScale struct {
	lo, hi, p0, p1 float64
	log            bool
}

func (s htmlScale) at(v float64) float64 {
	var t float64
	if s.log {
		if !(v > 0) {
			v = s.lo
		}
		t = (math.Log10(v) - math.Log10(s.lo)) / (math.Log10(s.hi) - math.Log10(s.lo))
	} else {
		t = (v - s.lo) / (s.hi - s.lo)
	}
	if math.IsNaN(t) {
		t = 0
	}
	t = math.Max(0, math.Min(1, t))
	return s.p0 + t*(s.p1-s.p0)
}

// htmlNiceStep is the first of 1, 2, 5 × 10ⁿ at or above raw, and at
// least minStep.
func htmlNiceStep(raw, minStep float64) float64 {
	if !(raw > minStep) || math.IsInf(raw, 0) {
		if minStep > 0 {
			return minStep
		}
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5} {
		if raw <= m*mag*(1+1e-9) {
			return m * mag
		}
	}
	return 10 * mag
}

// htmlZeroAxis is a linear axis from 0 to a round number at or above
// top (which may be 0), with about five ticks at least minStep apart.
func htmlZeroAxis(top, minStep, p0, p1 float64, label func(float64) string) (htmlScale, []htmlTick) {
	if !(top > 0) || math.IsInf(top, 0) {
		top = 0
	}
	step := htmlNiceStep(top/5, minStep)
	n := math.Max(1, math.Ceil(top/step-1e-9))
	s := htmlScale{lo: 0, hi: n * step, p0: p0, p1: p1}
	var ticks []htmlTick
	for k := 0; float64(k) <= n && k <= 20; k++ {
		v := float64(k) * step
		ticks = append(ticks, htmlTick{Pos: s.at(v), Label: label(v)})
	}
	return s, ticks
}

// htmlSpanAxis is a linear axis from lo to hi (hi > lo) with ticks at
// round values at least minStep apart.
func htmlSpanAxis(lo, hi, minStep, p0, p1 float64, label func(float64) string) (htmlScale, []htmlTick) {
	s := htmlScale{lo: lo, hi: hi, p0: p0, p1: p1}
	step := htmlNiceStep((hi-lo)/6, minStep)
	first := math.Ceil(lo/step-1e-9) * step
	var ticks []htmlTick
	for k := 0; k <= 20; k++ {
		v := first + float64(k)*step
		if v > hi+step*1e-9 {
			break
		}
		ticks = append(ticks, htmlTick{Pos: s.at(v), Label: label(v)})
	}
	return s, ticks
}

// htmlLogAxis is a log10 axis from lo to hi (0 < lo < hi) with ticks at
// powers of ten, and at 2 and 5 times them when the range is short.
func htmlLogAxis(lo, hi, p0, p1 float64, label func(float64) string) (htmlScale, []htmlTick) {
	s := htmlScale{lo: lo, hi: hi, p0: p0, p1: p1, log: true}
	dLo, dHi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	decades := dHi - dLo
	mults := []float64{1}
	if decades <= 3 {
		mults = []float64{1, 2, 5}
	}
	every := math.Max(1, math.Ceil(decades/8))
	var vals []float64
	for d := dLo; d <= dHi; d += every {
		for _, m := range mults {
			if v := m * math.Pow(10, d); v >= lo*(1-1e-9) && v <= hi*(1+1e-9) {
				vals = append(vals, v)
			}
		}
	}
	if len(vals) < 2 {
		vals = []float64{lo, hi}
	}
	ticks := make([]htmlTick, len(vals))
	for i, v := range vals {
		ticks[i] = htmlTick{Pos: s.at(v), Label: label(v)}
	}
	return s, ticks
}

// htmlSecondsAxis is the x axis of a timeline: its seconds, sorted.
func htmlSecondsAxis(c *htmlChart, pts []Point) htmlScale {
	lo, hi := float64(pts[0].Second), float64(pts[len(pts)-1].Second)
	if hi <= lo { // a single second: put it at the start of a 2 s axis
		if lo >= 1 {
			lo--
		}
		hi = lo + 2
	}
	s, ticks := htmlSpanAxis(lo, hi, 1, c.L, c.R, func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) })
	c.XTicks = ticks
	c.XLabel = "time (s after the warmup)"
	return s
}

func htmlSortedTimeline(tl []Point) []Point {
	pts := append([]Point(nil), tl...)
	sort.SliceStable(pts, func(i, j int) bool { return pts[i].Second < pts[j].Second })
	return pts
}

func htmlThroughputChart(tl []Point) htmlChart {
	c := newHTMLChart("Throughput over time")
	if len(tl) == 0 {
		c.Empty = true
		return c
	}
	pts := htmlSortedTimeline(tl)
	xs := make([]float64, len(pts))
	req := make([]float64, len(pts))
	errs := make([]float64, len(pts))
	ok := make([]bool, len(pts))
	reqTips := make([]string, len(pts))
	errTips := make([]string, len(pts))
	var top float64
	var anyReq, anyErr bool
	for i, p := range pts {
		xs[i] = float64(p.Second)
		req[i] = math.Max(0, float64(p.Requests))
		errs[i] = math.Max(0, float64(p.Errors))
		ok[i] = true
		top = math.Max(top, math.Max(req[i], errs[i]))
		anyReq = anyReq || p.Requests > 0
		anyErr = anyErr || p.Errors > 0
		reqTips[i] = fmt.Sprintf("%d s: %s requests/s", p.Second, htmlFmtInt(p.Requests))
		errTips[i] = fmt.Sprintf("%d s: %s errors/s", p.Second, htmlFmtInt(p.Errors))
	}
	xsc := htmlSecondsAxis(&c, pts)
	ysc, ticks := htmlZeroAxis(top, 1, c.B, c.T, htmlFmtSI)
	c.YTicks, c.YLabel = ticks, "per second"
	c.line("requests/s", "c-req", xs, req, ok, reqTips, xsc, ysc)
	if anyErr {
		c.line("errors/s", "c-err", xs, errs, ok, errTips, xsc, ysc)
		c.legend([2]string{"c-req", "requests/s"}, [2]string{"c-err", "errors/s"})
	} else {
		c.legend([2]string{"c-req", "requests/s"})
	}
	if !anyReq {
		c.Note = "no successful requests"
	}
	return c
}

func htmlLatencyChart(tl []Point) htmlChart {
	c := newHTMLChart("Latency over time")
	if len(tl) == 0 {
		c.Empty = true
		return c
	}
	pts := htmlSortedTimeline(tl)
	minPos, top := math.Inf(1), 0.0
	for _, p := range pts {
		for _, d := range []time.Duration{p.P50, p.P99} {
			if v := float64(d); v > 0 {
				minPos, top = math.Min(minPos, v), math.Max(top, v)
			}
		}
	}
	useLog := top > 0 && top/minPos > 100

	xs := make([]float64, len(pts))
	p50 := make([]float64, len(pts))
	p99 := make([]float64, len(pts))
	ok50 := make([]bool, len(pts))
	ok99 := make([]bool, len(pts))
	tips50 := make([]string, len(pts))
	tips99 := make([]string, len(pts))
	plotted := false
	for i, p := range pts {
		xs[i], p50[i], p99[i] = float64(p.Second), float64(p.P50), float64(p.P99)
		// A second without a successful request has no latency: a gap.
		// A zero latency of one that had is drawn where the scale can.
		ok50[i] = p50[i] > 0 || (!useLog && p.Requests > 0 && p50[i] == 0)
		ok99[i] = p99[i] > 0 || (!useLog && p.Requests > 0 && p99[i] == 0)
		plotted = plotted || ok50[i] || ok99[i]
		tips50[i] = fmt.Sprintf("%d s: p50 %s", p.Second, htmlFmtDuration(p.P50))
		tips99[i] = fmt.Sprintf("%d s: p99 %s", p.Second, htmlFmtDuration(p.P99))
	}
	xsc := htmlSecondsAxis(&c, pts)
	var ysc htmlScale
	if useLog {
		ysc, c.YTicks = htmlLogAxis(minPos/1.25, top*1.25, c.B, c.T, htmlFmtNanos)
		c.YLabel = "latency (log₁₀ scale)"
	} else {
		ysc, c.YTicks = htmlZeroAxis(top, 1, c.B, c.T, htmlFmtNanos)
		c.YLabel = "latency"
	}
	c.line("p50", "c-p50", xs, p50, ok50, tips50, xsc, ysc)
	c.line("p99", "c-p99", xs, p99, ok99, tips99, xsc, ysc)
	c.legend([2]string{"c-p50", "p50"}, [2]string{"c-p99", "p99"})
	if !plotted {
		c.Note = "no successful requests"
	}
	return c
}

func htmlDistributionChart(buckets []Bucket, lat Percentiles) htmlChart {
	c := newHTMLChart("Latency distribution")
	if len(buckets) == 0 {
		c.Empty = true
		return c
	}
	bs := append([]Bucket(nil), buckets...)
	for i := range bs {
		if bs[i].UpTo < 1 {
			bs[i].UpTo = 1
		}
		if bs[i].Count < 0 {
			bs[i].Count = 0
		}
	}
	sort.SliceStable(bs, func(i, j int) bool { return bs[i].UpTo < bs[j].UpTo })
	merged := bs[:1]
	for _, b := range bs[1:] {
		if last := &merged[len(merged)-1]; b.UpTo == last.UpTo {
			last.Count += b.Count
		} else {
			merged = append(merged, b)
		}
	}
	bs = merged

	// Bar i spans (bound i-1, bound i]; the first one as wide, on the
	// log scale, as the next.
	ratio := 2.0
	if len(bs) > 1 {
		ratio = math.Max(1.1, math.Min(10, float64(bs[1].UpTo)/float64(bs[0].UpTo)))
	}
	lo, hi := float64(bs[0].UpTo)/ratio, float64(bs[len(bs)-1].UpTo)
	var total, top float64
	for _, b := range bs {
		total += float64(b.Count)
		top = math.Max(top, float64(b.Count))
	}
	xsc, xt := htmlLogAxis(lo, hi, c.L, c.R, htmlFmtNanos)
	ysc, yt := htmlZeroAxis(top, 1, c.B, c.T, htmlFmtSI)
	c.XTicks, c.YTicks = xt, yt
	c.XLabel, c.YLabel = "latency (bucket upper bound, log scale)", "requests"
	left := lo
	for i, b := range bs {
		right := float64(b.UpTo)
		x0, x1 := xsc.at(left), xsc.at(right)
		w := x1 - x0
		if w > 3 {
			x0, w = x0+0.5, w-1
		}
		w = math.Max(w, 1)
		y := ysc.at(float64(b.Count))
		if b.Count > 0 && c.B-y < 1 {
			y = c.B - 1
		}
		span := "≤ " + htmlFmtDuration(b.UpTo)
		if i > 0 {
			span = htmlFmtDuration(bs[i-1].UpTo) + " – " + htmlFmtDuration(b.UpTo)
		}
		share := ""
		if total > 0 {
			share = " (" + htmlFmtPercent(float64(b.Count)/total) + ")"
		}
		c.Bars = append(c.Bars, htmlBar{X: x0, Y: y, W: w, H: c.B - y, Class: "c-dist",
			Tip: span + ": " + htmlFmtInt(b.Count) + " requests" + share})
		left = right
	}
	for i, m := range []struct {
		d           time.Duration
		class, name string
	}{{lat.P50, "c-p50", "p50"}, {lat.P99, "c-p99", "p99"}} {
		if v := float64(m.d); v >= lo && v <= hi {
			c.Marks = append(c.Marks, htmlMark{X: xsc.at(v), LY: c.T - 4 - 12*float64(i%2), Class: m.class, Label: m.name})
		}
	}
	if total == 0 {
		c.Note = "every bucket is empty"
	}
	return c
}

func htmlTargetClass(target string) string {
	if target == "baseline" {
		return "c-base"
	}
	return "c-kms"
}

func htmlComparisonChart(rounds []Result) htmlChart {
	c := newHTMLChart("Throughput by round")
	if len(rounds) == 0 {
		c.Empty = true
		return c
	}
	vals := make([]float64, len(rounds))
	var top float64
	for i := range rounds {
		if v := rounds[i].Throughput; htmlFinite(v) && v > 0 {
			vals[i] = v
		}
		top = math.Max(top, vals[i])
	}
	ysc, yt := htmlZeroAxis(top, 1, c.B, c.T, htmlFmtSI)
	c.YTicks, c.YLabel, c.XLabel = yt, "requests/s", "round"
	n := float64(len(rounds))
	slot := (c.R - c.L) / n
	bw := math.Max(1, slot*0.7)
	every := int(math.Max(1, math.Ceil(n/30)))
	var legend [][2]string
	seen := map[string]bool{}
	for i := range rounds {
		r := &rounds[i]
		class := htmlTargetClass(r.Target)
		name := htmlOr(r.Target, "raftkms")
		if !seen[class+"\x00"+name] {
			seen[class+"\x00"+name] = true
			legend = append(legend, [2]string{class, name})
		}
		x := c.L + slot*float64(i) + (slot-bw)/2
		y := ysc.at(vals[i])
		if vals[i] > 0 && c.B-y < 1 {
			y = c.B - 1
		}
		bar := htmlBar{X: x, Y: y, W: bw, H: c.B - y, Class: class,
			Tip: fmt.Sprintf("round %d (%s): %s requests/s", i+1, name, htmlFmtRate(r.Throughput))}
		if len(rounds) <= 12 {
			bar.Label, bar.LX, bar.LY = htmlFmtSI(vals[i]), x+bw/2, y-4
		}
		c.Bars = append(c.Bars, bar)
		if i%every == 0 {
			c.XLabels = append(c.XLabels, htmlTick{Pos: x + bw/2, Label: strconv.Itoa(i + 1)})
		}
	}
	c.legend(legend...)
	return c
}

// Formatting.

func htmlOr(s, alt string) string {
	if strings.TrimSpace(s) == "" {
		return alt
	}
	return s
}

func htmlFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// htmlNum formats a coordinate.
func htmlNum(v float64) string {
	if !htmlFinite(v) {
		v = 0
	}
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
}

// htmlRound3 rounds v > 0 to three significant digits.
func htmlRound3(v float64) float64 {
	if !(v > 0) || math.IsInf(v, 0) {
		return v
	}
	p := math.Pow(10, math.Floor(math.Log10(v))-2)
	return math.Round(v/p) * p
}

// htmlFmtSig3 formats v ≥ 0 with three significant digits and no
// trailing zeros ("1.5", "850", "0.25"), and from 1000 on in full with
// thousands separators.
func htmlFmtSig3(v float64) string {
	if !htmlFinite(v) {
		return "n/a"
	}
	if v < 0 {
		return "-" + htmlFmtSig3(-v)
	}
	if v == 0 {
		return "0"
	}
	r := htmlRound3(v)
	if r >= 1000 {
		return htmlGroup(strconv.FormatFloat(math.Round(v), 'f', 0, 64))
	}
	dec := max(0, 2-int(math.Floor(math.Log10(r))))
	s := strconv.FormatFloat(r, 'f', dec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// htmlFmtNanos formats a latency in nanoseconds: "850 µs", "1.23 ms",
// "3,600 s", "9.22G s".
func htmlFmtNanos(ns float64) string {
	switch {
	case !htmlFinite(ns):
		return "n/a"
	case ns < 0:
		return "-" + htmlFmtNanos(-ns)
	case ns == 0:
		return "0"
	}
	r := htmlRound3(ns)
	size, unit := 1.0, "ns"
	for _, u := range []struct {
		size float64
		unit string
	}{{1e3, "µs"}, {1e6, "ms"}, {1e9, "s"}} {
		if r >= u.size {
			size, unit = u.size, u.unit
		}
	}
	if v := r / size; v >= 1e5 { // only on absurd inputs: keep the label short
		return htmlFmtSI(v) + " " + unit
	}
	return htmlFmtSig3(r/size) + " " + unit
}

func htmlFmtDuration(d time.Duration) string { return htmlFmtNanos(float64(d)) }

// htmlFmtSI formats a count for an axis or a bar: "850", "12.5k", "3M".
func htmlFmtSI(v float64) string {
	if !htmlFinite(v) {
		return "n/a"
	}
	if v < 0 {
		return "-" + htmlFmtSI(-v)
	}
	r := htmlRound3(v)
	if r < 1000 {
		return htmlFmtSig3(v)
	}
	suffixes := []string{"k", "M", "G", "T", "P", "E"}
	for i, s := range suffixes {
		size := math.Pow(10, float64(3*(i+1)))
		if r < size*1000 || i == len(suffixes)-1 {
			return htmlFmtSig3(r/size) + s
		}
	}
	return htmlFmtSig3(v) // not reached
}

// htmlFmtRate formats requests per second: "12,346", "45.7", "3.46".
func htmlFmtRate(v float64) string {
	switch {
	case !htmlFinite(v):
		return "n/a"
	case v < 0:
		return "-" + htmlFmtRate(-v)
	case v == 0:
		return "0"
	case v >= 100:
		return htmlGroup(strconv.FormatFloat(math.Round(v), 'f', 0, 64))
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func htmlFmtInt(n int64) string { return htmlGroup(strconv.FormatInt(n, 10)) }

// htmlGroup puts thousands separators into a string of digits, with an
// optional sign.
func htmlGroup(digits string) string {
	sign := ""
	if strings.HasPrefix(digits, "-") {
		sign, digits = "-", digits[1:]
	}
	if len(digits) <= 3 {
		return sign + digits
	}
	var b strings.Builder
	b.WriteString(sign)
	head := len(digits) % 3
	if head > 0 {
		b.WriteString(digits[:head])
	}
	for i := head; i < len(digits); i += 3 {
		if b.Len() > len(sign) {
			b.WriteByte(',')
		}
		b.WriteString(digits[i : i+3])
	}
	return b.String()
}

// htmlFmtPercent formats a fraction: 0.1234 → "12.3%".
func htmlFmtPercent(f float64) string {
	if !htmlFinite(f) {
		return "n/a"
	}
	return htmlFmtSig3(f*100) + "%"
}

func htmlFmtRatio(r float64) string {
	if !htmlFinite(r) {
		return "n/a"
	}
	return strconv.FormatFloat(r, 'f', 2, 64) + "×"
}

func htmlFmtMiB(b int64) string {
	return htmlGroup(strconv.FormatFloat(float64(b)/(1<<20), 'f', 0, 64)) + " MiB"
}

var htmlReportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"num": htmlNum,
}).Parse(htmlReportSource))

const htmlReportSource = `{{define "chart"}}<figure>
<figcaption>{{.Title}}{{with .Note}} <span class="note">— {{.}}</span>{{end}}</figcaption>
{{if .Empty}}<div class="nodata">no data</div>
{{else}}<svg class="chart" viewBox="0 0 {{.W}} {{.H}}" role="img" aria-label="{{.Title}}">
<title>{{.Title}}</title>
{{range .YTicks}}<line class="grid" x1="{{num $.L}}" y1="{{num .Pos}}" x2="{{num $.R}}" y2="{{num .Pos}}"/>
<text x="{{num $.L}}" y="{{num .Pos}}" dx="-6" dy="0.32em" text-anchor="end">{{.Label}}</text>
{{end}}{{range .XTicks}}<line class="grid" x1="{{num .Pos}}" y1="{{num $.T}}" x2="{{num .Pos}}" y2="{{num $.B}}"/>
<text x="{{num .Pos}}" y="{{num $.B}}" dy="1.3em" text-anchor="middle">{{.Label}}</text>
{{end}}{{range .XLabels}}<text x="{{num .Pos}}" y="{{num $.B}}" dy="1.3em" text-anchor="middle">{{.Label}}</text>
{{end}}{{range .Bars}}<rect class="bar {{.Class}}" x="{{num .X}}" y="{{num .Y}}" width="{{num .W}}" height="{{num .H}}"><title>{{.Tip}}</title></rect>
{{if .Label}}<text class="barlabel" x="{{num .LX}}" y="{{num .LY}}" text-anchor="middle">{{.Label}}</text>
{{end}}{{end}}{{range .Marks}}<line class="mark {{.Class}}" x1="{{num .X}}" y1="{{num $.T}}" x2="{{num .X}}" y2="{{num $.B}}"/>
<text class="marklabel" x="{{num .X}}" y="{{num .LY}}" text-anchor="middle">{{.Label}}</text>
{{end}}<line class="axis" x1="{{num .L}}" y1="{{num .T}}" x2="{{num .L}}" y2="{{num .B}}"/>
<line class="axis" x1="{{num .L}}" y1="{{num .B}}" x2="{{num .R}}" y2="{{num .B}}"/>
{{range .Series}}{{if .D}}<path class="line {{.Class}}" d="{{.D}}"><title>{{.Name}}</title></path>
{{end}}{{end}}{{range .Dots}}<circle class="dot {{.Class}}" cx="{{num .X}}" cy="{{num .Y}}" r="2.5"><title>{{.Tip}}</title></circle>
{{end}}{{range .Legend}}<rect class="swatch {{.Class}}" x="{{num .SX}}" y="{{num .SY}}" width="14" height="10"/>
<text class="legend" x="{{num .TX}}" y="{{num .TY}}">{{.Name}}</text>
{{end}}<text class="axislabel" x="{{num .XLabelX}}" y="{{num .XLabelY}}" text-anchor="middle">{{.XLabel}}</text>
<text class="axislabel" transform="rotate(-90)" x="{{num .YLabelX}}" y="{{num .YLabelY}}" text-anchor="middle">{{.YLabel}}</text>
</svg>
{{end}}</figure>
{{end}}<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  margin: 0 auto; max-width: 1400px; padding: 1rem 1.5rem 3rem; color: #1f2328; background: #fff; line-height: 1.4; }
h1 { font-size: 1.6rem; margin: .5rem 0 1rem; }
h2 { font-size: 1.25rem; margin: 2.5rem 0 .3rem; padding-top: 1rem; border-top: 2px solid #e5e7eb; }
nav ul { margin: 0; padding-left: 1.2rem; }
.meta { color: #57606a; margin: .2rem 0 1rem; }
.meta > span { margin-right: 1.1rem; display: inline-block; }
.meta .k { color: #8b949e; }
.cards { display: flex; flex-wrap: wrap; gap: .75rem; margin: .5rem 0 1rem; }
.card { border: 1px solid #d0d7de; border-radius: 8px; padding: .5rem 1rem; min-width: 8rem; }
.card .v { font-size: 1.7rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .k { color: #57606a; font-size: .85rem; }
.tables { display: flex; flex-wrap: wrap; gap: 0 2.5rem; align-items: flex-start; }
table { border-collapse: collapse; margin: .5rem 0; }
caption { text-align: left; font-weight: 600; font-size: .9rem; padding-bottom: .2rem; }
th, td { padding: .25rem .7rem; border-bottom: 1px solid #eaeef2; text-align: left; vertical-align: top; }
th { font-weight: 600; color: #57606a; }
.n { text-align: right; font-variant-numeric: tabular-nums; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 1.5rem; margin-top: 1rem; }
figure { margin: 0; max-width: 760px; }
figcaption { font-weight: 600; font-size: .95rem; margin-bottom: .3rem; }
figcaption .note { font-weight: normal; color: #57606a; }
.nodata { height: 10rem; display: flex; align-items: center; justify-content: center; color: #8b949e;
  border: 1px dashed #d0d7de; border-radius: 8px; }
svg.chart { width: 100%; height: auto; display: block; }
svg text { font-size: 11px; fill: #57606a; }
svg text.axislabel, svg text.legend { font-size: 12px; fill: #1f2328; }
.grid { stroke: #eaeef2; stroke-width: 1; }
.axis { stroke: #8b949e; stroke-width: 1; }
.c-req { stroke: #2563eb; fill: #2563eb; }
.c-err { stroke: #dc2626; fill: #dc2626; }
.c-p50 { stroke: #0d9488; fill: #0d9488; }
.c-p99 { stroke: #d97706; fill: #d97706; }
.c-dist { stroke: #6366f1; fill: #6366f1; }
.c-base { stroke: #9ca3af; fill: #9ca3af; }
.c-kms { stroke: #2563eb; fill: #2563eb; }
path.line { fill: none; stroke-width: 2; stroke-linejoin: round; stroke-linecap: round; }
rect.bar, rect.swatch { stroke: none; }
line.mark { stroke-width: 1.5; stroke-dasharray: 5 3; }
.dot { stroke: none; }
.pill { display: inline-block; width: .7rem; height: .7rem; border-radius: 2px; margin-right: .35rem; vertical-align: -1px; }
.pill.c-base { background: #9ca3af; }
.pill.c-kms { background: #2563eb; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
{{if or (gt (len .Results) 1) .Comparisons}}<nav><ul>
{{range .Results}}<li><a href="#{{.ID}}">{{.Name}}</a></li>
{{end}}{{range .Comparisons}}<li><a href="#{{.ID}}">{{.Heading}}</a></li>
{{end}}</ul></nav>
{{end}}{{if not (or .Results .Comparisons)}}<div class="nodata">no data</div>
{{end}}{{range .Results}}<section id="{{.ID}}">
<h2>{{.Name}}</h2>
<p class="meta">{{range .Meta}}<span><span class="k">{{.K}}</span> {{.V}}</span> {{end}}</p>
<div class="cards">{{range .Cards}}<div class="card"><div class="v">{{.V}}</div><div class="k">{{.K}}</div></div>{{end}}</div>
<div class="tables">
<table>
<caption>latency</caption>
<thead><tr>{{range .Latency}}<th class="n">{{.K}}</th>{{end}}</tr></thead>
<tbody><tr>{{range .Latency}}<td class="n">{{.V}}</td>{{end}}</tr></tbody>
</table>
<table>
<caption>summary</caption>
<tbody>{{range .Summary}}<tr><th>{{.K}}</th><td>{{.V}}</td></tr>{{end}}</tbody>
</table>
{{if .Errors}}<table>
<caption>errors by code</caption>
<thead><tr><th>code</th><th class="n">count</th><th class="n">share</th></tr></thead>
<tbody>{{range .Errors}}<tr><td>{{.Code}}</td><td class="n">{{.Count}}</td><td class="n">{{.Share}}</td></tr>{{end}}</tbody>
</table>
{{end}}{{if .Nodes}}<table>
<caption>per node</caption>
<thead><tr><th>endpoint</th><th class="n">requests</th><th class="n">errors</th><th class="n">requests/s</th>{{if .NodeRSS}}<th class="n">RSS</th>{{end}}</tr></thead>
<tbody>{{$rss := .NodeRSS}}{{range .Nodes}}<tr><td>{{.Endpoint}}</td><td class="n">{{.Requests}}</td><td class="n">{{.Errors}}</td><td class="n">{{.Rate}}</td>{{if $rss}}<td class="n">{{.RSS}}</td>{{end}}</tr>{{end}}</tbody>
</table>
{{end}}</div>
<div class="charts">
{{range .Charts}}{{template "chart" .}}{{end}}</div>
</section>
{{end}}{{range .Comparisons}}<section id="{{.ID}}">
<h2>{{.Heading}}</h2>
<div class="cards"><div class="card"><div class="v">{{.Median}}</div><div class="k">median raftkms/baseline throughput</div></div></div>
<p>{{.Summary}}</p>
<div class="tables">
<table>
<caption>rounds</caption>
<thead><tr><th class="n">round</th><th>target</th><th class="n">requests/s</th><th class="n">p50</th><th class="n">p99</th></tr></thead>
<tbody>{{range .Rounds}}<tr><td class="n">{{.N}}</td><td><span class="pill {{.Class}}"></span>{{.Target}}</td><td class="n">{{.Rate}}</td><td class="n">{{.P50}}</td><td class="n">{{.P99}}</td></tr>{{end}}</tbody>
</table>
<table>
<caption>raftkms/baseline throughput</caption>
<thead><tr><th class="n">pair</th><th class="n">ratio</th></tr></thead>
<tbody>{{range .Ratios}}<tr><td class="n">{{.K}}</td><td class="n">{{.V}}</td></tr>{{end}}<tr><th class="n">median</th><th class="n">{{.Median}}</th></tr></tbody>
</table>
</div>
<div class="charts">
{{template "chart" .Chart}}</div>
</section>
{{end}}</body>
</html>
`
