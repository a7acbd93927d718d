package tlsrptsend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caliop/relay/resolver"
	"github.com/caliop/relay/tlsrpt"
)

// collector is an HTTPS report endpoint that keeps what is posted and
// answers the statuses in codes, then 200.
type collector struct {
	mu    sync.Mutex
	posts []post
	codes []int
}

type post struct {
	method, path, contentType string
	body                      []byte
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.posts = append(c.posts, post{r.Method, r.URL.Path, r.Header.Get("Content-Type"), body})
	code := 200
	if len(c.codes) > 0 {
		code, c.codes = c.codes[0], c.codes[1:]
	}
	w.WriteHeader(code)
}

func (c *collector) all() []post {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]post(nil), c.posts...)
}

var day = time.Date(2026, 5, 17, 0, 0, 0, 0, time.UTC)

// sendEnv is an env with an HTTPS collector, example.com asking for
// reports at the collector and by mail, and a day of sessions.
func sendEnv(t *testing.T, codes ...int) (*env, *collector) {
	t.Helper()
	c := &collector{codes: codes}
	srv := httptest.NewTLSServer(c)
	t.Cleanup(srv.Close)
	e := newEnv(t, day.Add(10*time.Hour))
	e.http = srv.Client()
	e.restart(t)
	e.dns.TXT["_smtp._tls.example.com"] = []string{"v=spf1 -all", "v=TLSRPTv1; rua=" + srv.URL + "/tlsrpt,mailto:tls-reports@example.com"}
	for range 4 {
		e.r.Record(tlsrpt.Outcome{Domain: "example.com", Policy: tlsrpt.PolicySTS, PolicyText: stsPolicy, MX: "mx1.example.com", Success: true})
	}
	e.r.Record(tlsrpt.Outcome{Domain: "example.com", Policy: tlsrpt.PolicySTS, PolicyText: stsPolicy, MX: "mx2.example.com", Result: tlsrpt.CertificateHostMismatch, ReceivingIP: "192.0.2.2"})
	return e, c
}

// sendAt runs one round of the send loop at t.
func (e *env) sendAt(t time.Time) {
	e.clock.Set(t)
	e.r.sendDue(context.Background())
}

func TestSendHTTPS(t *testing.T) {
	t.Parallel()
	e, c := sendEnv(t)
	want, err := e.r.Report("example.com", day)
	if err != nil {
		t.Fatal(err)
	}
	e.sendAt(day.Add(23 * time.Hour))
	if n := len(c.all()); n != 0 {
		t.Fatalf("%d posts before the day ended", n)
	}
	e.sendAt(day.Add(24*time.Hour + time.Minute))
	posts := c.all()
	if len(posts) != 1 {
		t.Fatalf("%d posts, want 1", len(posts))
	}
	p := posts[0]
	if p.method != http.MethodPost || p.path != "/tlsrpt" || p.contentType != "application/tlsrpt+gzip" {
		t.Errorf("request %s %s %s", p.method, p.path, p.contentType)
	}
	js, err := tlsrpt.Gunzip(p.body, 0)
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, js, string(marshal(t, want)))
	got, _ := tlsrpt.Parse(js)
	if got == nil || got.Policies[0].Summary != (tlsrpt.Summary{TotalSuccessful: 4, TotalFailure: 1}) {
		t.Errorf("posted report %s", js)
	}
	if done, result, err := e.r.Sent("example.com", day); !done || err != nil || !strings.HasPrefix(result, "sent to ") {
		t.Errorf("Sent = %v %q %v", done, result, err)
	}

	// Not sent twice: not later, not after a restart.
	e.sendAt(day.Add(26 * time.Hour))
	e.restart(t)
	e.sendAt(day.Add(27 * time.Hour))
	if n, m := len(c.all()), len(e.mail.all()); n != 1 || m != 1 {
		t.Errorf("%d posts and %d mails in all, want 1 and 1", n, m)
	}
}

