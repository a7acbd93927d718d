package relay

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/caliop/relay/internal/testworld/mxtest"
	"github.com/caliop/relay/internal/testworld/testpki"
)

// requireTLSSend sends one message with REQUIRETLS over a STARTTLS
// session to the relay's SMTP listener and returns the RCPT error (nil for
// 250) and, if the recipient was accepted, the DATA error.
func requireTLSSend(t *testing.T, w *world, rcpt string) (rcptErr, dataErr error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", w.smtp, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c, err := smtpClientTLS(conn, &tls.Config{RootCAs: w.ca.Pool, ServerName: "relay.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("sender@origin.test", &smtp.MailOptions{RequireTLS: true}); err != nil {
		t.Fatalf("MAIL with REQUIRETLS over TLS: %v", err)
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err, nil
	}
	wc, err := c.Data()
	if err != nil {
		return nil, err
	}
	wc.Write([]byte(simpleBody))
	return nil, wc.Close()
}

func enhanced(err error) string {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		return ""
	}
	return se.Error()
}

// TestREQUIRETLS is RFC 8689 §4.2.1 at the relay: only an MX
// authenticated by DANE (with secure MX records) or MTA-STS, and offering
// REQUIRETLS, may take the message; otherwise 550 5.7.30 before MAIL.
func TestREQUIRETLS(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{dane: true, tls: true})
	daneLeaf := w.ca.Leaf(t, testpki.LeafOptions{Names: []string{"mx.dane.test"}, SelfSigned: true})
	dane := w.mx("mx.dane.test", mxtest.Behavior{Cert: &daneLeaf, REQUIRETLS: true})
	old := w.mx("mx.old.test", mxtest.Behavior{Cert: &daneLeaf})
	plain := w.mx("mx.plain.test", mxtest.Behavior{REQUIRETLS: true})
	w.domain("dane.test", "mx.dane.test")
	w.domain("old.test", "mx.old.test")
	w.domain("plain.test", "mx.plain.test")
	w.dns.Add(tlsa("mx.dane.test", 3, 1, daneLeaf.Leaf), tlsa("mx.old.test", 3, 1, daneLeaf.Leaf))

	if rerr, derr := requireTLSSend(t, w, "a@dane.test"); rerr != nil || derr != nil {
		t.Errorf("DANE MX offering REQUIRETLS: RCPT %v, DATA %v; want delivered", rerr, derr)
	}
	if m := dane.Messages(); len(m) != 1 || !m[0].MailOpts.RequireTLS {
		t.Errorf("DANE MX stored %d messages; REQUIRETLS passed on: %v", len(m), len(m) == 1 && m[0].MailOpts.RequireTLS)
	}

	rerr, _ := requireTLSSend(t, w, "a@old.test")
	if s := enhanced(rerr); !strings.Contains(s, "550") || !strings.Contains(s, "5.7.30") {
		t.Errorf("DANE MX without REQUIRETLS: RCPT %v, want 550 5.7.30", rerr)
	}
	if n := old.MailCount(); n != 0 {
		t.Errorf("MX without REQUIRETLS saw MAIL %d times", n)
	}

	rerr, _ = requireTLSSend(t, w, "a@plain.test")
	if s := enhanced(rerr); !strings.Contains(s, "550") || !strings.Contains(s, "5.7.30") || !strings.Contains(s, "not authenticated") {
		t.Errorf("MX under the default policy: RCPT %v, want 550 5.7.30 (not authenticated)", rerr)
	}
	if n := plain.Connections(); n != 0 {
		t.Errorf("unauthenticated MX got %d connections", n)
	}
}

// TestREQUIRETLSNeedsTLS: REQUIRETLS on a session without TLS is refused
// at MAIL.
func TestREQUIRETLSNeedsTLS(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{tls: true})
	c := dialRaw(t, w.smtp)
	c.must("EHLO mta.test", "250")
	c.must("MAIL FROM:<a@origin.test> REQUIRETLS", "530 5.7.10")
}

// TestTLSRequiredNo: "TLS-Required: No" sets DANE aside only when the
// operator allows it (RFC 8689 §5); TLS is still used.
func TestTLSRequiredNo(t *testing.T) {
	t.Parallel()
	body := "TLS-Required: No\r\nSubject: report\r\n\r\nhello\r\n"
	for _, honour := range []bool{false, true} {
		w := newWorld(t, worldOpts{dane: true, honourTLSRequiredNo: honour})
		mx := w.mx("mx.example.test", mxtest.Behavior{})
		w.domain("example.test", "mx.example.test")
		w.dns.Add(tlsa("mx.example.test", 3, 1, w.ca.Cert)) // does not match the MX
		r := lmtpTransact(t, w.lmtp, []string{"a@example.test"}, body)
		switch {
		case honour && (!strings.HasPrefix(r[0], "250") || len(mx.Messages()) != 1 || !mx.Messages()[0].TLS):
			t.Errorf("honoured: %q, want delivered over TLS", r[0])
		case !honour && !strings.HasPrefix(r[0], "451 4.7.5"):
			t.Errorf("not honoured: %q, want the TLSA mismatch (451 4.7.5)", r[0])
		}
	}
}
