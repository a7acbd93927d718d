package delivery

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the delivery series (README "Metrics"). The only domain
// label is on plaintext deliveries, which only configured override
// domains can make, so its values are bounded (DESIGN.md invariant 6).
type Metrics struct {
	recipients *prometheus.CounterVec
	plain      *prometheus.CounterVec
	duration   prometheus.Histogram
}

// NewMetrics registers the delivery series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		recipients: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "caliop_delivery_recipients_total",
			Help: "Recipients given a final reply by the delivery engine, by reply class (2xx, 4xx, 5xx).",
		}, []string{"class"}),
		plain: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "caliop_plaintext_deliveries_total",
			Help: "Messages delivered without TLS, allowed only by a level none override; by domain.",
		}, []string{"domain"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "caliop_delivery_duration_seconds",
			Help:    "Time from the start of a delivery to its final replies.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
		}),
	}
	reg.MustRegister(m.recipients, m.plain, m.duration)
	return m
}

func (m *Metrics) observe(domain string, res Result, d time.Duration) {
	if m == nil {
		return
	}
	m.duration.Observe(d.Seconds())
	for _, r := range res.Replies {
		m.recipients.WithLabelValues(strconv.Itoa(r.Code/100) + "xx").Inc()
	}
}

func (m *Metrics) plaintext(domain string) {
	if m != nil {
		m.plain.WithLabelValues(domain).Inc()
	}
}

// Plaintext is the plaintext-delivery counter of domain, for tests and
// dashboards' documentation.
func (m *Metrics) Plaintext(domain string) prometheus.Counter {
	return m.plain.WithLabelValues(domain)
}
