package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caliop/relay/internal/testworld/testpki"
)

const (
	testDomain     = "example.test"
	testPolicyHost = "mta-sts.example.test"
)

// policyServer is an HTTPS policy host on 127.0.0.1 that records what
// clients asked for.
type policyServer struct {
	srv      *httptest.Server
	requests atomic.Int32

	mu     sync.Mutex
	sni    []string // ClientHelloInfo.ServerName of each handshake
	dialed []string // addresses given to the Fetcher's DialContext
	paths  []string // request URI of each request
	agents []string // User-Agent of each request
	hosts  []string // Host of each request
}

// newPolicyServer starts a TLS server presenting cert and answering with h;
// each of tweaks may change the server's TLS configuration before it starts.
func newPolicyServer(t *testing.T, cert tls.Certificate, h http.HandlerFunc, tweaks ...func(*tls.Config)) *policyServer {
	t.Helper()
	s := &policyServer{}
	done := make(chan struct{})
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		s.paths = append(s.paths, r.RequestURI)
		s.agents = append(s.agents, r.UserAgent())
		s.hosts = append(s.hosts, r.Host)
		s.mu.Unlock()
		if h == nil {
			// Never answer: wait for the client to give up.
			select {
			case <-r.Context().Done():
			case <-done:
			}
			return
		}
		h(w, r)
	}))
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are expected
	s.srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{cert},
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			s.mu.Lock()
			s.sni = append(s.sni, hello.ServerName)
			s.mu.Unlock()
			return nil, nil
		},
	}
	for _, tweak := range tweaks {
		tweak(s.srv.TLS)
	}
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	t.Cleanup(func() { close(done) }) // runs before Close
	return s
}

// fetcher returns a Fetcher whose every connection goes to the server.
func (s *policyServer) fetcher(roots *x509.CertPool) *Fetcher {
	return &Fetcher{
		Roots: roots,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			s.mu.Lock()
			s.dialed = append(s.dialed, addr)
			s.mu.Unlock()
			var d net.Dialer
			return d.DialContext(ctx, network, s.srv.Listener.Addr().String())
		},
	}
}

func (s *policyServer) record() (sni, dialed, paths, agents, hosts []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sni...), append([]string(nil), s.dialed...),
		append([]string(nil), s.paths...), append([]string(nil), s.agents...), append([]string(nil), s.hosts...)
}

