package metrics_test

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caliop/relay/metrics"
)

// One registry per process (or per test), one Metrics on it, given to
// every component: delivery.Deliverer.Metrics, relay.Options.Metrics,
// policy.Engine.Metrics, inbound.Options.Metrics, stscache.Config.Metrics,
// wkdcache.Config.Metrics.
func ExampleNew() {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, "1.0.0", metrics.Options{
		Domains:    []string{"partner.example"},
		TopDomains: 1,
		Providers:  map[string]string{".google.com": "google"},
	})
	fmt.Println(m.Domain("partner.example", nil))
	fmt.Println(m.Domain("hosted.example", []string{"aspmx.l.google.com"}))
	fmt.Println(m.Domain("first.example", []string{"mx.first.example"}))
	fmt.Println(m.Domain("second.example", []string{"mx.second.example"}))
	// Output:
	// partner.example
	// google
	// first.example
	// other
}