func TestSendMail(t *testing.T) {
	t.Parallel()
	e, _ := sendEnv(t)
	want, err := e.r.Report("example.com", day)
	if err != nil {
		t.Fatal(err)
	}
	e.sendAt(day.Add(24*time.Hour + time.Minute))
	mails := e.mail.all()
	if len(mails) != 1 {
		t.Fatalf("%d mails, want 1", len(mails))
	}
	s := mails[0]
	if s.from != "tlsrpt-noreply@relay.example" || s.to != "tls-reports@example.com" {
		t.Errorf("envelope %s -> %s", s.from, s.to)
	}
	if strings.Contains(strings.ReplaceAll(string(s.msg), "\r\n", ""), "\n") {
		t.Errorf("bare LF in the message")
	}
	m, err := mail.ReadMessage(strings.NewReader(string(s.msg)))
	if err != nil {
		t.Fatal(err)
	}
	for name, value := range map[string]string{
		"Subject":              "Report Domain: example.com Submitter: relay.example Report-ID: <2026-05-17.example.com@relay.example>",
		"TLS-Report-Domain":    "example.com",
		"TLS-Report-Submitter": "relay.example",
		"TLS-Required":         "No",
		"To":                   "<tls-reports@example.com>",
		"From":                 `"Caliop Test" <tlsrpt-noreply@relay.example>`,
		"MIME-Version":         "1.0",
	} {
		if got := m.Header.Get(name); got != value {
			t.Errorf("%s: %q, want %q", name, got, value)
		}
	}
	if _, err := m.Header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "tlsrpt" {
		t.Fatalf("Content-Type %q", m.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	text, err := mr.NextPart()
	if err != nil || !strings.HasPrefix(text.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("first part: %v %v", text, err)
	}
	att, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	wantName := fmt.Sprintf("relay.example!example.com!%d!%d.json.gz", day.Unix(), day.Add(24*time.Hour-time.Second).Unix())
	if att.Header.Get("Content-Type") != "application/tlsrpt+gzip" || att.FileName() != wantName || att.Header.Get("Content-Transfer-Encoding") != "base64" {
		t.Errorf("attachment %v, file name %q, want %q", att.Header, att.FileName(), wantName)
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Errorf("a third part: %v", err)
	}
	// The report inside, as a receiver reads it.
	got, err := tlsrpt.ParseMail(strings.NewReader(string(s.msg)))
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, marshal(t, got), string(marshal(t, want)))
}

// TestRetry: a failed rua is tried again after RetryAfter, the others
// not; after MaxAttempts the report is given up.
func TestRetry(t *testing.T) {
	t.Parallel()
	e, c := sendEnv(t, 503, 500)
	start := day.Add(24*time.Hour + time.Minute)
	e.sendAt(start)
	if done, result, _ := e.r.Sent("example.com", day); done || !strings.Contains(result, "503") {
		t.Errorf("after a 503: done %v, %q", done, result)
	}
	e.sendAt(start.Add(9 * time.Minute)) // before RetryAfter
	if n := len(c.all()); n != 1 {
		t.Errorf("%d posts within RetryAfter, want 1", n)
	}
	e.sendAt(start.Add(11 * time.Minute)) // second attempt: 500
	e.sendAt(start.Add(11*time.Minute + 29*time.Minute))
	if n := len(c.all()); n != 2 {
		t.Errorf("%d posts before three times RetryAfter, want 2", n)
	}
	e.sendAt(start.Add(11*time.Minute + 31*time.Minute)) // third: 200
	if n, m := len(c.all()), len(e.mail.all()); n != 3 || m != 1 {
		t.Errorf("%d posts, %d mails; want 3 and 1", n, m)
	}
	if done, _, _ := e.r.Sent("example.com", day); !done {
		t.Error("not done after a 200")
	}
}

func TestGiveUp(t *testing.T) {
	t.Parallel()
	e, c := sendEnv(t, 500, 500, 500, 500, 500, 500, 500)
	for h := range 20 {
		e.sendAt(day.Add(time.Duration(24+h) * time.Hour))
	}
	if n := len(c.all()); n != DefaultMaxAttempts {
		t.Errorf("%d posts, want %d", n, DefaultMaxAttempts)
	}
	if done, result, _ := e.r.Sent("example.com", day); !done || !strings.HasPrefix(result, "gave up") {
		t.Errorf("done %v, %q", done, result)
	}
}

func TestNotWanted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		txts    []string
		err     error
		done    bool
		lookups int
	}{
		{"nxdomain", nil, fmt.Errorf("%w: x", resolver.ErrNXDomain), true, 1},
		{"no TLSRPT record", []string{"v=spf1 -all"}, nil, true, 1},
		{"two records", []string{"v=TLSRPTv1; rua=mailto:a@example.com", "v=TLSRPTv1; rua=mailto:b@example.com"}, nil, true, 1},
		{"servfail is retried", nil, fmt.Errorf("%w: x", resolver.ErrServFail), false, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, c := sendEnv(t)
			e.dns.TXT["_smtp._tls.example.com"] = tc.txts
			if tc.txts == nil {
				delete(e.dns.TXT, "_smtp._tls.example.com")
			}
			e.dns.Errs["_smtp._tls.example.com"] = tc.err
			e.sendAt(day.Add(24*time.Hour + time.Minute))
			e.sendAt(day.Add(26 * time.Hour))
			if done, result, _ := e.r.Sent("example.com", day); done != tc.done {
				t.Errorf("done %v (%s), want %v", done, result, tc.done)
			}
			if len(c.all())+len(e.mail.all()) != 0 {
				t.Error("a report was sent")
			}
			if len(e.dns.Asked()) != tc.lookups {
				t.Errorf("%d lookups, want %d", len(e.dns.Asked()), tc.lookups)
			}
		})
	}
}

