package check

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/caliop/relay/dane"
	"github.com/caliop/relay/delivery"
	"github.com/caliop/relay/mtasts"
	"github.com/caliop/relay/policy"
)

// inspect resolves m's addresses and TLSA records, probes every address
// and judges each against m's requirement, if the plan uses m.
func (c *Checker) inspect(ctx context.Context, m *MX, plan policy.Plan) {
	m.Addresses = []Address{}
	addrs, res, err := c.DNS.LookupIP(ctx, m.Host)
	if err == nil && len(addrs) == 0 {
		err = errors.New("no address")
	}
	if err != nil {
		m.AddressError = err.Error()
	}
	if m.Implicit {
		m.DNSSEC = res.Authentic
	}
	set, names := c.tlsa(ctx, m, plan, res.Authentic, res.Canonical)
	var why []string
	for _, ip := range addrs {
		a := Address{Address: ip.String(), DNSSEC: res.Authentic}
		pr, perr := c.Prober.Probe(ctx, m.Host, net.JoinHostPort(ip.String(), strconv.Itoa(c.Port)))
		a.Probe = c.describe(pr, perr, set, names)
		if m.req != nil {
			a.Verdict, a.Reason = c.judgeAddress(*m.req, source(plan, *m.req), pr, perr)
			if m.Verdict == Refused && a.Verdict != Refused {
				m.Verdict, m.Reason = a.Verdict, a.Reason
			}
			why = append(why, a.Address+": "+a.Reason)
		}
		m.Addresses = append(m.Addresses, a)
	}
	if m.req == nil || m.Verdict != Refused {
		return
	}
	if err != nil {
		m.Reason = "address lookup: " + err.Error()
		return
	}
	m.Reason = strings.Join(why, "; ")
}

// tlsa finds m's TLSA RRset: the plan's when it applies DANE to m, else
// looked up to be shown (RFC 7672 §2.2.2: a canonical name only from a
// secure address lookup). names are the reference identifiers for
// dane.Verify (RFC 7672 §3.2.2).
func (c *Checker) tlsa(ctx context.Context, m *MX, plan policy.Plan, secure bool, canonical string) (*dane.RRSet, []string) {
	var set dane.RRSet
	var names []string
	if m.req != nil && m.req.DANE != nil {
		set, names = m.req.DANE.Set, m.req.DANE.Names
	} else {
		if !secure {
			canonical = ""
		}
		s, err := dane.Lookup(ctx, c.DNS, m.Host, canonical)
		if err != nil {
			m.TLSA = &TLSA{Name: m.Host, Error: err.Error()}
			return nil, nil
		}
		set, names = s, []string{s.Name}
		if m.Host != s.Name {
			names = append(names, m.Host)
		}
		if m.DNSSEC && plan.Domain != m.Host {
			names = append(names, plan.Domain)
		}
	}
	m.TLSA = &TLSA{Name: set.Name, Secure: set.Secure}
	for _, t := range set.Records {
		m.TLSA.Records = append(m.TLSA.Records, TLSARecord{Record: t.String(), Usable: t.Usable()})
	}
	return &set, names
}

// describe turns a probe into its report.
func (c *Checker) describe(pr delivery.Probe, err error, set *dane.RRSet, names []string) Probe {
	if err != nil {
		return Probe{Error: err.Error()}
	}
	p := Probe{STARTTLS: pr.STARTTLS, Extensions: pr.Extensions}
	if pr.TLSErr != nil {
		p.TLSError = pr.TLSErr.Error()
	}
	if pr.TLS == nil {
		return p
	}
	p.TLSVersion = tls.VersionName(pr.TLS.Version)
	p.Cipher = tls.CipherSuiteName(pr.TLS.CipherSuite)
	chain := pr.TLS.PeerCertificates
	if len(chain) > 0 {
		p.Certificate = c.certificate(chain, pr.WebPKIErr)
	}
	if set != nil && set.Secure && len(set.Records) > 0 {
		for _, t := range set.Records {
			for depth, cert := range chain {
				if dane.Match(t, cert) {
					p.TLSAMatch = append(p.TLSAMatch, TLSAMatch{Record: t.String(), Depth: depth})
				}
			}
		}
		verr := dane.Verify(*set, chain, names, c.now())
		ok := verr == nil
		p.TLSAVerified = &ok
		if verr != nil {
			p.TLSAError = verr.Error()
		}
	}
	return p
}

