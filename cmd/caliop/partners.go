package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/resolver"
	"github.com/caliop/relay/tlsrpt"
)

// partnerRecords passes outcomes on to next and, once a day per policy
// domain, looks up whether the domain publishes a TLS-RPT record, for the
// charter dashboard (caliop_partner_tlsrpt_published).
type partnerRecords struct {
	next tlsrpt.Recorder
	res  *resolver.Resolver
	m    *metrics.Metrics

	mu      sync.Mutex
	checked map[string]time.Time
}

func (p *partnerRecords) Record(o tlsrpt.Outcome) {
	p.next.Record(o)
	p.mu.Lock()
	due := time.Since(p.checked[o.Domain]) > 24*time.Hour
	if due {
		if len(p.checked) > 100000 {
			clear(p.checked) // bounded memory; checks just start over
		}
		p.checked[o.Domain] = time.Now()
	}
	p.mu.Unlock()
	if due {
		go p.check(o.Domain)
	}
}

func (p *partnerRecords) check(domain string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	txts, _, err := p.res.LookupTXT(ctx, tlsrpt.RecordName(domain))
	if err != nil && !errorsIsNX(err) {
		return // unknown: try again tomorrow
	}
	_, serr := tlsrpt.SelectTXT(txts)
	mxs, _, _ := p.res.LookupMX(ctx, domain)
	hosts := make([]string, len(mxs))
	for i, mx := range mxs {
		hosts[i] = mx.Host
	}
	p.m.TLSRPTPublished(metrics.Destination{Domain: domain, MXs: hosts}, err == nil && serr == nil)
}

func errorsIsNX(err error) bool { return errors.Is(err, resolver.ErrNXDomain) }
