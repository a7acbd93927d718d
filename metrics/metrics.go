package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultTopDomains is Options.TopDomains when it is zero.
const DefaultTopDomains = 50

// Options bound the domain label (DESIGN.md invariant 6). The owner of
// the configuration fills them from metrics.domains, metrics.top_domains
// and metrics.providers.
type Options struct {
	// Domains always get a label of their own (lowercase A-labels).
	Domains []string
	// TopDomains is how many other domains get a label of their own, the
	// first ones seen; 0 means DefaultTopDomains, a negative value none.
	TopDomains int
	// Providers maps an MX host suffix to the label of every domain whose
	// MX hosts end in it, e.g. ".google.com" → "google". A suffix without
	// a leading dot is taken as one with it.
	Providers map[string]string
}

// Metrics holds Caliop's series, registered on one registry. A nil
// *Metrics is valid and records nothing, so that components and tests
// without metrics need no special case. Safe for concurrent use.
type Metrics struct {
	dest     *labeler // outbound destination domains
	senders  *labeler // inbound sending domains: slots of their own
	overflow prometheus.Counter

	outSessions    *prometheus.CounterVec
	deliveredMsgs  *prometheus.CounterVec
	deliveredRcpts *prometheus.CounterVec
	failures       *prometheus.CounterVec
	plaintext      *prometheus.CounterVec
	duration       prometheus.Histogram
	replies        *prometheus.CounterVec
	stsFetches     *prometheus.CounterVec
	stsPolicies    *funcCollector
	sizes          *funcCollector
	learnedViol    *prometheus.CounterVec
	learnedPols    *funcCollector
	dane           *prometheus.CounterVec
	wkdLookups     *prometheus.CounterVec
	wkdDuration    prometheus.Histogram
	wkdChanges     prometheus.Counter
	pgp            *prometheus.CounterVec
	inSessions     *prometheus.CounterVec
	tlsrpt         *prometheus.CounterVec
	tlsrptReceived *prometheus.CounterVec
	tlsrptPartner  *prometheus.GaugeVec
	certs          *funcCollector
	authFailures   *prometheus.CounterVec
}

