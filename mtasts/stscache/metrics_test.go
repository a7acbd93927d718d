package stscache

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/metrics/metricstest"
	"github.com/caliop/relay/mtasts"
	"github.com/caliop/relay/store"
)

// TestMetrics: fetches by result, and the cached policies by mode read at
// scrape time (an expired one no longer counts).
func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e.c, err = Open(Config{DNS: e.dns, Fetch: e.fetch, Store: st, Now: e.clock.Now, Metrics: metrics.New(reg, "", metrics.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	testingMode := &mtasts.Policy{Mode: mtasts.ModeTesting, MX: []string{"mx.t.test"}, MaxAge: day, Text: "testing"}
	for d, p := range map[string]*mtasts.Policy{"a.test": enforce(7*day, "mx.a.test"), "b.test": enforce(day, "mx.b.test"), "t.test": testingMode} {
		e.dns.set(d, "1")
		e.fetch.serve(d, p, nil)
	}
	for d, err := range map[string]error{
		"webpki.test":  fmt.Errorf("%w: x509", mtasts.ErrWebPKI),
		"invalid.test": fmt.Errorf("%w: line 2", mtasts.ErrPolicyInvalid),
		"down.test":    fmt.Errorf("%w: 503", mtasts.ErrFetch),
	} {
		e.dns.set(d, "1")
		e.fetch.serve(d, nil, err)
	}
	for _, d := range []string{"a.test", "b.test", "t.test", "webpki.test", "invalid.test", "down.test", "down.test"} {
		e.c.Lookup(context.Background(), d)
	}
	check := func(name, label, value string, want float64) {
		t.Helper()
		if got := metricstest.Value(t, reg, name, label, value); got != want {
			t.Errorf("%s{%s=%q} = %v, want %v", name, label, value, got, want)
		}
	}
	check("caliop_mtasts_fetches_total", "result", "ok", 3)
	check("caliop_mtasts_fetches_total", "result", "webpki-invalid", 1)
	check("caliop_mtasts_fetches_total", "result", "invalid", 1)
	check("caliop_mtasts_fetches_total", "result", "fetch-error", 1) // the second lookup was held off
	check("caliop_mtasts_policies", "mode", "enforce", 2)
	check("caliop_mtasts_policies", "mode", "testing", 1)
	e.clock.Advance(day + time.Second)
	check("caliop_mtasts_policies", "mode", "enforce", 1)
	check("caliop_mtasts_policies", "mode", "testing", 0)
}
