// Package resolver performs every DNS lookup Caliop makes.
//
// Queries go to the configured servers with github.com/miekg/dns, never
// through the system resolver, so that the relay sees the raw answer: its
// rcode (RFC 1035 §4.1.1, RFC 2308 for NXDOMAIN and NODATA) and whether
// DNSSEC vouched for it. Each query carries EDNS0 (RFC 6891) with the DO bit
// (RFC 3225) so a validating resolver reports its verdict in the AD bit
// (RFC 4035 §3.2.3). A stub cannot check that verdict itself, so the AD bit
// is trusted only from servers on loopback, or from any server when
// Config.TrustAD says the path to it is secure (RFC 6840 §5.8).
//
// Errors wrap one of ErrNXDomain (permanent), ErrServFail or ErrTimeout
// (temporary) and name the query, e.g. "dns server failure: MX example.com:
// SERVFAIL from 127.0.0.1:53".
package resolver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Errors returned by lookups, wrapped with the query and the cause.
var (
	// ErrNXDomain: the name does not exist (NXDOMAIN, RFC 2308 §2.1);
	// permanent, the caller may bounce.
	ErrNXDomain = errors.New("dns name does not exist")
	// ErrServFail: the server failed (SERVFAIL, REFUSED, any other rcode,
	// a DNSSEC-bogus answer, a network error); temporary, retry later.
	ErrServFail = errors.New("dns server failure")
	// ErrTimeout: no server answered in time, or the context ended;
	// temporary, retry later.
	ErrTimeout = errors.New("dns timeout")
)

// DefaultTimeout is the per-attempt, per-server timeout when Config.Timeout
// is zero.
const DefaultTimeout = 5 * time.Second

// Result describes how an answer was obtained.
type Result struct {
	Authentic bool // every answer involved had the AD bit from a trusted server
	// Canonical is the name at the end of the CNAME chain the answer
	// followed (lowercase, no trailing dot), "" when there was none.
	Canonical string
}

// MX is one mail exchanger (RFC 5321 §5.1).
type MX struct {
	Host string // lowercase, no trailing dot; "." for a null MX (RFC 7505)
	Pref uint16
}

// Config configures a Resolver.
type Config struct {
	Servers []string      // "host:port" with an IP host; tried in order
	TrustAD bool          // trust the AD bit from non-loopback servers too
	Timeout time.Duration // per attempt per server; DefaultTimeout if zero
	// CacheSize is how many answers are kept for their TTL; 0 keeps none.
	CacheSize int
	Now       func() time.Time // the cache's clock; time.Now if nil
}

// Resolver sends queries to the configured servers. It is safe for
// concurrent use.
type Resolver struct {
	servers []server
	timeout time.Duration
	cache   *cache // nil: every lookup asks a server
}

// server is one configured upstream.
type server struct {
	addr    string // normalised "ip:port" / "[ip]:port"
	trustAD bool
	udp     *udpSockets // kept sockets; nil off loopback (a socket per query)
}

// New checks cfg and returns a Resolver. It fails if there is no server or
// a server is not host:port with an IP address as host.
func New(cfg Config) (*Resolver, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("resolver: no servers configured")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("resolver: negative timeout %v", cfg.Timeout)
	}
	if cfg.CacheSize < 0 {
		return nil, fmt.Errorf("resolver: negative cache size %d", cfg.CacheSize)
	}
	r := &Resolver{timeout: cfg.Timeout}
	if cfg.CacheSize > 0 {
		r.cache = newCache(cfg.CacheSize, cfg.Now)
	}
	if r.timeout == 0 {
		r.timeout = DefaultTimeout
	}
	for _, s := range cfg.Servers {
		ap, err := parseServer(s)
		if err != nil {
			return nil, err
		}
		s := server{addr: ap.String(), trustAD: trustAD(ap.Addr(), cfg.TrustAD)}
		if ap.Addr().Unmap().IsLoopback() {
			s.udp = &udpSockets{}
		}
		r.servers = append(r.servers, s)
	}
	return r, nil
}

// parseServer parses "ip:port" or "[ipv6]:port".
func parseServer(s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("resolver: server %q is not host:port: %w", s, err)
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("resolver: server %q: host %q is not an IP address", s, host)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolver: server %q: invalid port %q", s, port)
	}
	return netip.AddrPortFrom(addr, uint16(p)), nil
}

// trustAD reports whether the AD bit from a server at addr is believed.
// RFC 6840 §5.8: a stub may trust AD only over a secure path to the
// validating resolver; loopback (127.0.0.0/8, ::1) is one, anything else
// needs the operator's word (TrustAD).
func trustAD(addr netip.Addr, trustAll bool) bool {
	return trustAll || addr.Unmap().IsLoopback()
}