// serve answers with status, content type (none if empty) and body.
func serve(status int, contentType, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if contentType == "" {
			w.Header()["Content-Type"] = nil // no sniffing
		} else {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// paddedPolicy is a valid policy of exactly size bytes: an unknown field
// fills it up.
func paddedPolicy(t *testing.T, base string, size int) string {
	t.Helper()
	const field = "x-padding: "
	n := size - len(base) - len(field) - 1
	if n < 1 {
		t.Fatalf("size %d too small", size)
	}
	p := base + field + strings.Repeat("p", n) + "\n"
	if len(p) != size {
		t.Fatalf("padded policy is %d bytes, want %d", len(p), size)
	}
	return p
}

func TestFetch(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	good := ca.Leaf(t, testpki.LeafOptions{Names: []string{testPolicyHost}})
	now := time.Now()
	rfcPolicy := readFixture(t, "rfc8461-3.2-policy.txt")
	rfcWant := &Policy{Mode: ModeEnforce, MX: []string{"mail.example.com", "*.example.net", "backupmx.example.com"}, MaxAge: 604800 * time.Second, Text: rfcPolicy}
	exact := paddedPolicy(t, rfcPolicy, MaxPolicySize)
	tests := []struct {
		name     string
		cert     *tls.Certificate // nil: good
		handler  http.HandlerFunc // nil: never answers
		timeout  time.Duration    // of the caller's ctx; 0: none
		want     *Policy          // when wantErr is nil
		wantErr  error
		errText  []string // in the message
		requests int32    // requests the server saw
	}{
		{name: "200 text/plain", handler: serve(200, "text/plain", rfcPolicy), want: rfcWant, requests: 1},
		{name: "charset parameter", handler: serve(200, "text/plain; charset=utf-8", rfcPolicy), want: rfcWant, requests: 1},
		{name: "media type case-insensitive", handler: serve(200, "Text/Plain; Charset=UTF-8", rfcPolicy), want: rfcWant, requests: 1},
		{name: "CRLF policy", handler: serve(200, "text/plain", strings.ReplaceAll(rfcPolicy, "\n", "\r\n")), want: rfcWant, requests: 1},
		{name: "301 not followed", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://"+testPolicyHost+"/elsewhere.txt", http.StatusMovedPermanently)
		}, wantErr: ErrFetch, errText: []string{testPolicyHost, "HTTP 301 Moved Permanently", `"https://mta-sts.example.test/elsewhere.txt"`}, requests: 1},
		{name: "404", handler: serve(404, "text/plain", "no"), wantErr: ErrFetch, errText: []string{"mta-sts policy fetch failed: mta-sts.example.test: HTTP 404 Not Found"}, requests: 1},
		{name: "500", handler: serve(500, "text/plain", rfcPolicy), wantErr: ErrFetch, errText: []string{"HTTP 500 Internal Server Error"}, requests: 1},
		{name: "204", handler: serve(204, "text/plain", ""), wantErr: ErrFetch, errText: []string{"HTTP 204 No Content"}, requests: 1},
		{name: "text/html", handler: serve(200, "text/html; charset=utf-8", rfcPolicy), wantErr: ErrFetch, errText: []string{`Content-Type "text/html; charset=utf-8", want text/plain`}, requests: 1},
		{name: "no content type", handler: serve(200, "", rfcPolicy), wantErr: ErrFetch, errText: []string{"no Content-Type"}, requests: 1},
		{name: "exactly 64 KiB", handler: serve(200, "text/plain", exact), want: &Policy{Mode: ModeEnforce, MX: rfcWant.MX, MaxAge: rfcWant.MaxAge, Text: exact}, requests: 1},
		{name: "64 KiB + 1", handler: serve(200, "text/plain", paddedPolicy(t, rfcPolicy, MaxPolicySize+1)), wantErr: ErrFetch, errText: []string{"policy larger than 65536 bytes"}, requests: 1},
		{name: "invalid policy", handler: serve(200, "text/plain", "version: STSv1\nmode: enforce\nmax_age: 86400\n"), wantErr: ErrPolicyInvalid, errText: []string{testPolicyHost, "no mx field"}, requests: 1},
		{name: "certificate for another name", cert: ptr(ca.Leaf(t, testpki.LeafOptions{Names: []string{"mta-sts.other.test", testDomain}})), handler: serve(200, "text/plain", rfcPolicy),
			wantErr: ErrWebPKI, errText: []string{testPolicyHost, "not mta-sts.example.test"}},
		{name: "self-signed certificate", cert: ptr(ca.Leaf(t, testpki.LeafOptions{Names: []string{testPolicyHost}, SelfSigned: true})), handler: serve(200, "text/plain", rfcPolicy),
			wantErr: ErrWebPKI, errText: []string{"unknown authority"}},
		{name: "expired certificate", cert: ptr(ca.Leaf(t, testpki.LeafOptions{Names: []string{testPolicyHost}, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Minute)})), handler: serve(200, "text/plain", rfcPolicy),
			wantErr: ErrWebPKI, errText: []string{"expired"}},
		{name: "no answer", timeout: 300 * time.Millisecond, wantErr: ErrFetch, errText: []string{testPolicyHost, "deadline exceeded"}, requests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cert := good
			if tt.cert != nil {
				cert = *tt.cert
			}
			s := newPolicyServer(t, cert, tt.handler)
			ctx := t.Context()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			start := time.Now()
			got, err := s.fetcher(ca.Pool).Fetch(ctx, testDomain)
			elapsed := time.Since(start)

			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Fetch = %+v, %v; want %v", got, err, tt.wantErr)
				}
				for _, text := range tt.errText {
					if !strings.Contains(err.Error(), text) {
						t.Errorf("error %q does not say %q", err, text)
					}
				}
			} else {
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				if got.Mode != tt.want.Mode || strings.Join(got.MX, " ") != strings.Join(tt.want.MX, " ") || got.MaxAge != tt.want.MaxAge || got.Text != tt.want.Text {
					t.Fatalf("Fetch = %+v\nwant %+v", got, tt.want)
				}
			}
			if tt.timeout > 0 && elapsed > tt.timeout+5*time.Second {
				t.Errorf("Fetch returned after %v, ctx timeout %v", elapsed, tt.timeout)
			}
			if n := s.requests.Load(); n != tt.requests {
				t.Errorf("server saw %d requests, want %d", n, tt.requests)
			}
			sni, dialed, _, _, _ := s.record()
			if len(dialed) != 1 || dialed[0] != testPolicyHost+":443" {
				t.Errorf("dialed %q, want once %q", dialed, testPolicyHost+":443")
			}
			if len(sni) != 1 || sni[0] != testPolicyHost {
				t.Errorf("SNI %q, want once %q", sni, testPolicyHost)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
