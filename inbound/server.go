// Package inbound is Caliop's port-25 listener in front of the MTA: it
// accepts mail for the operator's domains only (DESIGN.md invariant 5),
// can require STARTTLS (RFC 3207) from partner domains, and proxies each
// transaction command by command to the next hop (Postfix), as Postfix's
// own before-queue proxy does (SMTPD_PROXY_README): MAIL and each RCPT are
// passed on when received and the next hop's reply is the client's, the
// body is spooled whole, with a Received header and line endings made
// CRLF, before it goes on, and the next hop's reply to the end of DATA is
// returned verbatim. Caliop holds no queue: no 250 is ever given before
// the next hop gave it (DESIGN.md invariant 1). The real client reaches
// Postfix through XCLIENT (Postfix XCLIENT_README) when it is offered.
//
// Abuse is bounded by Limits: connections in all and per address, line
// length, error replies, an idle timeout per command and a minimum data
// rate while the body is read.
package inbound

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"

	"github.com/caliop/relay/internal/smtpfront"
	"github.com/caliop/relay/metrics"
)

// Options configure a Server. Every outside dependency is a field.
type Options struct {
	// Hostname is Caliop's own name: greeting, EHLO to the next hop,
	// Received header.
	Hostname string
	// Domains are the domains mail is accepted for, lowercase A-labels;
	// a recipient's domain (after IDNA ToASCII, lowercase) must be one.
	Domains []string
	NextHop string // host:port of the MTA behind, e.g. 127.0.0.1:10026
	// Dial opens the connection to the next hop; nil: a net.Dialer from
	// NextHopSource.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// NextHopSource is the address connections to the next hop are made
	// from: the one the next hop must list in
	// smtpd_authorized_xclient_hosts. Zero: the system's choice.
	NextHopSource netip.Addr
	// AllowNoXCLIENT lets mail through to a next hop that does not offer
	// XCLIENT with ADDR. It then sees every client as Caliop: it must not
	// relay for Caliop's address. Off, such a next hop gets no
	// transaction and MAIL is answered 451 4.3.0.
	AllowNoXCLIENT bool
	TLS            *tls.Config // STARTTLS certificate; nil: STARTTLS not offered
	// RequireTLSFrom lists sender (MAIL FROM) domains that must use TLS;
	// one with a leading dot (".partner.example") stands for its
	// subdomains, as in Postfix tables. RequireTLSAll requires it from
	// every sender.
	RequireTLSFrom []string
	RequireTLSAll  bool
	MaxMessageSize int64  // SIZE advertised and enforced; default 50 MiB
	MemoryBuffer   int64  // body bytes in memory before spilling; default 1 MiB
	SpoolDir       string // where bodies spill; "" for the system's
	// NextHopTimeout bounds the connection, the greeting and each
	// command toward the next hop: a silent next hop costs the client
	// that long before 451 4.3.0. Default 60 s, inside the patience of
	// common clients.
	NextHopTimeout time.Duration
	// DataTimeout bounds the wait for the next hop's reply to the end of
	// the body; default 10 minutes (RFC 5321 §4.5.3.2.6).
	DataTimeout time.Duration
	Limits      Limits
	Stats       *Stats // may be nil
	// Metrics counts transactions by sending domain and TLS version
	// (caliop_inbound_sessions_total); nil: none.
	Metrics *metrics.Metrics
	Log     *zap.Logger
	Now     func() time.Time
}

// Limits bound what one client, or all of them, may cost. A zero field
// takes its default, except MinDataRate, where 0 disables the check.
type Limits struct {
	MaxConnections int // all clients; default 1000
	MaxPerIP       int // per client address; default 20
	// MaxLine is the longest command or text line, CRLF included
	// (go-smtp MaxLineLength); default 2000 (RFC 5321 §4.5.3.1.6 allows
	// 1000, doubled for lenience).
	MaxLine int
	// MaxErrors is how many 4xx/5xx replies a session may get before
	// "421 4.7.0 too many errors" and disconnect; default 10. go-smtp
	// itself gives up after four unrecognised or malformed commands.
	MaxErrors int
	// CommandTimeout is the idle time allowed waiting for each command,
	// and for each read of the body; default 5 minutes (RFC 5321
	// §4.5.3.2.7).
	CommandTimeout time.Duration
	// MinDataRate is the bytes per second the body must sustain, checked
	// over each 10-second window; 0 disables.
	MinDataRate int64
}

