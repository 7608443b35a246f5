package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// FormatDuration renders a latency for people: "850µs", "1.23ms", "2.1s".
func FormatDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// WriteText writes a result as a table for a terminal.
func WriteText(w io.Writer, r *Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	mode := "closed loop"
	if r.Rate > 0 {
		mode = fmt.Sprintf("open loop at %.0f requests/s (latency from when each was due)", r.Rate)
	}
	fmt.Fprintf(tw, "%s\t%s against %s, %d connections, %s, %s, %s measured after %s warmup\n",
		r.Name, r.Workload, r.Target, r.Concurrency, mode, r.keysText(strconv.Itoa(r.Keys)), r.Duration, r.Warmup)
	fmt.Fprintf(tw, "throughput\t%.0f requests/s (%d requests)\n", r.Throughput, r.Requests)
	l := r.Latency
	fmt.Fprintf(tw, "latency\tp50 %s\tp90 %s\tp99 %s\tp99.9 %s\tmax %s\tmean %s\n",
		FormatDuration(l.P50), FormatDuration(l.P90), FormatDuration(l.P99), FormatDuration(l.P999), FormatDuration(l.Max), FormatDuration(l.Mean))
	if len(r.Errors) > 0 {
		var parts []string
		for _, code := range slices.Sorted(maps.Keys(r.Errors)) {
			parts = append(parts, fmt.Sprintf("%s %d", code, r.Errors[code]))
		}
		fmt.Fprintf(tw, "errors\t%s\n", strings.Join(parts, ", "))
	} else {
		fmt.Fprintf(tw, "errors\tnone\n")
	}
	if r.Target != "baseline" {
		fmt.Fprintf(tw, "CPU per request\tharness %s\tnodes %s\n", FormatDuration(r.HarnessCPUPerRequest), FormatDuration(r.NodeCPUPerRequest))
	} else {
		fmt.Fprintf(tw, "CPU per request\tharness %s\n", FormatDuration(r.HarnessCPUPerRequest))
	}
	if r.TrailBatchRecords > 0 {
		fmt.Fprintf(tw, "trail commits\t%s mean\t%.1f records per batch\n", FormatDuration(r.TrailCommitMean), r.TrailBatchRecords)
	}
	for i, n := range r.PerNode {
		rss := ""
		if i < len(r.NodeRSS) && r.NodeRSS[i] > 0 {
			rss = fmt.Sprintf("\tRSS %d MiB", r.NodeRSS[i]>>20)
		}
		fmt.Fprintf(tw, "  %s\t%.0f requests/s\t%d errors%s\n", n.Endpoint, n.Throughput, n.Errors, rss)
	}
	return tw.Flush()
}

// WriteComparisonText writes a compare run's rounds and ratios.
func WriteComparisonText(w io.Writer, c *Comparison) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s: raftkms against the baseline, alternated\n", c.Workload)
	fmt.Fprintf(tw, "round\ttarget\trequests/s\tp50\tp99\terrors\ttrail commit (mean)\n")
	for i, r := range c.Rounds {
		errs := int64(0)
		for _, n := range r.Errors {
			errs += n
		}
		commit := "-"
		if r.TrailBatchRecords > 0 {
			commit = FormatDuration(r.TrailCommitMean)
		}
		fmt.Fprintf(tw, "%d\t%s\t%.0f\t%s\t%s\t%d\t%s\n", i/2+1, r.Target, r.Throughput, FormatDuration(r.Latency.P50),
			FormatDuration(r.Latency.P99), errs, commit)
	}
	var rs []string
	for _, r := range c.Ratios {
		rs = append(rs, fmt.Sprintf("%.2f", r))
	}
	fmt.Fprintf(tw, "ratio raftkms/baseline\t%s (median %.2f)\n", strings.Join(rs, ", "), c.Median)
	return tw.Flush()
}

// MarkdownHeader and MarkdownRow render results as a Markdown table.
const MarkdownHeader = "| run | requests/s | p50 | p99 | p99.9 | errors | harness CPU/req | node CPU/req |\n|---|---|---|---|---|---|---|---|\n"

// MarkdownRow is one result as a row under MarkdownHeader.
func MarkdownRow(label string, r *Result) string {
	errs := int64(0)
	for _, n := range r.Errors {
		errs += n
	}
	return fmt.Sprintf("| %s | %.0f | %s | %s | %s | %d | %s | %s |\n", label, r.Throughput, FormatDuration(r.Latency.P50),
		FormatDuration(r.Latency.P99), FormatDuration(r.Latency.P999), errs, FormatDuration(r.HarnessCPUPerRequest), FormatDuration(r.NodeCPUPerRequest))
}

// CompareHeader and CompareRow render compare runs as a Markdown table.
const CompareHeader = "| run | baseline requests/s | raftkms requests/s | ratios | median ratio | raftkms p99 (worst round) |\n|---|---|---|---|---|---|\n"

// CompareRow is one compare run as a row under CompareHeader.
func CompareRow(label string, c *Comparison) string {
	var base, node []string
	var worst time.Duration
	for _, r := range c.Rounds {
		if r.Target == "baseline" {
			base = append(base, fmt.Sprintf("%.0f", r.Throughput))
		} else {
			node = append(node, fmt.Sprintf("%.0f", r.Throughput))
			worst = max(worst, r.Latency.P99)
		}
	}
	var ratios []string
	for _, r := range c.Ratios {
		ratios = append(ratios, fmt.Sprintf("%.2f", r))
	}
	return fmt.Sprintf("| %s | %s | %s | %s | **%.2f** | %s |\n", label, strings.Join(base, ", "), strings.Join(node, ", "),
		strings.Join(ratios, ", "), c.Median, FormatDuration(worst))
}
