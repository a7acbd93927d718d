package wkd

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caliop/relay/internal/testworld/testpki"
)

// certNames are the names the test server's certificate is valid for.
var certNames = []string{"openpgpkey.example.org", "example.org", "keys.example.net"}

// web is a set of HTTPS hosts served by one TLS server on 127.0.0.1, and
// the fake DNS in front of it. It records what a Client asked.
type web struct {
	srv    *httptest.Server
	routes map[string]http.HandlerFunc // by host; only these can be dialed
	has    map[string]bool             // HasAddress answers
	fail   string                      // host whose HasAddress fails

	mu       sync.Mutex
	asked    []string // HasAddress questions
	dialed   []string // DialContext addresses
	requests []string // host + request URI
	referers []string // Referer of each request
	agents   []string
}

func newWeb(t *testing.T, ca *testpki.CA, routes map[string]http.HandlerFunc) *web {
	t.Helper()
	w := &web{routes: routes, has: map[string]bool{}}
	done := make(chan struct{})
	w.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		w.requests = append(w.requests, r.Host+r.RequestURI)
		w.referers = append(w.referers, r.Referer())
		w.agents = append(w.agents, r.UserAgent())
		w.mu.Unlock()
		h := routes[r.Host]
		if h == nil {
			http.Error(rw, "no such host here", http.StatusMisdirectedRequest)
			return
		}
		h(rw, r.WithContext(contextUntil(r.Context(), done)))
	}))
	w.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are expected
	w.srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Leaf(t, testpki.LeafOptions{Names: certNames})}}
	w.srv.StartTLS()
	t.Cleanup(w.srv.Close)
	t.Cleanup(func() { close(done) }) // runs before Close: unblocks slow handlers
	return w
}

// contextUntil returns ctx, also cancelled when done is closed.
func contextUntil(ctx context.Context, done <-chan struct{}) context.Context {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-done:
		case <-ctx.Done():
		}
		cancel()
	}()
	return ctx
}

func (w *web) client(ca *testpki.CA) *Client {
	return &Client{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			w.mu.Lock()
			w.dialed = append(w.dialed, addr)
			w.mu.Unlock()
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if _, ok := w.routes[host]; !ok || port != "443" {
				return nil, fmt.Errorf("dial %s: connection refused", addr)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, w.srv.Listener.Addr().String())
		},
		HasAddress: func(ctx context.Context, host string) (bool, error) {
			w.mu.Lock()
			w.asked = append(w.asked, host)
			w.mu.Unlock()
			if host == w.fail {
				return false, errors.New("SERVFAIL")
			}
			return w.has[host], nil
		},
		Roots: ca.Pool,
		Now:   func() time.Time { return after2025 },
	}
}

func serve(body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	}
}

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.Error(w, http.StatusText(code), code) }
}

func redirect(to string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, to, http.StatusFound) }
}

// hops redirects /r/N to /r/N-1 on the same host and serves body at /r/0.
func hops(body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/r/"))
		if err != nil || n == 0 {
			serve(body)(w, r)
			return
		}
		http.Redirect(w, r, fmt.Sprintf("/r/%d", n-1), http.StatusFound)
	}
}

// chunked sends n bytes without a Content-Length.
func chunked(n int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte{' '}, 4096)
		for n > 0 {
			k := min(n, len(chunk))
			w.Write(chunk[:k])
			w.(http.Flusher).Flush()
			n -= k
		}
	}
}

// hang never answers before the client gives up.
func hang(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
