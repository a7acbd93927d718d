// Package mxtest runs scripted destination MX servers for hermetic tests
// of the outbound relay: an SMTP server (RFC 5321) on 127.0.0.1 with
// STARTTLS (RFC 3207), built on go-smtp, that can refuse, fail or stall at
// each step and records what reached it.
//
// The key assertions a relay test makes are MailCount (did MAIL FROM
// reach this host: a policy that forbids a host must keep it at 0),
// Messages (what the host stored, byte for byte, and over which TLS), and
// the reply the relay reports, which comes from Behavior.
//
// STARTTLS is run by the server's connection wrapper, not by go-smtp, so
// that the wrapper sees the plaintext inside TLS: it can remove keywords
// from the EHLO reply after STARTTLS (HideExtensions) and record every
// command line. go-smtp therefore believes every connection is plaintext;
// TLS facts come from the wrapper.
package mxtest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/caliop/relay/internal/testworld/testpki"
)

const (
	ioTimeout   = 10 * time.Second // go-smtp ReadTimeout and WriteTimeout
	stopTimeout = 5 * time.Second  // bound on each step of stopping
)

// Behavior scripts a server. The zero value is a well-behaved MX that
// offers STARTTLS with a certificate for its name and accepts everything.
type Behavior struct {
	NoSTARTTLS bool             // neither advertise nor accept STARTTLS
	Cert       *tls.Certificate // certificate to present; nil: ca.Leaf for the server name
	// GreetReply makes go-smtp's NewSession fail with it; go-smtp calls
	// NewSession at the first EHLO/HELO, so that is the reply refused.
	GreetReply *smtp.SMTPError
	MailReply  *smtp.SMTPError            // reply to MAIL FROM (MAIL is counted all the same)
	RcptReply  map[string]*smtp.SMTPError // by exact recipient address; absent: accept
	DataReply  *smtp.SMTPError            // reply after the whole body was read
	DropInData bool                       // read part of the body, then close TCP without a reply
	// HideExtensions removes these EHLO keywords (case-insensitive, e.g.
	// "8BITMIME", "PIPELINING", "CHUNKING", "SIZE", "STARTTLS") from every
	// EHLO reply, before and after STARTTLS. Hiding STARTTLS still
	// accepts the command.
	HideExtensions []string
	// Listen is the address to listen on; "" means 127.0.0.1:0. Real
	// component tests use distinct loopback addresses on one port, as
	// MXs found through real DNS.
	Listen     string
	SMTPUTF8   bool          // advertise and accept SMTPUTF8 (RFC 6531)
	REQUIRETLS bool          // advertise REQUIRETLS after STARTTLS and accept the MAIL parameter (RFC 8689)
	MaxSize    int64         // go-smtp MaxMessageBytes, advertised as SIZE; 0: no limit
	Delay      time.Duration // wait after the body before the final DATA reply
	// XCLIENT advertises "XCLIENT NAME ADDR PORT PROTO HELO" and answers
	// the command with a new 220 greeting, as Postfix does for a host in
	// smtpd_authorized_xclient_hosts (XCLIENT_README).
	XCLIENT bool
	// Discard counts messages and commands but keeps none (benchmarks).
	Discard bool
}

// Message is a message the server accepted.
type Message struct {
	From       string
	To         []string
	Data       []byte // bytes received after dot-unstuffing (or the BDAT chunks), CRLF kept
	TLS        bool
	TLSVersion uint16
	ServerName string // SNI the client sent
	MailOpts   smtp.MailOptions
}

// Server is a running destination MX. It stops when the test ends.
type Server struct {
	Addr string // 127.0.0.1:port
	Name string // the MX host name this server plays

	behavior  Behavior
	tlsConfig *tls.Config // nil: no STARTTLS
	hide      map[string]bool
	done      chan struct{} // closed when stopping

	mu          sync.Mutex
	messages    []Message
	mailCount   int
	received    int
	connections int
	commands    []string
	sources     []string // client addresses of the connections, in order
	errs        []string // go-smtp's error log
	conns       map[*conn]struct{}
}

