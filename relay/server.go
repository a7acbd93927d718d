// Package relay is Caliop's outbound front: SMTP and LMTP listeners
// (go-smtp) that take mail from the local MTA, check that the client may
// relay, spool and normalise the body, and hand each destination domain to
// the delivery engine. Replies upstream are the destination's own
// (DESIGN.md invariant 1).
package relay

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"

	"github.com/caliop/relay/address"
	"github.com/caliop/relay/delivery"
	"github.com/caliop/relay/internal/smtpfront"
	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/policy"
	"github.com/caliop/relay/tlsrpt"
)

// Planner decides how a destination domain is delivered.
type Planner interface {
	Plan(ctx context.Context, domain string) (policy.Plan, error)
}

// RelaxedPlanner is a Planner that can plan without the destination's
// published policies, for a message marked "TLS-Required: No" (RFC 8689
// §5). *policy.Engine is one.
type RelaxedPlanner interface {
	PlanWithoutPolicies(ctx context.Context, domain string) (policy.Plan, error)
}

// Replanner is a Planner that can plan again after a delivery failed on
// every MX of a plan, when the destination's published policy changed
// (policy.Engine.Replan). *policy.Engine is one.
type Replanner interface {
	Replan(ctx context.Context, plan policy.Plan) (policy.Plan, bool)
}

// Deliverer sends mail downstream: whole (LMTP) or step by step (SMTP).
type Deliverer interface {
	Deliver(ctx context.Context, req delivery.Request) delivery.Result
	Open(ctx context.Context, plan policy.Plan, env delivery.Envelope, to address.Address) (*delivery.Txn, *smtp.SMTPError)
}

// Options configure a Server. Every outside dependency is a field.
type Options struct {
	Hostname string
	// Trusted networks may relay without authentication.
	Trusted []netip.Prefix
	// Users may relay after SMTP AUTH over TLS: name → bcrypt hash.
	Users map[string]string
	// AuthLimits bound password guessing; ConnLimits the connections
	// the listeners take.
	AuthLimits AuthLimits
	ConnLimits ConnLimits
	// TLS enables STARTTLS on the listeners (and so AUTH); nil disables it.
	TLS            *tls.Config
	MaxMessageSize int64
	// MaxLine is the longest body line, CRLF included; longer gets
	// 554 5.6.0. Default 2000 (RFC 5321 §4.5.3.1.6 says 1000; MTAs
	// send a little more).
	MaxLine         int
	MemoryBuffer    int64  // body bytes kept in memory before spilling
	SpoolDir        string // where bodies spill; "" for the system's
	DeliveryTimeout time.Duration
	Parallel        int // destination domains delivered at once per LMTP transaction
	// HonourTLSRequiredNo lets a "TLS-Required: No" header (RFC 8689 §5)
	// set DANE and MTA-STS aside for its message in LMTP mode (TLS is
	// still required). Off, the header is ignored.
	HonourTLSRequiredNo bool
	// PGP encrypts to recipients' WKD keys; nil: never.
	PGP       Encrypter
	Planner   Planner
	Deliverer Deliverer
	// Metrics counts PGP decisions and the recipients refused before
	// delivery (no plan, PGP required); nil: none. The Deliverer counts
	// the rest.
	Metrics *metrics.Metrics
	// Report receives the TLS-RPT outcomes of each plan's decision
	// (policy.Plan.Outcomes); nil: none. Sessions are the delivery's.
	Report tlsrpt.Recorder
	Log    *zap.Logger
	Now    func() time.Time
}

const (
	defaultMaxLine = 2000
	// maxCommandLine bounds what go-smtp reads as one line: a command,
	// or a body line whose message is refused anyway.
	maxCommandLine = 64 << 10
)

// Server runs the outbound SMTP and LMTP listeners.
type Server struct {
	opts  Options
	smtp  *smtp.Server
	lmtp  *smtp.Server
	front *smtpfront.Front

	authFailures *failures
	routes       *workers // LMTP routes
	dummyOnce    sync.Once
	dummy        []byte
}

