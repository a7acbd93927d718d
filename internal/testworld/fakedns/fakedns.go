// Package fakedns is the tests' resolver: it answers every lookup Caliop
// makes (MX, A/AAAA, TXT, TLSA) from maps, with the DNSSEC authentic bit
// and the CNAME target a real answer carries, and per-name errors. It
// implements every resolver interface of the tree (policy, dane, mtasts,
// tlsrpt, delivery). For tests that need the wire, see dnstest.
package fakedns

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/miekg/dns"

	"github.com/caliop/relay/resolver"
)

// Resolver answers from its maps, keyed by lowercase names without the
// trailing dot. Set the maps before the first lookup, or under Lock.
//
// A name with no record of any type is NXDOMAIN; a name with records of
// another type only is NODATA (no records, no error), as in the DNS.
type Resolver struct {
	mu   sync.Mutex
	MX   map[string][]resolver.MX
	IP   map[string][]netip.Addr
	TXT  map[string][]string
	TLSA map[string][]*dns.TLSA
	// Canonical is the end of a name's CNAME chain (Result.Canonical).
	Canonical map[string]string
	// Errs fails lookups: the key "name" fails every type, "TYPE name"
	// (TYPE one of MX, IP, TXT, TLSA) that type only.
	Errs map[string]error
	// err, when set (SetErr), fails every lookup.
	err error
	// Secure marks every answer DNSSEC-authentic, except for the names
	// in Insecure.
	Secure   bool
	Insecure map[string]bool
	// Unknown, when set, answers lookups of a name with no record of
	// any type instead of NXDOMAIN (say, SERVFAIL for what a test did
	// not script).
	Unknown func(qtype, name string) error
	// Hook, when set, runs in every lookup once it is counted (Asked),
	// outside the lock: to hold lookups.
	Hook func(ctx context.Context, qtype, name string)

	asked []string
}

// New returns a Resolver with empty maps.
func New() *Resolver {
	return &Resolver{
		MX: map[string][]resolver.MX{}, IP: map[string][]netip.Addr{}, TXT: map[string][]string{},
		TLSA: map[string][]*dns.TLSA{}, Canonical: map[string]string{}, Errs: map[string]error{}, Insecure: map[string]bool{},
	}
}

// Lock and Unlock guard the maps against lookups in flight.
func (r *Resolver) Lock()   { r.mu.Lock() }
func (r *Resolver) Unlock() { r.mu.Unlock() }

// SetErr makes every lookup fail with err from now on; nil ends it.
func (r *Resolver) SetErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

// Asked lists the lookups made, "TYPE name", in order.
func (r *Resolver) Asked() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.asked...)
}

// Count is how many lookups of qtype for name were made.
func (r *Resolver) Count(qtype, name string) int {
	n := 0
	for _, q := range r.Asked() {
		if q == qtype+" "+name {
			n++
		}
	}
	return n
}

// lookup notes the query and returns the error and result it gets, and
// whether the name has a record of any type.
func (r *Resolver) lookup(ctx context.Context, qtype, name string) (string, resolver.Result, error) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	r.mu.Lock()
	r.asked = append(r.asked, qtype+" "+name)
	r.mu.Unlock()
	if r.Hook != nil {
		r.Hook(ctx, qtype, name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	res := resolver.Result{Authentic: r.Secure && !r.Insecure[name], Canonical: r.Canonical[name]}
	if r.err != nil {
		return name, resolver.Result{}, r.err
	}
	for _, key := range []string{qtype + " " + name, name} {
		if err := r.Errs[key]; err != nil {
			return name, res, err
		}
	}
	if !r.exists(name) {
		if r.Unknown != nil {
			return name, resolver.Result{}, r.Unknown(qtype, name)
		}
		return name, res, fmt.Errorf("%w: %s %s", resolver.ErrNXDomain, qtype, name)
	}
	return name, res, nil
}

func (r *Resolver) exists(name string) bool {
	_, mx := r.MX[name]
	_, ip := r.IP[name]
	_, txt := r.TXT[name]
	_, tlsa := r.TLSA[name]
	return mx || ip || txt || tlsa
}

// LookupMX answers from MX.
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]resolver.MX, resolver.Result, error) {
	name, res, err := r.lookup(ctx, "MX", name)
	if err != nil {
		return nil, res, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.MX[name], res, nil
}

// LookupIP answers from IP.
func (r *Resolver) LookupIP(ctx context.Context, name string) ([]netip.Addr, resolver.Result, error) {
	name, res, err := r.lookup(ctx, "IP", name)
	if err != nil {
		return nil, res, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.IP[name], res, nil
}

// LookupTXT answers from TXT.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, resolver.Result, error) {
	name, res, err := r.lookup(ctx, "TXT", name)
	if err != nil {
		return nil, res, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.TXT[name], res, nil
}

// LookupTLSA answers from TLSA.
func (r *Resolver) LookupTLSA(ctx context.Context, name string) ([]*dns.TLSA, resolver.Result, error) {
	name, res, err := r.lookup(ctx, "TLSA", name)
	if err != nil {
		return nil, res, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.TLSA[name], res, nil
}

// TLSARecord is the TLSA record at name with the presentation form rdata
// ("3 1 1 abcd..."); it panics on a bad one, as a test fixture should.
func TLSARecord(name, rdata string) *dns.TLSA {
	rr, err := dns.NewRR(dns.Fqdn(name) + " 300 IN TLSA " + rdata)
	if err != nil {
		panic(err)
	}
	return rr.(*dns.TLSA)
}
