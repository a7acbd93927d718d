package wkdcache

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/metrics/metricstest"
	"github.com/caliop/relay/wkd"
)

// TestMetrics: lookups by result with their latency, cache hits not
// counted, and a key change.
func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	e := newEnv(t, false)
	e.cfg.Metrics = metrics.New(reg, "", metrics.Options{})
	e.reopen()
	ctx := context.Background()
	e.wkd.set(addr, newKey(t, addr, e.now.Add(-time.Hour), 0), nil)
	e.wkd.set("down@example.test", nil, fmt.Errorf("%w: timeout", wkd.ErrUnknown))
	e.c.Get(ctx, addr)
	e.c.Get(ctx, addr) // cached
	e.c.Get(ctx, "none@example.test")
	e.c.Get(ctx, "down@example.test")
	e.wkd.set(addr, newKey(t, addr, e.now, 0), nil)
	e.now = e.now.Add(25 * time.Hour)
	e.c.Get(ctx, addr) // a new key while the pinned one is valid: refused, still a key found

	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"caliop_wkd_lookups_total", []string{"result", "key"}, 2},
		{"caliop_wkd_lookups_total", []string{"result", "no-key"}, 1},
		{"caliop_wkd_lookups_total", []string{"result", "unknown"}, 1},
		{"caliop_wkd_lookup_duration_seconds", nil, 4},
		{"caliop_wkd_key_changes_total", nil, 1},
	} {
		if got := metricstest.Value(t, reg, c.name, c.labels...); got != c.want {
			t.Errorf("%s%q = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}