// Start runs a server playing MX host name, with a certificate from ca
// unless b says otherwise, and stops it in t.Cleanup.
func Start(t testing.TB, name string, ca *testpki.CA, b Behavior) *Server {
	t.Helper()
	s := &Server{
		Name:     name,
		behavior: b,
		hide:     make(map[string]bool),
		done:     make(chan struct{}),
		conns:    make(map[*conn]struct{}),
	}
	for _, k := range b.HideExtensions {
		s.hide[strings.ToUpper(k)] = true
	}
	if !b.NoSTARTTLS {
		cert := b.Cert
		if cert == nil {
			if ca == nil {
				t.Fatalf("mxtest: %s: no certificate and no CA", name)
			}
			leaf := ca.Leaf(t, testpki.LeafOptions{Names: []string{name}})
			cert = &leaf
		}
		s.tlsConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}

	listen := b.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("mxtest: %s: listen: %v", name, err)
	}
	s.Addr = ln.Addr().String()

	log := &logger{t: t, prefix: "mxtest " + name + ": ", s: s}
	srv := smtp.NewServer(backend{s})
	srv.Domain = name
	srv.ReadTimeout = ioTimeout
	srv.WriteTimeout = ioTimeout
	srv.EnableSMTPUTF8 = b.SMTPUTF8
	srv.EnableREQUIRETLS = b.REQUIRETLS
	srv.MaxMessageBytes = b.MaxSize
	srv.ErrorLog = log
	// srv.TLSConfig stays nil: conn runs STARTTLS (see the package doc).

	l := &listener{Listener: ln, s: s}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(l)
	}()
	t.Cleanup(func() {
		s.stop(t, srv, l, served)
		log.off()
	})
	return s
}

// stop closes the listener, then every connection, then waits for
// go-smtp's connection goroutines, each step bounded in time.
func (s *Server) stop(t testing.TB, srv *smtp.Server, l *listener, served <-chan struct{}) {
	l.Close()
	select {
	case <-served:
	case <-time.After(stopTimeout):
		t.Errorf("mxtest: %s: accept loop did not stop", s.Name)
	}
	close(s.done)
	s.CloseConnections()
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); ctx.Err() != nil {
		t.Errorf("mxtest: %s: connections did not stop: %v", s.Name, err)
	}
}

// Messages returns a copy of the accepted messages, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	for i, m := range s.messages {
		out[i] = m.clone()
	}
	return out
}

// MailCount returns how many MAIL commands reached the server, whatever
// the reply (refused by MailReply, by SIZE, or for a missing EHLO).
func (s *Server) MailCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mailCount
}

// CloseConnections closes every open connection without a word, as a
// server does when an idle client outstays its timeout.
func (s *Server) CloseConnections() {
	s.mu.Lock()
	open := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		open = append(open, c)
	}
	s.mu.Unlock()
	for _, c := range open {
		c.Close()
	}
}

// Connections returns how many TCP connections the server accepted.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connections
}

// Errors returns what go-smtp logged as errors (a TLS alert, a broken
// connection), in order.
func (s *Server) Errors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.errs)
}

// Sources returns the client address (ip:port) of each connection
// accepted, in order.
func (s *Server) Sources() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sources)
}

// Commands returns the command lines received, without CRLF, in order,
// over all connections; message bodies and BDAT chunks are not included.
func (s *Server) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.commands)
}

// WaitMessages waits up to d for at least n accepted messages and returns
// them; it fails t if they do not come. Call it from the test goroutine.
func (s *Server) WaitMessages(t testing.TB, n int, d time.Duration) []Message {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		msgs := s.Messages()
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("mxtest: %s: %d messages after %v, want %d", s.Name, len(msgs), d, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *Server) recordCommand(line string, mail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.behavior.Discard {
		s.commands = append(s.commands, line)
	}
	if mail {
		s.mailCount++
	}
}

func (s *Server) store(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.received++
	if !s.behavior.Discard {
		s.messages = append(s.messages, m)
	}
}

// Received is the number of messages accepted, kept or not.
func (s *Server) Received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.received
}

// hidden reports whether an EHLO keyword line is to be removed.
func (s *Server) hidden(line string) bool {
	kw, _, _ := strings.Cut(line, " ")
	return s.hide[strings.ToUpper(kw)]
}

func (m Message) clone() Message {
	m.To = slices.Clone(m.To)
	m.Data = slices.Clone(m.Data)
	return m
}

// logger sends go-smtp's error log to the test log until the test ends.
type logger struct {
	mu     sync.Mutex
	t      testing.TB
	prefix string
	done   bool
	s      *Server // records each line (Errors)
}

func (l *logger) Printf(format string, v ...any) {
	l.print(fmt.Sprintf(format, v...))
}

func (l *logger) Println(v ...any) {
	l.print(strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}

func (l *logger) print(msg string) {
	l.s.mu.Lock()
	l.s.errs = append(l.s.errs, msg)
	l.s.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.t.Log(l.prefix + msg)
	}
}

func (l *logger) off() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done = true
}
