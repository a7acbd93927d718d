package delivery

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/caliop/relay/dane"
	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/policy"
	"github.com/caliop/relay/tlsrpt"
)

// defaultGreetingTimeout is Deliverer.GreetingTimeout when zero: with the
// default 5-minute budget and 30 s connect timeout, at least three
// addresses that accept and never greet are tried in turn.
const defaultGreetingTimeout = 30 * time.Second

// proof is what a connection showed about itself.
type proof struct {
	level   policy.Level // Verify when the certificate is WebPKI-valid for the MX name
	dane    bool         // the certificate matched the MX host's TLSA records
	version uint16       // TLS version, 0 in plaintext
	cipher  uint16
}

// String names what the connection proved: "dane", "verify",
// "encrypt" or "none".
func (p proof) String() string {
	if p.dane {
		return "dane"
	}
	return p.level.String()
}

// stepError is a failure to bring a connection to the point where MAIL may
// be sent. It says which step failed and, for TLS, the RFC 8460 type.
type stepError struct {
	step   string            // "connect", "greeting", "ehlo", "starttls", "tls", "certificate"
	reply  *smtp.SMTPError   // the server's reply, when it gave one
	result tlsrpt.ResultType // set for TLS and certificate failures
	err    error
}

func (e *stepError) Error() string {
	if e.reply != nil {
		return fmt.Sprintf("%s: %d %d.%d.%d %s", e.step, e.reply.Code, e.reply.EnhancedCode[0], e.reply.EnhancedCode[1], e.reply.EnhancedCode[2], e.reply.Message)
	}
	return fmt.Sprintf("%s: %v", e.step, e.err)
}

func (e *stepError) Unwrap() error { return e.err }

// policyFailure reports whether the step failed a TLS requirement of the
// plan (as opposed to the network or the server refusing us).
func (e *stepError) policyFailure() bool { return e.result != "" }

// connect dials addr and brings the session to where MAIL may be sent under
// req: greeting, EHLO, STARTTLS, certificate checks. It returns an error,
// and sends no MAIL, unless every requirement holds (DESIGN.md invariant 3).
func (d *Deliverer) connect(ctx context.Context, host, addr string, req policy.Requirement) (*client, error) {
	dctx, cancel := context.WithTimeout(ctx, d.ConnectTimeout)
	defer cancel()
	conn, err := d.Dial(dctx, "tcp", addr)
	if err != nil {
		return nil, &stepError{step: "connect", err: err}
	}
	// The greeting, EHLO and STARTTLS get their own share of the budget;
	// what follows, the rest of it.
	budget, bounded := ctx.Deadline()
	greet := time.Now().Add(cmp.Or(d.GreetingTimeout, defaultGreetingTimeout))
	if bounded && budget.Before(greet) {
		greet = budget
	}
	conn.SetDeadline(greet)
	c := newClient(conn, host, addr)
	if err := c.handshake(d.Hostname, req, d.tlsConfig(host, req)); err != nil {
		conn.Close()
		return nil, err
	}
	if bounded {
		c.Net.SetDeadline(budget)
	} else {
		c.Net.SetDeadline(time.Time{})
	}
	if c.tls == nil {
		return c, nil
	}
	verr := d.verify(host, c.tls)
	c.verifyErr = verr
	if verr == nil {
		c.proved.level = policy.Verify
	}
	if req.DANE.Usable() {
		// RFC 7672 §3: the TLSA records, not the WebPKI, authenticate.
		if err := dane.Verify(req.DANE.Set, c.tls.PeerCertificates, req.DANE.Names, d.now()); err != nil {
			d.Metrics.DANE(metrics.DANEMismatch)
			c.Quit()
			return nil, &stepError{step: "dane", result: tlsrpt.Classify(err), err: err}
		}
		d.Metrics.DANE(metrics.DANEMatch)
		c.proved.dane = true
		return c, nil
	}
	if c.proved.level < req.Level {
		c.Quit()
		return nil, &stepError{step: "certificate", result: tlsrpt.Classify(verr), err: verr}
	}
	return c, nil
}

// handshake reads the greeting, says EHLO and, unless req allows plaintext
// and the server offers no STARTTLS, upgrades to TLS and says EHLO again.
func (c *client) handshake(name string, req policy.Requirement, cfg *tls.Config) error {
	r, err := c.Reply()
	if err != nil {
		return &stepError{step: "greeting", err: err}
	}
	if r.Code != 220 {
		return &stepError{step: "greeting", reply: r}
	}
	if r, err := c.Ehlo(name); err != nil || r.Code != 250 {
		return &stepError{step: "ehlo", reply: r, err: err}
	}
	if !c.Has("STARTTLS") {
		if req.Level == policy.None {
			return nil
		}
		return &stepError{step: "starttls", result: tlsrpt.StartTLSNotSupported, err: tlsrpt.ErrNoSTARTTLS}
	}
	if r, err := c.Cmd("STARTTLS"); err != nil || r.Code != 220 {
		if err == nil {
			err = tlsrpt.ErrNoSTARTTLS
		}
		return &stepError{step: "starttls", reply: r, result: tlsrpt.StartTLSNotSupported, err: err}
	}
	st, err := c.StartTLS(cfg)
	if err != nil {
		return &stepError{step: "tls", result: tlsrpt.ValidationFailure, err: err}
	}
	c.tls = &st
	c.proved = proof{level: policy.Encrypt, version: st.Version, cipher: st.CipherSuite}
	// RFC 3207 §4.2: forget what was learnt before TLS and ask again.
	if r, err := c.Ehlo(name); err != nil || r.Code != 250 {
		return &stepError{step: "ehlo", reply: r, err: err}
	}
	return nil
}

// tlsConfig is the client configuration for one MX: SNI is the MX name
// (RFC 7672 §8.1 and RFC 8461 §4.2), TLS 1.2 or more. Certificates are
// checked after the handshake by check, so that the result can be
// classified and the proof recorded.
func (d *Deliverer) tlsConfig(host string, req policy.Requirement) *tls.Config {
	min := req.MinTLS
	if min < tls.VersionTLS12 {
		min = tls.VersionTLS12
	}
	if req.DANE != nil {
		// RFC 7672 §8.1: under DANE, SNI is the TLSA base domain (the
		// end of a secure CNAME chain from the MX host name).
		host = req.DANE.Set.Name
	}
	return &tls.Config{
		ServerName:         host,
		MinVersion:         min,
		InsecureSkipVerify: true, // verified in check, never skipped
	}
}

// verify checks the presented chain against the WebPKI roots for host.
func (d *Deliverer) verify(host string, st *tls.ConnectionState) error {
	if len(st.PeerCertificates) == 0 {
		return errors.New("no certificate presented")
	}
	inter := x509.NewCertPool()
	for _, c := range st.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := st.PeerCertificates[0].Verify(x509.VerifyOptions{
		DNSName:       host,
		Roots:         d.Roots,
		Intermediates: inter,
		CurrentTime:   d.now(),
	})
	return err
}

func (d *Deliverer) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}
