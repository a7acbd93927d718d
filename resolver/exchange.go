package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/miekg/dns"
)

// ednsUDPSize is the advertised EDNS0 UDP payload size (DNS Flag Day 2020).
const ednsUDPSize = 1232

// Exchange sends one query for name and qtype and returns the raw response,
// for packages that need record types without a Lookup method (TLSA, ...).
//
// A NOERROR response, with or without records, is returned with a nil
// error. An NXDOMAIN response is returned together with an error wrapping
// ErrNXDomain, so a caller can still check Result.Authentic (an
// authenticated denial). Otherwise the message is nil and the error wraps
// ErrServFail or ErrTimeout. The CNAME chain, if any, is left in the answer.
// The message is the caller's own to modify.
func (r *Resolver) Exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, Result, error) {
	resp, res, err := r.exchange(ctx, name, qtype)
	if resp != nil {
		resp = resp.Copy()
	}
	return resp, res, err
}

// exchange is Exchange through the cache; the message it returns may be
// shared and must not be modified.
func (r *Resolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, Result, error) {
	return r.exchangeKeeping(ctx, name, qtype, keepAll)
}

// What exchangeKeeping keeps in the cache.
const (
	keepAll      = true  // every answer with a TTL
	keepPositive = false // answers with records of the type only
)

// exchangeKeeping is exchange, keeping in the cache what keep says.
func (r *Resolver) exchangeKeeping(ctx context.Context, name string, qtype uint16, keep bool) (*dns.Msg, Result, error) {
	k := cacheKey{cacheName(name), qtype}
	if r.cache != nil {
		// Only valid names reach the cache: a hit needs no check.
		if e, ok := r.cache.get(k); ok {
			return e.msg, e.res, e.err
		}
	}
	fqdn, err := canonical(name)
	if err != nil {
		return nil, Result{}, err
	}
	if r.cache == nil {
		return r.ask(ctx, fqdn, qtype)
	}
	resp, res, err := r.ask(ctx, fqdn, qtype)
	if resp != nil && (keep == keepAll || err == nil && hasData(resp)) {
		r.cache.put(k, cacheEntry{msg: resp, res: res, err: err})
	}
	return resp, res, err
}

// ask sends the query to each server in turn until one gives an answer.
func (r *Resolver) ask(ctx context.Context, fqdn string, qtype uint16) (*dns.Msg, Result, error) {
	desc := describe(fqdn, qtype)
	var causes []error
	allTimeouts := true
	for _, s := range r.servers {
		if err := ctx.Err(); err != nil {
			return nil, Result{}, fmt.Errorf("%w: %s: %w", ErrTimeout, desc, err)
		}
		resp, err := r.query(ctx, s, fqdn, qtype)
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return nil, Result{}, fmt.Errorf("%w: %s: %w", ErrTimeout, desc, cerr)
			}
			if isTimeout(err) {
				err = fmt.Errorf("no answer from %s within %v: %w", s.addr, r.timeout, err)
			} else {
				allTimeouts = false
				err = fmt.Errorf("%s: %w", s.addr, err)
			}
			causes = append(causes, err)
			continue
		}
		res := Result{Authentic: s.authentic(resp)}
		switch resp.Rcode {
		case dns.RcodeSuccess:
			return resp, res, nil
		case dns.RcodeNameError:
			return resp, res, fmt.Errorf("%w: %s (from %s)", ErrNXDomain, desc, s.addr)
		}
		// SERVFAIL (also a validating resolver's verdict on bogus data,
		// RFC 4035 §5.5), REFUSED, anything else: ask the next server.
		allTimeouts = false
		causes = append(causes, fmt.Errorf("%s from %s", rcodeString(resp.Rcode), s.addr))
	}
	class := ErrServFail
	if allTimeouts {
		class = ErrTimeout
	}
	return nil, Result{}, fmt.Errorf("%w: %s: %w", class, desc, serverErrors(causes))
}

// authentic reports whether resp is vouched for by DNSSEC: AD set
// (RFC 4035 §3.2.3) by a server whose AD bit we trust (RFC 6840 §5.8).
func (s server) authentic(resp *dns.Msg) bool {
	return resp.AuthenticatedData && s.trustAD
}