// New makes every series and registers it on reg, which should be the
// process's own registry (never prometheus.DefaultRegisterer: two relays in
// one process must not see each other). version labels caliop_build_info;
// when empty, caliop_build_info is not registered. It panics if a series
// is already registered on reg, as prometheus.MustRegister does.
// New is long by nature: one entry per metric, with its help text.
func New(reg prometheus.Registerer, version string, o Options) *Metrics {
	if o.TopDomains == 0 {
		o.TopDomains = DefaultTopDomains
	}
	o.TopDomains = max(o.TopDomains, 0)
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &Metrics{
		dest:    newLabeler(o),
		senders: newLabeler(Options{Domains: o.Domains, TopDomains: o.TopDomains}),
		overflow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "caliop_metrics_domain_overflow_total",
			Help: "Observations whose domain label was folded into a provider's name or \"other\".",
		}),
		outSessions: counter("caliop_outbound_sessions_total",
			"New sessions to destination MX hosts that met the plan, by destination domain, TLS version (1.2, 1.3, none), what the session proved (none, encrypted, pkix, dane) and the policy it was under.",
			"domain", "tls_version", "auth", "policy"),
		deliveredMsgs: counter("caliop_delivered_messages_total",
			"Messages accepted by a destination MX, by destination domain and strongest protection (pgp, tls-authenticated, tls, plaintext).",
			"domain", "protection"),
		deliveredRcpts: counter("caliop_delivered_recipients_total",
			"Recipients accepted by a destination MX, by destination domain and strongest protection (pgp, tls-authenticated, tls, plaintext).",
			"domain", "protection"),
		failures: counter("caliop_delivery_failures_total",
			"Recipients refused or deferred, by destination domain and result type: an RFC 8460 result type, or dns, network, refused, policy, other.",
			"domain", "result_type"),
		plaintext: counter("caliop_plaintext_deliveries_total",
			"Messages delivered without TLS, allowed only by a level none override; by destination domain. Should stay 0.",
			"domain"),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "caliop_delivery_duration_seconds",
			Help:    "Time from the start of a delivery to its final replies.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
		}),
		replies: counter("caliop_delivery_recipients_total",
			"Recipients given a final reply by the delivery engine, by reply class (2xx, 4xx, 5xx).",
			"class"),
		stsFetches: counter("caliop_mtasts_fetches_total",
			"MTA-STS policy fetches, by result (ok, fetch-error, invalid, webpki-invalid).",
			"result"),
		stsPolicies: newFuncCollector(prometheus.NewDesc("caliop_mtasts_policies",
			"MTA-STS policies in the cache, by mode (enforce, testing).", []string{"mode"}, nil)),
		dane: counter("caliop_dane_verifications_total",
			"DANE checks: certificates that matched or did not match usable TLSA records (per new session), MX hosts whose TLSA records were all unusable or whose lookup failed (per plan).",
			"result"),
		wkdLookups: counter("caliop_wkd_lookups_total",
			"WKD lookups made (cache misses and refreshes), by result (key, no-key, unknown).",
			"result"),
		wkdDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "caliop_wkd_lookup_duration_seconds",
			Help:    "Time a WKD lookup took.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}),
		wkdChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "caliop_wkd_key_changes_total",
			Help: "WKD keys that replaced a pinned key which was neither expired nor revoked.",
		}),
		pgp: counter("caliop_pgp_messages_total",
			"Outbound message copies by PGP decision (encrypted, no-key, already-encrypted, autocrypt-setup, mailing-list, dkim).",
			"decision"),
		inSessions: counter("caliop_inbound_sessions_total",
			"Inbound transactions accepted by the next hop, by sending (MAIL FROM) domain and TLS version (1.2, 1.3, none).",
			"domain", "tls_version"),
		tlsrptPartner: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "caliop_partner_tlsrpt_published",
			Help: "1 when the destination domain publishes a TLS-RPT record (RFC 8460 §3), 0 when not; checked once a day per domain."},
			[]string{"domain"}),
		tlsrptReceived: counter("caliop_tlsrpt_received_sessions_total",
			"Sessions to the inbound domains that other senders reported in TLS-RPT (RFC 8460): result is success or the RFC 8460 result type.",
			"domain", "result"),
		tlsrpt: counter("caliop_tlsrpt_reports_total",
			"TLS-RPT reports sent, by transport (https, mailto) and result (ok, error).",
			"transport", "result"),
		authFailures: counter("caliop_auth_failures_total",
			"SMTP AUTH failures on the outbound listeners, by reason (bad-credentials, rate-limited).",
			"reason"),
		learnedViol: counter("caliop_learned_policy_violations_total",
			"Sessions that failed a destination's learned TLS policy, by destination domain and RFC 8460 result type: delivered and counted under learn.mode report, deferred under enforce.",
			"domain", "result_type"),
		learnedPols: newFuncCollector(prometheus.NewDesc("caliop_learned_policies",
			"Destination domains with a learned TLS policy in force, by requirement (verify, dane).", []string{"requirement"}, nil)),
		sizes: newFuncCollector(prometheus.NewDesc("caliop_cache_entries",
			"Entries of the structures that grow with the destinations (dns, mta-sts, wkd, pool: idle connections, tlsrpt-partners, learned), each bounded.", []string{"cache"}, nil)),
		certs: newFuncCollector(prometheus.NewDesc("caliop_certificate_expiry_timestamp_seconds",
			"When the inbound certificate of each host expires, in seconds since the Unix epoch.", []string{"host"}, nil)),
	}
	reg.MustRegister(m.overflow, m.outSessions, m.deliveredMsgs, m.deliveredRcpts, m.failures, m.plaintext,
		m.duration, m.replies, m.stsFetches, m.stsPolicies, m.dane, m.wkdLookups, m.wkdDuration, m.wkdChanges,
		m.pgp, m.inSessions, m.tlsrpt, m.tlsrptReceived, m.tlsrptPartner, m.certs, m.authFailures, m.sizes, m.learnedViol, m.learnedPols)
	if version != "" {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "caliop_build_info", Help: "Always 1; the version label names the build.",
			ConstLabels: prometheus.Labels{"version": version},
		}, func() float64 { return 1 }))
	}
	m.zero()
	return m
}

// zero makes the series of small fixed label sets exist from the start, so
// that rate() and absent values need no special case in dashboards.
func (m *Metrics) zero() {
	for _, r := range stsFetchResults {
		m.stsFetches.WithLabelValues(r)
	}
	for _, r := range daneResults {
		m.dane.WithLabelValues(r)
	}
	for _, r := range wkdResults {
		m.wkdLookups.WithLabelValues(r)
	}
	for _, d := range pgpDecisions {
		m.pgp.WithLabelValues(d)
	}
	for _, r := range authReasons {
		m.authFailures.WithLabelValues(r)
	}
	for _, t := range tlsrptTransports {
		m.tlsrpt.WithLabelValues(t, "ok")
		m.tlsrpt.WithLabelValues(t, "error")
	}
}

