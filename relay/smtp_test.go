package relay

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/caliop/relay/internal/testworld/mxtest"
	"github.com/caliop/relay/internal/testworld/testpki"
	"github.com/caliop/relay/policy"
)

// transact runs one SMTP transaction on the relay's SMTP listener and
// returns the reply to each RCPT and to the end of DATA ("" when no
// recipient was accepted).
func transact(t *testing.T, addr string, rcpts []string, body string) ([]string, string) {
	t.Helper()
	c := dialRaw(t, addr)
	c.must("EHLO mta.test", "250")
	c.must("MAIL FROM:<sender@origin.test>", "250")
	var replies []string
	ok := 0
	for _, r := range rcpts {
		rep := c.send("RCPT TO:<" + r + ">")
		replies = append(replies, rep)
		if strings.HasPrefix(rep, "250") {
			ok++
		}
	}
	if ok == 0 {
		return replies, ""
	}
	c.data(body)
	return replies, c.reply()
}

const simpleBody = "Subject: hello\r\n\r\nHello there.\r\n"

type mxSpec struct {
	name string
	b    func(t *testing.T, ca *testpki.CA) mxtest.Behavior
}

// smtpDestinationCase is one destination behaviour seen through the SMTP
// listener.
type smtpDestinationCase struct {
	name      string
	overrides map[string]policy.Requirement
	mxs       []mxSpec
	rcpts     []string
	wantRcpt  []string // reply prefixes
	wantData  string
	wantMail  []int // MAIL FROM count per MX
	wantMsgs  []int // stored messages per MX
}