func (c *Checker) certificate(chain []*x509.Certificate, webPKIErr error) *Certificate {
	leaf := chain[0]
	cert := &Certificate{
		Subject:     leaf.Subject.String(),
		Names:       leaf.DNSNames,
		Issuer:      leaf.Issuer.String(),
		NotBefore:   leaf.NotBefore.UTC(),
		NotAfter:    leaf.NotAfter.UTC(),
		Expired:     c.now().After(leaf.NotAfter),
		WebPKIValid: webPKIErr == nil,
	}
	for _, ca := range chain[1:] {
		cert.Chain = append(cert.Chain, ca.Subject.String())
	}
	if webPKIErr != nil {
		cert.WebPKIError = webPKIErr.Error()
	}
	return cert
}

// judgeAddress says what delivery to one address would achieve under req,
// as delivery.Deliverer checks it before MAIL: never plaintext unless req
// allows it and STARTTLS is not offered, never less than req.
func (c *Checker) judgeAddress(req policy.Requirement, src string, pr delivery.Probe, err error) (verdict, reason string) {
	switch {
	case err != nil:
		return Refused, err.Error()
	case pr.TLS == nil && !pr.STARTTLS && req.Level == policy.None && req.DANE == nil:
		return Plaintext, "STARTTLS not offered; plaintext allowed under " + src
	case pr.TLS == nil && pr.TLSErr != nil:
		return Refused, pr.TLSErr.Error()
	case pr.TLS == nil:
		return Refused, "STARTTLS not offered"
	case pr.TLS.Version < req.MinTLS:
		return Refused, fmt.Sprintf("%s negotiated, %s required", tls.VersionName(pr.TLS.Version), tls.VersionName(req.MinTLS))
	case req.DANE.Usable():
		if err := dane.Verify(req.DANE.Set, pr.TLS.PeerCertificates, req.DANE.Names, c.now()); err != nil {
			return Refused, err.Error()
		}
		return Authenticated, matched(req.DANE.Set, pr.TLS.PeerCertificates) + " matched (" + src + ")"
	case req.DANE != nil:
		return Encrypted, tls.VersionName(pr.TLS.Version) + ", any certificate accepted under " + src + " (secure records, none usable)"
	case req.Level >= policy.Verify && pr.WebPKIErr != nil:
		return Refused, "certificate not valid for the MX name: " + pr.WebPKIErr.Error()
	case req.Level >= policy.Verify:
		return Authenticated, "certificate valid for the MX name under " + src
	}
	return Encrypted, tls.VersionName(pr.TLS.Version) + ", any certificate accepted under " + src
}

// source names the rule behind req, for reasons.
func source(plan policy.Plan, req policy.Requirement) string {
	switch {
	case req.DANE != nil:
		return "TLSA _25._tcp." + req.DANE.Set.Name
	case plan.STS != nil && plan.STS.Policy.Mode == mtasts.ModeEnforce && req.Level >= policy.Verify:
		return "MTA-STS enforce (policy " + plan.STS.ID + ")"
	case plan.Source == policy.SourceOverride:
		return "local override " + req.Level.String()
	}
	return "local default " + req.Level.String()
}

// matched names the usable record that authenticated chain, as
// "DANE-EE 3 1 1": DANE-EE(3) at the leaf, DANE-TA(2) above it
// (RFC 7672 §3.1). A trust anchor taken from the record itself is not
// in the chain: "DANE-TA record".
func matched(set dane.RRSet, chain []*x509.Certificate) string {
	for _, t := range set.Usable() {
		for depth, cert := range chain {
			ee := t.Usage == dane.UsageDANEEE && depth == 0
			ta := t.Usage == dane.UsageDANETA && depth > 0
			if (ee || ta) && dane.Match(t, cert) {
				name := map[bool]string{true: "DANE-EE", false: "DANE-TA"}[ee]
				return fmt.Sprintf("%s %d %d %d", name, t.Usage, t.Selector, t.MatchingType)
			}
		}
	}
	return "DANE-TA record"
}
