package tlsrptsend

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/resolver"
	"github.com/caliop/relay/tlsrpt"
)

// PartnerDNS is what Partners looks up: a domain's TLS-RPT record and
// its MX hosts. *resolver.Resolver is one.
type PartnerDNS interface {
	LookupTXT(ctx context.Context, name string) ([]string, resolver.Result, error)
	LookupMX(ctx context.Context, domain string) ([]resolver.MX, resolver.Result, error)
}

// Limits of Partners' checks.
const (
	partnerEvery   = 24 * time.Hour   // one check per domain and day
	partnerTimeout = 30 * time.Second // per check
	partnerAtOnce  = 4                // checks running at once; more wait for the next outcome
	partnerMemory  = 100000           // domains remembered; past it the memory starts over
)

// Partners passes outcomes on to Next and, once a day per policy domain,
// looks up whether the domain publishes a TLS-RPT record (RFC 8460 §3),
// for the charter dashboard (caliop_partner_tlsrpt_published). At most
// partnerAtOnce checks run at once, each bounded in time; an outcome that
// finds them all busy leaves its domain for a later one.
type Partners struct {
	Next    tlsrpt.Recorder
	DNS     PartnerDNS
	Metrics *metrics.Metrics
	Now     func() time.Time // nil: time.Now
	// Base is the context checks run under, ended when their owner stops
	// (a generation of the relay); nil: context.Background.
	Base context.Context

	mu      sync.Mutex
	checked map[string]time.Time
	running int
}

var _ tlsrpt.Recorder = (*Partners)(nil)

// Record passes o on and starts the day's check of its domain if due.
func (p *Partners) Record(o tlsrpt.Outcome) {
	p.Next.Record(o)
	now := p.now()
	p.mu.Lock()
	if p.checked == nil || len(p.checked) > partnerMemory {
		p.checked = map[string]time.Time{}
	}
	last, seen := p.checked[o.Domain]
	due := (!seen || now.Sub(last) >= partnerEvery) && p.running < partnerAtOnce
	if due {
		p.checked[o.Domain] = now
		p.running++
	}
	p.mu.Unlock()
	if due {
		go func() {
			p.check(o.Domain)
			p.mu.Lock()
			p.running--
			p.mu.Unlock()
		}()
	}
}

func (p *Partners) check(domain string) {
	base := p.Base
	if base == nil {
		base = context.Background()
	}
	ctx, cancel := context.WithTimeout(base, partnerTimeout)
	defer cancel()
	txts, _, err := p.DNS.LookupTXT(ctx, tlsrpt.RecordName(domain))
	if err != nil && !errors.Is(err, resolver.ErrNXDomain) {
		return // unknown: try again tomorrow
	}
	_, serr := tlsrpt.SelectTXT(txts)
	mxs, _, _ := p.DNS.LookupMX(ctx, domain)
	hosts := make([]string, len(mxs))
	for i, mx := range mxs {
		hosts[i] = mx.Host
	}
	p.Metrics.TLSRPTPublished(metrics.Destination{Domain: domain, MXs: hosts}, err == nil && serr == nil)
}

func (p *Partners) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Len is the number of domains whose last check is remembered.
func (p *Partners) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.checked)
}
