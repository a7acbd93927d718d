// Package gctune sets the garbage collector's GOGC from the live heap, so
// that a small heap is collected rarely (throughput) and a large one
// does not make the process three times its size (memory).
package gctune

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Defaults of Tuner.
const (
	// MaxPercent is GOGC while the heap is small: collecting three times
	// less often than Go's default buys about 7% of throughput.
	MaxPercent = 300
	// MinPercent is Go's default, never gone below: past the budget the
	// process grows as any Go program does, never into a collection loop.
	MinPercent = 100
	// Budget is the heap (live plus garbage) GOGC aims at while the live
	// heap is small enough: 144 MiB, about 170 MiB of RSS with the
	// runtime's own.
	Budget = 144 << 20
)

// Percent is GOGC for a live heap of live bytes: the largest that keeps
// live plus garbage within budget, between MinPercent and MaxPercent.
func Percent(live, budget uint64) int {
	if live == 0 {
		return MaxPercent
	}
	p := int(100 * (float64(budget) - float64(live)) / float64(live))
	return min(max(p, MinPercent), MaxPercent)
}

// Run sets GOGC now and every interval from the live heap until ctx
// ends.
func Run(ctx context.Context, interval time.Duration) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	t := time.NewTicker(interval)
	defer t.Stop()
	last := 0
	for {
		metrics.Read(sample)
		live := uint64(0)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			live = sample[0].Value.Uint64()
		}
		if p := Percent(live, Budget); p != last {
			debug.SetGCPercent(p)
			last = p
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