func TestSMTPDestinations(t *testing.T) {
	verify := map[string]policy.Requirement{"example.test": {Level: policy.Verify, MinTLS: 0x0303}}
	plain := func(*testing.T, *testpki.CA) mxtest.Behavior { return mxtest.Behavior{} }
	tests := []smtpDestinationCase{
		{
			name:     "accepting MX gets the message over TLS",
			mxs:      []mxSpec{{"mx1.example.test", plain}},
			rcpts:    []string{"a@example.test"},
			wantRcpt: []string{"250"},
			wantData: "250 2.0.0 mx1.example.test [127.0.1.1] said",
			wantMail: []int{1}, wantMsgs: []int{1},
		},
		{
			name:     "no STARTTLS: 4.7.10 and no MAIL FROM",
			mxs:      []mxSpec{{"mx1.example.test", func(*testing.T, *testpki.CA) mxtest.Behavior { return mxtest.Behavior{NoSTARTTLS: true} }}},
			rcpts:    []string{"a@example.test"},
			wantRcpt: []string{"451 4.7.10 mx1.example.test [127.0.1.1]: starttls-not-supported"},
			wantMail: []int{0}, wantMsgs: []int{0},
		},
		{
			name:     "no STARTTLS on MX1, MX2 takes it",
			mxs:      []mxSpec{{"mx1.example.test", func(*testing.T, *testpki.CA) mxtest.Behavior { return mxtest.Behavior{NoSTARTTLS: true} }}, {"mx2.example.test", plain}},
			rcpts:    []string{"a@example.test"},
			wantRcpt: []string{"250"}, wantData: "250 2.0.0 mx2.example.test",
			wantMail: []int{0, 1}, wantMsgs: []int{0, 1},
		},
		{
			name: "self-signed certificate is enough for encrypt",
			mxs: []mxSpec{{"mx1.example.test", func(t *testing.T, ca *testpki.CA) mxtest.Behavior {
				return mxtest.Behavior{Cert: leaf(t, ca, testpki.LeafOptions{Names: []string{"mx1.example.test"}, SelfSigned: true})}
			}}},
			rcpts:    []string{"a@example.test"},
			wantRcpt: []string{"250"}, wantData: "250",
			wantMail: []int{1}, wantMsgs: []int{1},
		},
		{
			name:      "self-signed certificate fails verify",
			overrides: verify,
			mxs: []mxSpec{{"mx1.example.test", func(t *testing.T, ca *testpki.CA) mxtest.Behavior {
				return mxtest.Behavior{Cert: leaf(t, ca, testpki.LeafOptions{Names: []string{"mx1.example.test"}, SelfSigned: true})}
			}}},
			rcpts:    []string{"a@example.test"},
			wantRcpt: []string{"451 4.7.5 mx1.example.test [127.0.1.1]: certificate-not-trusted"},
			wantMail: []int{0}, wantMsgs: []int{0},
		},
		{
			name:      "expired certificate fails verify",
			overrides: verify,
			mxs: []mxSpec{{"mx1.example.test", func(t *testing.T, ca *testpki.CA) mxtest.Behavior {
				return mxtest.Behavior{Cert: leaf(t, ca, testpki.LeafOptions{Names: []string{"mx1.example.test"}, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})}
			}}},
			rcpts:    []string{"a@example.test"},
			wantRcpt: []string{"451 4.7.5 mx1.example.test [127.0.1.1]: certificate-expired"},
			wantMail: []int{0}, wantMsgs: []int{0},
		},
		{
			name:      "wrong-name certificate fails verify, valid MX2 takes it",
			overrides: verify,
			mxs: []mxSpec{{"mx1.example.test", func(t *testing.T, ca *testpki.CA) mxtest.Behavior {
				return mxtest.Behavior{Cert: leaf(t, ca, testpki.LeafOptions{Names: []string{"other.example.test"}})}
			}}, {"mx2.example.test", plain}},
			rcpts:    []string{"a@example.test"},
			wantRcpt: []string{"250"}, wantData: "250",
			wantMail: []int{0, 1}, wantMsgs: []int{0, 1},
		},
		{
			name: "4xx at MAIL on MX1: MX2 is tried",
			mxs: []mxSpec{{"mx1.example.test", func(*testing.T, *testpki.CA) mxtest.Behavior {
				return mxtest.Behavior{MailReply: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "busy"}}
			}}, {"mx2.example.test", plain}},
			rcpts:    []string{"a@example.test"},
			wantRcpt: []string{"250"}, wantData: "250",
			wantMail: []int{1, 1}, wantMsgs: []int{0, 1},
		},
		{
			name: "5xx at MAIL is final: MX2 never sees MAIL",
			mxs: []mxSpec{{"mx1.example.test", func(*testing.T, *testpki.CA) mxtest.Behavior {
				return mxtest.Behavior{MailReply: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "sender refused"}}
			}}, {"mx2.example.test", plain}},
			rcpts:    []string{"a@example.test"},
			wantRcpt: []string{"550 5.7.1 mx1.example.test [127.0.1.1] said: sender refused"},
			wantMail: []int{1, 0}, wantMsgs: []int{0, 0},
		},
		{
			name: "one recipient refused, the other delivered",
			mxs: []mxSpec{{"mx1.example.test", func(*testing.T, *testpki.CA) mxtest.Behavior {
				return mxtest.Behavior{RcptReply: map[string]*smtp.SMTPError{"bad@example.test": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}}}
			}}},
			rcpts:    []string{"bad@example.test", "good@example.test"},
			wantRcpt: []string{"550 5.1.1 mx1.example.test [127.0.1.1] said: no such user", "250"},
			wantData: "250", wantMail: []int{1}, wantMsgs: []int{1},
		},
		{
			name: "4xx after DATA is passed back",
			mxs: []mxSpec{{"mx1.example.test", func(*testing.T, *testpki.CA) mxtest.Behavior {
				return mxtest.Behavior{DataReply: &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}}
			}}},
			rcpts: []string{"a@example.test"}, wantRcpt: []string{"250"},
			wantData: "452 4.2.2 mx1.example.test [127.0.1.1] said: mailbox full",
			wantMail: []int{1}, wantMsgs: []int{0},
		},
		{
			name: "5xx after DATA is passed back",
			mxs: []mxSpec{{"mx1.example.test", func(*testing.T, *testpki.CA) mxtest.Behavior {
				return mxtest.Behavior{DataReply: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "spam"}}
			}}},
			rcpts: []string{"a@example.test"}, wantRcpt: []string{"250"},
			wantData: "554 5.7.1 mx1.example.test [127.0.1.1] said: spam",
			wantMail: []int{1}, wantMsgs: []int{0},
		},
		{
			name:  "connection dropped in DATA: 4xx, never 250",
			mxs:   []mxSpec{{"mx1.example.test", func(*testing.T, *testpki.CA) mxtest.Behavior { return mxtest.Behavior{DropInData: true} }}},
			rcpts: []string{"a@example.test"}, wantRcpt: []string{"250"},
			wantData: "451 4.4.2 mx1.example.test [127.0.1.1]: connection lost",
			wantMail: []int{1}, wantMsgs: []int{0},
		},
	}
	// Each case runs against MXs that offer everything (RSET, MAIL and the
	// first RCPT pipelined, the body as one BDAT, RFC 3030), against MXs
	// without CHUNKING (DATA), and without PIPELINING either (one command
	// at a time).
	for _, tc := range tests {
		for _, hide := range [][]string{nil, {"CHUNKING"}, {"CHUNKING", "PIPELINING"}} {
			t.Run(fmt.Sprintf("%s/hide=%v", tc.name, hide), func(t *testing.T) {
				t.Parallel()
				testSMTPDestination(t, tc, hide)
			})
		}
	}
}