func TestDelay(t *testing.T) {
	t.Parallel()
	e, c := sendEnv(t)
	e.r.o.Delay = func() time.Duration { return 30 * time.Minute }
	e.sendAt(day.Add(24*time.Hour + 29*time.Minute))
	if n := len(c.all()); n != 0 {
		t.Errorf("%d posts before the delay", n)
	}
	e.sendAt(day.Add(24*time.Hour + 31*time.Minute))
	if n := len(c.all()); n != 1 {
		t.Errorf("%d posts after the delay, want 1", n)
	}
}

func TestMailFailureRetried(t *testing.T) {
	t.Parallel()
	e, c := sendEnv(t)
	e.mail.fail = errors.New("451 4.4.3 try later")
	e.sendAt(day.Add(24*time.Hour + time.Minute))
	e.mail.mu.Lock()
	e.mail.fail = nil
	e.mail.mu.Unlock()
	e.sendAt(day.Add(24*time.Hour + 12*time.Minute))
	if n, m := len(c.all()), len(e.mail.all()); n != 1 || m != 1 {
		t.Errorf("%d posts, %d mails; want 1 and 1", n, m)
	}
}

func TestCleanup(t *testing.T) {
	t.Parallel()
	e, _ := sendEnv(t)
	e.sendAt(day.Add(24*time.Hour + time.Minute))
	e.sendAt(day.AddDate(0, 0, DefaultKeepDays).Add(12 * time.Hour))
	if _, err := e.r.Report("example.com", day); err != nil {
		t.Errorf("within KeepDays: %v", err)
	}
	e.sendAt(day.AddDate(0, 0, DefaultKeepDays+1).Add(12 * time.Hour))
	if _, err := e.r.Report("example.com", day); !errors.Is(err, ErrNoData) {
		t.Errorf("after KeepDays: %v, want ErrNoData", err)
	}
	if done, result, _ := e.r.Sent("example.com", day); done || result != "" {
		t.Errorf("delivery state kept: %v %q", done, result)
	}
}
