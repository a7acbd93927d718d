package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"sort"
	"time"

	"github.com/caliop/relay/policy"
)

// Probe is what a diagnostic connection learnt about one MX address,
// without sending MAIL (for `caliop check`).
type Probe struct {
	// Extensions are the EHLO keywords, after STARTTLS when it worked.
	Extensions []string
	STARTTLS   bool                 // offered
	TLS        *tls.ConnectionState // nil in plaintext or when TLS failed
	TLSErr     error                // why STARTTLS or the handshake failed
	// WebPKIErr is why the chain is not WebPKI-valid for the MX name,
	// nil when it is (meaningless without TLS).
	WebPKIErr error
}

// Probe connects to addr as delivery would for host (SNI, TLS 1.2 or
// more), says EHLO and STARTTLS, records what it saw, and says QUIT. It
// fails only when no SMTP session could be had (connect, greeting, EHLO).
func (d *Deliverer) Probe(ctx context.Context, host, addr string) (Probe, error) {
	var p Probe
	dctx, cancel := context.WithTimeout(ctx, d.ConnectTimeout)
	defer cancel()
	conn, err := d.Dial(dctx, "tcp", addr)
	if err != nil {
		return p, &stepError{step: "connect", err: err}
	}
	defer conn.Close()
	dl := time.Now().Add(d.ConnectTimeout)
	if cdl, ok := ctx.Deadline(); ok && cdl.Before(dl) {
		dl = cdl
	}
	conn.SetDeadline(dl)
	c := newClient(conn, host, addr)
	// Level None: a missing STARTTLS is recorded, not an error.
	err = c.handshake(d.Hostname, policy.Requirement{Level: policy.None}, d.tlsConfig(host, policy.Requirement{}))
	var se *stepError
	switch {
	case err == nil:
	case errors.As(err, &se) && (se.step == "starttls" || se.step == "tls"):
		p.TLSErr = err
	default:
		return p, err
	}
	for k := range c.Ext {
		p.Extensions = append(p.Extensions, k)
	}
	sort.Strings(p.Extensions)
	p.STARTTLS = c.tls != nil || p.TLSErr != nil
	if c.tls != nil {
		p.TLS = c.tls
		p.WebPKIErr = d.verify(host, c.tls)
	}
	c.Quit()
	return p, nil
}