func testSMTPDestination(t *testing.T, tc smtpDestinationCase, hide []string) {
	chunking := !slices.Contains(hide, "CHUNKING")
	w := newWorld(t, worldOpts{overrides: tc.overrides})
	var servers []*mxtest.Server
	var names []string
	for _, m := range tc.mxs {
		b := m.b(t, w.ca)
		b.HideExtensions = append(b.HideExtensions, hide...)
		servers = append(servers, w.mx(m.name, b))
		names = append(names, m.name)
	}
	w.domain("example.test", names...)
	rcptReplies, dataReply := transact(t, w.smtp, tc.rcpts, simpleBody)
	for i, want := range tc.wantRcpt {
		if !strings.HasPrefix(rcptReplies[i], want) {
			t.Errorf("RCPT %s → %q, want %q", tc.rcpts[i], rcptReplies[i], want)
		}
	}
	if !strings.HasPrefix(dataReply, tc.wantData) || tc.wantData == "" && dataReply != "" {
		t.Errorf("end of DATA → %q, want %q", dataReply, tc.wantData)
	}
	for i, s := range servers {
		if got := s.MailCount(); got != tc.wantMail[i] {
			t.Errorf("%s saw MAIL FROM %d times, want %d", s.Name, got, tc.wantMail[i])
		}
		if got := len(s.Messages()); got != tc.wantMsgs[i] {
			t.Errorf("%s stored %d messages, want %d", s.Name, got, tc.wantMsgs[i])
		}
		if bdat := slices.ContainsFunc(s.Commands(), func(c string) bool { return strings.HasPrefix(c, "BDAT ") }); bdat && !chunking {
			t.Errorf("%s got BDAT without offering CHUNKING", s.Name)
		}
	}
}

func leaf(t *testing.T, ca *testpki.CA, o testpki.LeafOptions) *tlsCert {
	c := ca.Leaf(t, o)
	return &c
}

// TestSMTPDeliveredBytes checks the envelope and the bytes stored, with the
// body sent as BDAT to an MX offering CHUNKING and dot-stuffed after DATA
// to one that does not.
func TestSMTPDeliveredBytes(t *testing.T) {
	for _, tc := range []struct {
		hide    []string
		command string // the command that carried the body
	}{
		{nil, "BDAT "},
		{[]string{"CHUNKING"}, "DATA"},
	} {
		t.Run(strings.TrimSpace(tc.command), func(t *testing.T) {
			t.Parallel()
			mx := testSMTPDeliveredBytes(t, mxtest.Behavior{HideExtensions: tc.hide})
			if !slices.ContainsFunc(mx.Commands(), func(c string) bool { return strings.HasPrefix(c, tc.command) }) {
				t.Errorf("MX commands %q lack %q", mx.Commands(), tc.command)
			}
		})
	}
}