// query asks one server, over UDP and then over TCP if the UDP answer was
// truncated (RFC 1035 §4.2.1, RFC 7766 §5).
func (r *Resolver) query(ctx context.Context, s server, fqdn string, qtype uint16) (*dns.Msg, error) {
	q := newQuery(fqdn, qtype)
	resp, err := r.roundTrip(ctx, "udp", s, q)
	if resp != nil && resp.Truncated && ctx.Err() == nil {
		q.Id = dns.Id()
		resp, err = r.roundTrip(ctx, "tcp", s, q)
		if err == nil && resp.Truncated {
			return nil, errors.New("truncated answer over TCP")
		}
	}
	if err != nil {
		return nil, err
	}
	if !answers(resp, q) {
		return nil, errors.New("response does not match the question")
	}
	return resp, nil
}

// newQuery builds a recursive query with EDNS0 and the DO bit (RFC 3225),
// and AD set to ask for the validation verdict (RFC 6840 §5.7).
func newQuery(fqdn string, qtype uint16) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(fqdn, qtype)
	q.AuthenticatedData = true
	q.SetEdns0(ednsUDPSize, true)
	return q
}

// roundTrip sends q over network to s and waits for the reply for at most
// the per-attempt timeout, or until ctx ends.
func (r *Resolver) roundTrip(ctx context.Context, network string, s server, q *dns.Msg) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	c := &dns.Client{Net: network, Timeout: r.timeout}
	sockets := s.udp
	if network != "udp" {
		sockets = nil
	}
	conn, err := sockets.take(ctx, c, s.addr)
	if err != nil {
		return nil, err
	}
	// miekg/dns obeys only the context's deadline; closing the connection
	// also makes it obey cancellation.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	resp, _, err := c.ExchangeWithConnContext(ctx, q, conn)
	sockets.give(conn, stop() && err == nil)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil && resp != nil && resp.Truncated {
		// A truncated UDP message may not parse to the end; the header is
		// enough to know TCP is needed.
		return resp, nil
	}
	return resp, err
}

// answers reports whether resp is a response to q.
func answers(resp, q *dns.Msg) bool {
	return resp.Response && len(resp.Question) == 1 &&
		resp.Question[0].Qtype == q.Question[0].Qtype &&
		resp.Question[0].Qclass == q.Question[0].Qclass &&
		strings.EqualFold(resp.Question[0].Name, q.Question[0].Name)
}

// isTimeout reports whether err means the server did not answer in time.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// canonical returns name lowercased and fully qualified.
func canonical(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", errors.New("resolver: empty name")
	}
	fqdn := dns.Fqdn(strings.ToLower(name))
	if _, ok := dns.IsDomainName(fqdn); !ok {
		return "", fmt.Errorf("resolver: invalid name %q", name)
	}
	return fqdn, nil
}

// cacheName is name as the cache knows it: trimmed, lowercase, without
// its trailing dot (the root stays "."). It allocates only for a name
// with capitals, where canonical always does.
func cacheName(name string) string {
	name = strings.ToLower(strings.TrimSpace(name))
	if len(name) > 1 {
		name = strings.TrimSuffix(name, ".")
	}
	return name
}

// describe names a query in errors: "MX example.com".
func describe(fqdn string, qtype uint16) string {
	return dns.Type(qtype).String() + " " + trimDot(fqdn)
}

// trimDot removes the trailing dot, except from the root ".".
func trimDot(name string) string {
	if name == "." {
		return name
	}
	return strings.TrimSuffix(name, ".")
}

func rcodeString(rcode int) string {
	if s, ok := dns.RcodeToString[rcode]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", rcode)
}

// serverErrors is the list of per-server failures behind an ErrServFail or
// ErrTimeout, printed on one line.
type serverErrors []error

func (e serverErrors) Error() string {
	s := make([]string, len(e))
	for i, err := range e {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

func (e serverErrors) Unwrap() []error { return e }

// Ping asks the configured servers for the root's NS records, past the
// cache: an error means no server answers (readiness).
func (r *Resolver) Ping(ctx context.Context) error {
	_, _, err := r.ask(ctx, ".", dns.TypeNS)
	return err
}