// Defaults for zero fields.
const (
	defaultMaxMessageSize = 50 << 20
	defaultMemoryBuffer   = 1 << 20
	defaultNextHopTimeout = time.Minute
	defaultDataTimeout    = 10 * time.Minute
	defaultRateWindow     = 10 * time.Second
	// defaultKeepAlive is how often a NOOP keeps the next hop's
	// connection open while a slow client sends its body (Postfix
	// smtpd_timeout is 300 s, less under stress).
	defaultKeepAlive = 30 * time.Second
	maxRecipients    = 1000 // Postfix smtpd_recipient_limit
)

// Server is the inbound SMTP listener.
type Server struct {
	opts     Options
	smtp     *smtp.Server
	domains  map[string]bool
	partners map[string]bool
	front    *smtpfront.Front
	// window is the span over which MinDataRate is checked; keepAlive the
	// NOOP interval toward the next hop while a body is read. Fields, so
	// that tests can shorten them.
	window, keepAlive time.Duration
}

// New builds a Server; call Serve for each listener.
func New(o Options) *Server {
	o = withDefaults(o)
	s := &Server{
		opts: o, domains: set(o.Domains), partners: set(o.RequireTLSFrom),
		window: defaultRateWindow, keepAlive: defaultKeepAlive,
	}
	s.front = &smtpfront.Front{
		Hostname:  o.Hostname,
		Log:       o.Log,
		Admission: smtpfront.NewAdmission(o.Limits.MaxConnections, func(netip.Addr) int { return o.Limits.MaxPerIP }),
		Wrap:      s.wrap,
	}
	srv := smtp.NewServer(backend{s})
	srv.Domain = o.Hostname
	// TLSConfig stays nil: clientConn runs STARTTLS (see clientConn).
	srv.MaxMessageBytes = o.MaxMessageSize
	// clientConn bounds command lines and the spool body lines (both
	// Limits.MaxLine, with a reply that keeps the session); go-smtp's
	// own limit, which ends the session, only backs them up.
	srv.MaxLineLength = 64 << 10
	srv.MaxRecipients = maxRecipients
	srv.EnableSMTPUTF8 = true
	srv.ReadTimeout = o.Limits.CommandTimeout
	srv.WriteTimeout = o.Limits.CommandTimeout
	srv.ErrorLog = smtpfront.Logger{L: o.Log}
	s.smtp = srv
	return s
}

func withDefaults(o Options) Options {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Dial == nil {
		d := &net.Dialer{}
		if o.NextHopSource.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: o.NextHopSource.AsSlice()}
		}
		o.Dial = d.DialContext
	}
	orDefault(&o.MaxMessageSize, defaultMaxMessageSize)
	orDefault(&o.MemoryBuffer, defaultMemoryBuffer)
	orDefault(&o.NextHopTimeout, defaultNextHopTimeout)
	orDefault(&o.DataTimeout, defaultDataTimeout)
	l := &o.Limits
	orDefault(&l.MaxConnections, 1000)
	orDefault(&l.MaxPerIP, 20)
	orDefault(&l.MaxLine, 2000)
	orDefault(&l.MaxErrors, 10)
	orDefault(&l.CommandTimeout, 5*time.Minute)
	return o
}

// orDefault sets a zero or negative *v to d.
func orDefault[T int | int64 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// partner reports whether a sender domain must use TLS: listed itself,
// or below a listed ".domain".
func (s *Server) partner(domain string) bool {
	if domain == "" {
		return false
	}
	if s.partners[domain] {
		return true
	}
	for d := domain; ; {
		_, parent, ok := strings.Cut(d, ".")
		if !ok {
			return false
		}
		if s.partners["."+parent] {
			return true
		}
		d = parent
	}
}

func set(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// Serve accepts sessions on l until Shutdown, then returns nil.
func (s *Server) Serve(l net.Listener) error { return s.front.Serve(s.smtp, l) }

// Sessions is the number of client connections open.
func (s *Server) Sessions() int { return s.front.Sessions() }

// Shutdown stops accepting (new connections get 421), says 421 4.3.2 to
// and closes sessions between transactions, lets transactions in flight
// finish until ctx ends (each session is closed with 421 at its end), then
// closes what is left.
func (s *Server) Shutdown(ctx context.Context) error { return s.front.Drain(ctx, s.smtp) }

// backend hands go-smtp a session at the client's first EHLO or HELO.
type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	cc, ok := smtpfront.Of(c.Conn()).Rules().(*clientConn)
	if !ok {
		return nil, smtpfront.LocalError(fmt.Errorf("unexpected connection type %T", c.Conn()))
	}
	if b.s.front.Draining() {
		return nil, smtpfront.ShuttingDown(b.s.opts.Hostname)
	}
	return newSession(b.s, c, cc), nil
}

var _ smtp.Backend = backend{}