func testSMTPDeliveredBytes(t *testing.T, b mxtest.Behavior) *mxtest.Server {
	w := newWorld(t, worldOpts{})
	mx := w.mx("mx1.example.test", b)
	w.domain("example.test", "mx1.example.test")
	_, reply := transact(t, w.smtp, []string{"a@example.test", "b@example.test"}, "Subject: x\r\n\r\n..dot-stuffed line\r\n\r\n..\r\nend\r\n")
	if !strings.HasPrefix(reply, "250") {
		t.Fatalf("DATA → %q", reply)
	}
	msgs := mx.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages stored, want 1", len(msgs))
	}
	m := msgs[0]
	if m.From != "sender@origin.test" || strings.Join(m.To, ",") != "a@example.test,b@example.test" || !m.TLS || m.ServerName != "mx1.example.test" {
		t.Errorf("envelope %q → %q, TLS %v, SNI %q", m.From, m.To, m.TLS, m.ServerName)
	}
	if m.TLSVersion < 0x0303 {
		t.Errorf("TLS version %x below 1.2", m.TLSVersion)
	}
	want := "Subject: x\r\n\r\n.dot-stuffed line\r\n\r\n.\r\nend\r\n"
	if !bytes.HasSuffix(m.Data, []byte(want)) {
		t.Errorf("body %q does not end with %q", m.Data, want)
	}
	if !bytes.HasPrefix(m.Data, []byte("Received: from mta.test ([127.0.0.1])\r\n\tby relay.test (Caliop) with ESMTP id ")) || bytes.Count(m.Data, []byte("Received:")) != 1 {
		t.Errorf("missing or wrong Received header: %q", m.Data)
	}
	return mx
}

func TestSMTPSecondRouteGets452(t *testing.T) {
	w := newWorld(t, worldOpts{})
	mx := w.mx("mx1.example.test", mxtest.Behavior{})
	w.mx("mx.other.test", mxtest.Behavior{})
	w.domain("example.test", "mx1.example.test")
	w.domain("other.test", "mx.other.test")
	replies, data := transact(t, w.smtp, []string{"a@example.test", "b@other.test", "c@example.test"}, simpleBody)
	if !strings.HasPrefix(replies[0], "250") || !strings.HasPrefix(replies[1], "452 4.5.3") || !strings.HasPrefix(replies[2], "250") {
		t.Errorf("RCPT replies %q; want 250, 452 4.5.3, 250", replies)
	}
	if !strings.HasPrefix(data, "250") {
		t.Errorf("DATA → %q", data)
	}
	if m := mx.WaitMessages(t, 1, 5*time.Second); strings.Join(m[0].To, ",") != "a@example.test,c@example.test" {
		t.Errorf("delivered to %q", m[0].To)
	}
}

func TestSMTPDNSFailures(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.dns.Add("null.test. 60 IN MX 0 .")
	w.dns.SetRcode("broken.test.", 15, 2) // MX SERVFAIL
	tests := []struct{ rcpt, want string }{
		{"a@null.test", "556 5.1.10"},
		{"a@nowhere.test", "550 5.1.2"},
		{"a@broken.test", "451 4.4.3"},
		{"no-domain", "501"},
		{"a@[192.0.2.1]", "550 5.1.2"},
	}
	for _, tc := range tests {
		replies, _ := transact(t, w.smtp, []string{tc.rcpt}, simpleBody)
		if !strings.HasPrefix(replies[0], tc.want) {
			t.Errorf("RCPT %s → %q, want %s", tc.rcpt, replies[0], tc.want)
		}
	}
}
