package resolver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// errCNAMELoop: the CNAME chain in an answer runs in a circle.
var errCNAMELoop = errors.New("CNAME loop in answer")

// LookupMX returns the MX records of domain sorted by preference, lowest
// first (RFC 5321 §5.1), in answer order among equals. Hosts are lowercase
// without the trailing dot; a null MX (RFC 7505) has Host ".".
// NODATA gives no records and a nil error.
func (r *Resolver) LookupMX(ctx context.Context, domain string) ([]MX, Result, error) {
	rrs, res, err := r.lookup(ctx, domain, dns.TypeMX)
	if err != nil {
		return nil, res, err
	}
	var mxs []MX
	for _, rr := range rrs {
		mx := rr.(*dns.MX)
		mxs = append(mxs, MX{Host: trimDot(strings.ToLower(mx.Mx)), Pref: mx.Preference})
	}
	slices.SortStableFunc(mxs, func(a, b MX) int { return cmp.Compare(a.Pref, b.Pref) })
	return mxs, res, nil
}

// LookupTXT returns the TXT records of name, each record's strings joined
// without separator (as RFC 7208 §3.3 and RFC 6376 §3.6.2.2 read them).
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, Result, error) {
	rrs, res, err := r.lookup(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, res, err
	}
	var txts []string
	for _, rr := range rrs {
		txts = append(txts, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return txts, res, nil
}

// HasAddress reports whether host has an A or AAAA record, asking as
// little as it can: A first; AAAA only when A is NODATA, since NXDOMAIN
// says the name has no records of any type (RFC 8020 §2) and one A
// record is enough. NXDOMAIN and NODATA are (false, nil); a failed
// query is an error.
//
// Its negative answers are not kept in the cache: its caller (WKD) keeps
// its own verdict for the whole domain, and a relay that meets many
// domains would otherwise hold three dead answers for each (half of the
// cache at 10,000 domains).
func (r *Resolver) HasAddress(ctx context.Context, host string) (bool, error) {
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		rrs, _, err := r.lookupKeeping(ctx, host, qtype, keepPositive)
		switch {
		case errors.Is(err, ErrNXDomain):
			return false, nil
		case err != nil:
			return false, err
		case len(rrs) > 0:
			return true, nil
		}
	}
	return false, nil
}

// LookupIP queries A and AAAA for host in parallel and returns the IPv4
// addresses, then the IPv6 ones, each in answer order without duplicates.
//
// The answer is all or nothing: if either query fails the error is
// returned even when the other gave addresses, so that no decision (DNSSEC,
// DANE) rests on half an answer. NXDOMAIN for either wins over other
// errors. Result.Authentic holds only if both answers were authentic.
func (r *Resolver) LookupIP(ctx context.Context, host string) ([]netip.Addr, Result, error) {
	var (
		v4, v6     []dns.RR
		res4, res6 Result
		err4, err6 error
	)
	if r.cached(host, dns.TypeA) && r.cached(host, dns.TypeAAAA) {
		// Both answers at hand: no need for two goroutines.
		v4, res4, err4 = r.lookup(ctx, host, dns.TypeA)
		v6, res6, err6 = r.lookup(ctx, host, dns.TypeAAAA)
	} else {
		var wg sync.WaitGroup
		wg.Go(func() { v4, res4, err4 = r.lookup(ctx, host, dns.TypeA) })
		wg.Go(func() { v6, res6, err6 = r.lookup(ctx, host, dns.TypeAAAA) })
		wg.Wait()
	}

	res := Result{Authentic: res4.Authentic && res6.Authentic, Canonical: cmp.Or(res4.Canonical, res6.Canonical)}
	switch {
	case errors.Is(err4, ErrNXDomain):
		return nil, res, err4
	case errors.Is(err6, ErrNXDomain):
		return nil, res, err6
	case err4 != nil:
		return nil, Result{}, err4
	case err6 != nil:
		return nil, Result{}, err6
	}

	addrs := make([]netip.Addr, 0, len(v4)+len(v6))
	var seen map[netip.Addr]bool // only for long answers: most hosts have a few addresses
	if cap(addrs) > 16 {
		seen = make(map[netip.Addr]bool, cap(addrs))
	}
	add := func(a netip.Addr, ok bool) {
		switch {
		case !ok:
		case seen == nil && !slices.Contains(addrs, a):
			addrs = append(addrs, a)
		case seen != nil && !seen[a]:
			seen[a] = true
			addrs = append(addrs, a)
		}
	}
	for _, rr := range v4 {
		add(netip.AddrFromSlice(rr.(*dns.A).A.To4()))
	}
	for _, rr := range v6 {
		add(netip.AddrFromSlice(rr.(*dns.AAAA).AAAA.To16()))
	}
	return addrs, res, nil
}

// lookup runs Exchange and returns the records of qtype at the end of the
// CNAME chain. For NXDOMAIN it returns the error with the Result.
func (r *Resolver) lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, Result, error) {
	return r.lookupKeeping(ctx, name, qtype, keepAll)
}

// lookupKeeping is lookup, keeping in the cache what keep says.
func (r *Resolver) lookupKeeping(ctx context.Context, name string, qtype uint16, keep bool) ([]dns.RR, Result, error) {
	resp, res, err := r.exchangeKeeping(ctx, name, qtype, keep)
	if err != nil {
		return nil, res, err
	}
	rrs, name, err := records(resp.Answer, resp.Question[0].Name, qtype)
	if err != nil {
		return nil, Result{}, fmt.Errorf("%w: %s: %w", ErrServFail, describe(resp.Question[0].Name, qtype), err)
	}
	if !strings.EqualFold(name, resp.Question[0].Name) {
		res.Canonical = trimDot(strings.ToLower(name))
	}
	return rrs, res, nil
}

// LookupTLSA returns the TLSA records at name (RFC 6698 §2), for example
// "_25._tcp.mx.example.com", following a CNAME chain. Like Exchange, an
// NXDOMAIN answer comes with its Result so the caller can tell an
// authenticated denial; NODATA is no records and a nil error.
func (r *Resolver) LookupTLSA(ctx context.Context, name string) ([]*dns.TLSA, Result, error) {
	rrs, res, err := r.lookup(ctx, name, dns.TypeTLSA)
	if err != nil {
		return nil, res, err
	}
	out := make([]*dns.TLSA, len(rrs))
	for i, rr := range rrs {
		out[i] = rr.(*dns.TLSA)
	}
	return out, res, nil
}

// records returns the records of type qtype in answer owned by the end of
// the CNAME chain that starts at qname, and that name. RFC 1034 §3.6.2: a recursive server
// returns the chain followed by the records of the canonical name.
func records(answer []dns.RR, qname string, qtype uint16) ([]dns.RR, string, error) {
	name := qname
	if qtype != dns.TypeCNAME {
		seen := map[string]bool{strings.ToLower(name): true}
		for {
			target, ok := cnameOf(answer, name)
			if !ok {
				break
			}
			if seen[strings.ToLower(target)] {
				return nil, "", errCNAMELoop
			}
			seen[strings.ToLower(target)] = true
			name = target
		}
	}
	var out []dns.RR
	for _, rr := range answer {
		h := rr.Header()
		if h.Rrtype == qtype && h.Class == dns.ClassINET && strings.EqualFold(h.Name, name) {
			out = append(out, rr)
		}
	}
	return out, name, nil
}

// cnameOf returns the target of the CNAME owned by name in answer.
func cnameOf(answer []dns.RR, name string) (string, bool) {
	for _, rr := range answer {
		if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Hdr.Name, name) {
			return c.Target, true
		}
	}
	return "", false
}