// New builds a Server; call Serve for each listener.
func New(o Options) *Server {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Parallel < 1 {
		o.Parallel = 1
	}
	orDefault(&o.MaxLine, defaultMaxLine)
	o.AuthLimits = o.AuthLimits.withDefaults()
	o.ConnLimits = o.ConnLimits.withDefaults()
	s := &Server{opts: o, authFailures: newFailures(o.AuthLimits, o.Now), routes: newWorkers()}
	s.front = &smtpfront.Front{
		Hostname: o.Hostname,
		Log:      o.Log,
		Admission: smtpfront.NewAdmission(o.ConnLimits.MaxConnections, func(a netip.Addr) int {
			if s.trusted(a) {
				return o.ConnLimits.MaxPerTrustedIP
			}
			return o.ConnLimits.MaxPerIP
		}),
		Wrap: s.wrap,
	}
	if len(o.Users) > 0 {
		// Now, so that the first unknown user is not slower than the
		// others (dummyHash).
		s.dummyHash()
	}
	s.smtp, s.lmtp = s.newSMTP(false), s.newSMTP(true)
	return s
}

func (s *Server) newSMTP(lmtp bool) *smtp.Server {
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return s.newSession(c, lmtp)
	}))
	srv.LMTP = lmtp
	srv.Domain = s.opts.Hostname
	srv.TLSConfig = s.opts.TLS
	srv.MaxMessageBytes = s.opts.MaxMessageSize
	srv.MaxRecipients = 1000
	// go-smtp's own limit breaks the session (500, close) and applies
	// to its read-ahead of BDAT chunks: set well above MaxLine, which
	// the spool enforces with a clean 554.
	srv.MaxLineLength = maxCommandLine
	srv.EnableSMTPUTF8 = true
	// RFC 8689: advertised (by go-smtp) only once the session is TLS.
	srv.EnableREQUIRETLS = true
	srv.ReadTimeout = 5 * time.Minute // RFC 5321 §4.5.3.2.7
	srv.WriteTimeout = time.Minute
	srv.ErrorLog = smtpfront.Logger{L: s.opts.Log}
	return srv
}

// ServeSMTP accepts SMTP sessions on l until Shutdown.
func (s *Server) ServeSMTP(l net.Listener) error { return s.serve(s.smtp, l) }

// ServeLMTP accepts LMTP sessions on l until Shutdown.
func (s *Server) ServeLMTP(l net.Listener) error { return s.serve(s.lmtp, l) }

func (s *Server) serve(srv *smtp.Server, l net.Listener) error { return s.front.Serve(srv, l) }

// wrap is the smtpfront.Conn of an admitted connection: XFORWARD for
// trusted clients; STARTTLS and everything after it are go-smtp's. Its
// buffer holds go-smtp's longest line, so that a line the Conn cannot
// see whole is one go-smtp refuses and closes the session on: the two
// never disagree about where a command (or a BDAT chunk) starts.
func (s *Server) wrap(raw net.Conn, release func()) *smtpfront.Conn {
	rules := &xforwardRules{offer: s.trusted(smtpfront.RemoteAddr(raw))}
	return smtpfront.NewConn(raw, smtpfront.ConnOptions{Rules: rules, BufSize: maxCommandLine}, release)
}

// Sessions is the number of client connections open.
func (s *Server) Sessions() int { return s.front.Sessions() }

// Shutdown stops taking sessions (new ones get 421), closes idle sessions
// with 421, lets transactions in flight finish until ctx ends, then closes
// what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.front.Drain(ctx, s.smtp, s.lmtp)
}

// dummyHash is the bcrypt hash an unknown user's password is checked
// against, made at the first use.
func (s *Server) dummyHash() []byte {
	s.dummyOnce.Do(func() { s.dummy = dummyHash(s.opts.Users) })
	return s.dummy
}

// trusted reports whether a is in the trusted networks.
func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.opts.Trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