// Domain returns the label value of an outbound destination domain whose
// MX hosts are mxs (nil when unknown): the domain itself when listed in
// Options.Domains or among the first Options.TopDomains seen, else the
// name of the provider whose suffix ends one of mxs, else "other". Each
// folding counts in caliop_metrics_domain_overflow_total. The event
// methods call it once per observation.
func (m *Metrics) Domain(domain string, mxs []string) string {
	if m == nil {
		return Other
	}
	return m.fold(m.dest, domain, mxs)
}

func (m *Metrics) fold(l *labeler, domain string, mxs []string) string {
	v, folded, evicted := l.label(domain, mxs)
	if folded {
		m.overflow.Inc()
	}
	if evicted != "" {
		// A busier domain took the slot: the quiet one's series go,
		// so that the number of series stays bounded.
		gone := prometheus.Labels{"domain": evicted}
		vecs := []interface{ DeletePartialMatch(prometheus.Labels) int }{m.inSessions}
		if l == m.dest {
			vecs = []interface{ DeletePartialMatch(prometheus.Labels) int }{m.outSessions, m.deliveredMsgs, m.deliveredRcpts, m.failures, m.plaintext, m.tlsrptPartner, m.learnedViol}
		}
		for _, v := range vecs {
			v.DeletePartialMatch(gone)
		}
	}
	return v
}

// funcCollector exports one gauge per label value of a map read at
// scrape time from a function set later (by the component that owns the
// data); nothing until then.
type funcCollector struct {
	desc *prometheus.Desc
	fn   atomic.Pointer[func() map[string]float64]
}

func newFuncCollector(d *prometheus.Desc) *funcCollector { return &funcCollector{desc: d} }

func (c *funcCollector) set(fn func() map[string]float64) { c.fn.Store(&fn) }

// setCounts exports the counts fn gives, the labels zero at 0 when fn
// has none of them.
func (c *funcCollector) setCounts(fn func() map[string]int, zero ...string) {
	c.set(func() map[string]float64 {
		out := make(map[string]float64, len(zero))
		for _, z := range zero {
			out[z] = 0
		}
		for k, v := range fn() {
			out[k] = float64(v)
		}
		return out
	})
}

// Describe implements prometheus.Collector.
func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *funcCollector) Collect(ch chan<- prometheus.Metric) {
	fn := c.fn.Load()
	if fn == nil {
		return
	}
	for label, v := range (*fn)() {
		if cm, err := prometheus.NewConstMetric(c.desc, prometheus.GaugeValue, v, label); err == nil {
			ch <- cm // an invalid label value (not UTF-8) is skipped, never a panic in a scrape
		}
	}
}

// LearnedViolation counts a session that failed dst's learned TLS policy
// with result type result (caliop_learned_policy_violations_total).
func (m *Metrics) LearnedViolation(dst Destination, result string) {
	if m != nil {
		m.learnedViol.WithLabelValues(m.Domain(dst.Domain, dst.MXs), oneOf(result, failureValues)).Inc()
	}
}

// WatchLearned makes caliop_learned_policies read the learned policies
// in force by requirement from fn at each scrape.
func (m *Metrics) WatchLearned(fn func() map[string]int) {
	if m == nil || fn == nil {
		return
	}
	m.learnedPols.setCounts(fn, "verify", "dane")
}

// WatchSizes makes caliop_cache_entries read the sizes from fn at each
// scrape (cache name → entries); the server points it at each new
// generation's structures.
func (m *Metrics) WatchSizes(fn func() map[string]int) {
	if m == nil || fn == nil {
		return
	}
	m.sizes.setCounts(fn)
}

// WatchMTASTSPolicies makes caliop_mtasts_policies read the cached
// policies by mode from fn at each scrape; *stscache.Cache calls it when
// opened with Metrics. Modes other than enforce and testing are ignored.
func (m *Metrics) WatchMTASTSPolicies(fn func() map[string]int) {
	if m == nil || fn == nil {
		return
	}
	m.stsPolicies.set(func() map[string]float64 {
		out := map[string]float64{"enforce": 0, "testing": 0}
		for mode, n := range fn() {
			if _, ok := out[mode]; ok {
				out[mode] = float64(n)
			}
		}
		return out
	})
}

// WatchCertificates makes caliop_certificate_expiry_timestamp_seconds
// read the expiry of the current certificate of each host from fn at each
// scrape: (*certs.ACME).Expiry or (*certs.Files).Expiry. The hosts are the
// operator's own, so the label is bounded by configuration.
func (m *Metrics) WatchCertificates(fn func() map[string]time.Time) {
	if m == nil || fn == nil {
		return
	}
	m.certs.set(func() map[string]float64 {
		out := map[string]float64{}
		for host, t := range fn() {
			out[host] = float64(t.Unix())
		}
		return out
	})
}
