package bench

import (
	"context"
	"fmt"
	"slices"
)

// Compare measures the workload against the baseline server at
// baselineURL and against cfg's endpoints alternately — baseline, raftkms,
// baseline, raftkms … rounds times each, the same load every time — and
// reports raftkms's throughput as a ratio of the baseline's for each pair
// and their median. Measured side by side, ratios hold on a shared, noisy
// machine where absolute figures do not.
func Compare(ctx context.Context, cfg Config, baselineURL string, rounds int) (*Comparison, error) {
	if rounds <= 0 {
		rounds = 3
	}
	cmp := &Comparison{Workload: cfg.Workload}
	for r := 1; r <= rounds; r++ {
		base := cfg
		base.Endpoints, base.Baseline, base.Workload, base.Mix = []string{baselineURL}, true, GenerateDataKey, nil
		if base.KeyIDs.Len() == 0 {
			base.KeyIDs = NewList("key-baseline")
		}
		base.Name = fmt.Sprintf("round %d: baseline", r)
		b, err := Run(ctx, base)
		if err != nil {
			return nil, fmt.Errorf("baseline, round %d: %w", r, err)
		}
		node := cfg
		node.Name = fmt.Sprintf("round %d: raftkms", r)
		n, err := Run(ctx, node)
		if err != nil {
			return nil, fmt.Errorf("raftkms, round %d: %w", r, err)
		}
		cmp.Rounds = append(cmp.Rounds, *b, *n)
		ratio := 0.0
		if b.Throughput > 0 {
			ratio = n.Throughput / b.Throughput
		}
		cmp.Ratios = append(cmp.Ratios, ratio)
	}
	sorted := slices.Clone(cmp.Ratios)
	slices.Sort(sorted)
	cmp.Median = sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		cmp.Median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	return cmp, nil
}
