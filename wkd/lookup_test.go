package wkd

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caliop/relay/internal/testworld/testpki"
)

func TestLookup(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	key := fixture(t, "valid-2024-ed25519")
	padded := append(append([]byte{}, key...), bytes.Repeat([]byte{'\n'}, MaxResponseSize-len(key))...)
	adv := "openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/" + Hash("joe") + "?l=Joe"
	direct := "example.org/.well-known/openpgpkey/hu/" + Hash("joe") + "?l=Joe"
	const advHost, advDial, directDial = "openpgpkey.example.org", "openpgpkey.example.org:443", "example.org:443"
	both := []string{advHost, "example.org"}

	tests := []struct {
		name     string
		address  string // default Joe@Example.ORG
		has      []string
		fail     string
		routes   map[string]http.HandlerFunc
		timeout  time.Duration
		wantErr  error // nil: the key
		method   string
		asked    []string
		dialed   []string
		requests []string
	}{
		{
			name: "advanced, armored key", has: both,
			routes: map[string]http.HandlerFunc{advHost: serve(key), "example.org": serve(key)},
			method: "advanced", asked: []string{advHost}, dialed: []string{advDial}, requests: []string{adv},
		},
		{
			name: "advanced, binary key", has: both,
			routes: map[string]http.HandlerFunc{advHost: serve(unarmor(t, key))},
			method: "advanced", asked: []string{advHost}, dialed: []string{advDial}, requests: []string{adv},
		},
		{
			name: "no address for openpgpkey: direct", has: []string{"example.org"},
			routes: map[string]http.HandlerFunc{advHost: serve(key), "example.org": serve(key)},
			method: "direct", asked: both, dialed: []string{directDial}, requests: []string{direct},
		},
		{
			name: "no address for either: no directory", wantErr: ErrNoDirectory,
			routes: map[string]http.HandlerFunc{advHost: serve(key), "example.org": serve(key)},
			method: "direct", asked: both,
		},
		{
			name: "openpgpkey address lookup fails: no request", has: both, fail: advHost, wantErr: ErrUnknown,
			routes: map[string]http.HandlerFunc{advHost: serve(key), "example.org": serve(key)},
			asked:  []string{advHost},
		},
		{
			name: "domain address lookup fails", fail: "example.org", wantErr: ErrUnknown,
			routes: map[string]http.HandlerFunc{"example.org": serve(key)},
			method: "direct", asked: both,
		},
		{
			name: "advanced 404: no key, direct not tried", has: both, wantErr: ErrNoKey,
			routes: map[string]http.HandlerFunc{advHost: status(404), "example.org": serve(key)},
			method: "advanced", asked: []string{advHost}, dialed: []string{advDial}, requests: []string{adv},
		},
		{
			name: "direct 404", has: []string{"example.org"}, wantErr: ErrNoKey,
			routes: map[string]http.HandlerFunc{"example.org": status(404)},
			method: "direct", asked: both, dialed: []string{directDial}, requests: []string{direct},
		},
		{
			name: "advanced 500: unknown, direct not tried", has: both, wantErr: ErrUnknown,
			routes: map[string]http.HandlerFunc{advHost: status(500), "example.org": serve(key)},
			method: "advanced", asked: []string{advHost}, dialed: []string{advDial}, requests: []string{adv},
		},
		{
			name: "advanced 403", has: both, wantErr: ErrUnknown,
			routes: map[string]http.HandlerFunc{advHost: status(403)},
			method: "advanced", asked: []string{advHost}, dialed: []string{advDial}, requests: []string{adv},
		},
		{
			name: "advanced host refuses connections: direct not tried", has: both, wantErr: ErrUnknown,
			routes: map[string]http.HandlerFunc{"example.org": serve(key)},
			method: "advanced", asked: []string{advHost}, dialed: []string{advDial},
		},
		{
			name: "certificate not valid for the host", address: "joe@badcert.example", wantErr: ErrUnknown,
			has:    []string{"openpgpkey.badcert.example"},
			routes: map[string]http.HandlerFunc{"openpgpkey.badcert.example": serve(key), "badcert.example": serve(key)},
			method: "advanced", asked: []string{"openpgpkey.badcert.example"}, dialed: []string{"openpgpkey.badcert.example:443"},
		},
		{
			name: "body of exactly MaxResponseSize", has: both,
			routes: map[string]http.HandlerFunc{advHost: serve(padded)},
			method: "advanced", asked: []string{advHost}, dialed: []string{advDial}, requests: []string{adv},
		},
		{
			name: "oversize with Content-Length", has: both, wantErr: ErrUnknown,
			routes: map[string]http.HandlerFunc{advHost: serve(append(padded, '\n'))},
			method: "advanced", asked: []string{advHost}, dialed: []string{advDial}, requests: []string{adv},
		},
		{
			name: "oversize, chunked", has: both, wantErr: ErrUnknown,
			routes: map[string]http.HandlerFunc{advHost: chunked(MaxResponseSize + 1)},
			method: "advanced", asked: []string{advHost}, dialed: []string{advDial}, requests: []string{adv},
		},
		{
			name: "slow server", has: both, timeout: 300 * time.Millisecond, wantErr: ErrUnknown,
			routes: map[string]http.HandlerFunc{advHost: hang, "example.org": serve(key)},
			method: "advanced", asked: []string{advHost}, dialed: []string{advDial}, requests: []string{adv},
		},
		{
			name: "redirect to http refused", has: both, wantErr: ErrUnknown,
			routes: map[string]http.HandlerFunc{advHost: redirect("http://example.org/key"), "example.org": serve(key)},
			method: "advanced", asked: []string{advHost}, dialed: []string{advDial}, requests: []string{adv},
		},
		{
			name: "redirect to https followed", has: both,
			routes: map[string]http.HandlerFunc{advHost: redirect("https://keys.example.net/joe"), "keys.example.net": serve(key)},
			method: "advanced", asked: []string{advHost}, dialed: []string{advDial, "keys.example.net:443"},
			requests: []string{adv, "keys.example.net/joe"},
		},
		{
			name: "redirect to another port refused", has: both, wantErr: ErrUnknown,
			routes: map[string]http.HandlerFunc{advHost: redirect("https://keys.example.net:8443/joe"), "keys.example.net": serve(key)},
			method: "advanced", asked: []string{advHost}, dialed: []string{advDial}, requests: []string{adv},
		},
		{
			name: "three redirects followed", has: both,
			routes: map[string]http.HandlerFunc{advHost: redirect("https://keys.example.net/r/2"), "keys.example.net": hops(key)},
			method: "advanced", asked: []string{advHost},
			dialed:   []string{advDial, "keys.example.net:443"}, // one connection per host, kept
			requests: []string{adv, "keys.example.net/r/2", "keys.example.net/r/1", "keys.example.net/r/0"},
		},
		{
			name: "four redirects refused", has: both, wantErr: ErrUnknown,
			routes: map[string]http.HandlerFunc{advHost: redirect("https://keys.example.net/r/3"), "keys.example.net": hops(key)},
			method: "advanced", asked: []string{advHost},
			dialed:   []string{advDial, "keys.example.net:443"}, // one connection per host, kept
			requests: []string{adv, "keys.example.net/r/3", "keys.example.net/r/2", "keys.example.net/r/1"},
		},
		{
			name: "only unusable keys: no key", has: both, wantErr: ErrNoKey,
			routes: map[string]http.HandlerFunc{advHost: serve(fixture(t, "signonly-ed25519"))},
			method: "advanced", asked: []string{advHost}, dialed: []string{advDial}, requests: []string{adv},
		},
		{
			name: "HTML instead of a key: unknown", has: both, wantErr: ErrUnknown,
			routes: map[string]http.HandlerFunc{advHost: serve([]byte("<html>Welcome</html>"))},
			method: "advanced", asked: []string{advHost}, dialed: []string{advDial}, requests: []string{adv},
		},
		{
			name: "malformed address: no request", address: "joe", wantErr: ErrNoKey,
			routes: map[string]http.HandlerFunc{advHost: serve(key)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWeb(t, ca, tt.routes)
			for _, h := range tt.has {
				w.has[h] = true
			}
			w.fail = tt.fail
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			address := tt.address
			if address == "" {
				address = "Joe@Example.ORG"
			}
			start := time.Now()
			l, err := w.client(ca).Lookup(ctx, address)
			if elapsed := time.Since(start); elapsed > 3*time.Second {
				t.Errorf("lookup took %v", elapsed)
			}
			checkLookup(t, l, err, tt.wantErr, key)
			if l.Method != tt.method {
				t.Errorf("Method = %q, want %q", l.Method, tt.method)
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			for name, got := range map[string][][]string{
				"asked":    {w.asked, tt.asked},
				"dialed":   {w.dialed, tt.dialed},
				"requests": {w.requests, tt.requests},
			} {
				if !slices.Equal(got[0], got[1]) {
					t.Errorf("%s = %q, want %q", name, got[0], got[1])
				}
			}
			for i, ref := range w.referers {
				if ref != "" || w.agents[i] != userAgent {
					t.Errorf("request %d: Referer %q, User-Agent %q; want none and %q", i, ref, w.agents[i], userAgent)
				}
			}
		})
	}
}

func checkLookup(t *testing.T, l Lookup, err, wantErr error, key []byte) {
	t.Helper()
	if wantErr != nil {
		if !errors.Is(err, wantErr) || errors.Is(err, ErrNoKey) == errors.Is(err, ErrUnknown) {
			t.Fatalf("err = %v, want %v only", err, wantErr)
		}
		if l.Key != nil || l.Fingerprint != "" {
			t.Errorf("key %s returned with an error", l.Fingerprint)
		}
		if strings.Contains(err.Error(), "l=") {
			t.Errorf("error %q carries the local part", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("err = %v", err)
	}
	if want := fpr(t, key); l.Fingerprint != want || l.Key == nil || fingerprint(l.Key) != want {
		t.Errorf("Fingerprint = %s, want %s", l.Fingerprint, want)
	}
	if len(l.Rejected) != 0 {
		t.Errorf("Rejected = %q, want none", l.Rejected)
	}
}

func TestLookupRejectedReasons(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	body := bytes.Join([][]byte{fixture(t, "revoked-2025-ed25519"), fixture(t, "valid-2023-rsa3072")}, nil)
	w := newWeb(t, ca, map[string]http.HandlerFunc{"openpgpkey.example.org": serve(body)})
	w.has["openpgpkey.example.org"] = true
	l, err := w.client(ca).Lookup(context.Background(), "joe@example.org")
	if err != nil {
		t.Fatal(err)
	}
	want := fpr(t, fixture(t, "valid-2023-rsa3072"))
	if l.Fingerprint != want || len(l.Rejected) != 1 || !strings.Contains(l.Rejected[0], "revoked") {
		t.Errorf("Lookup = %s, rejected %q; want %s, the revoked key rejected", l.Fingerprint, l.Rejected, want)
	}
	if wantURL := AdvancedURL("joe", "example.org"); l.URL != wantURL {
		t.Errorf("URL = %s, want %s", l.URL, wantURL)
	}
}

func TestLookupNeedsDNSAndDialer(t *testing.T) {
	t.Parallel()
	for _, c := range []*Client{{}, {HasAddress: func(context.Context, string) (bool, error) { return true, nil }}} {
		if _, err := c.Lookup(context.Background(), "joe@example.org"); !errors.Is(err, ErrUnknown) {
			t.Errorf("Lookup with missing fields: err = %v, want ErrUnknown", err)
		}
	}
}

// TestConnectionReused: a second lookup at the same directory host goes
// over the first one's connection: one dial, two requests.
func TestConnectionReused(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	w := newWeb(t, ca, map[string]http.HandlerFunc{"openpgpkey.example.org": serve(fixture(t, "valid-2023-rsa3072"))})
	w.has["openpgpkey.example.org"] = true
	c := w.client(ca)
	for _, addr := range []string{"joe@example.org", "ann@example.org"} {
		c.Lookup(context.Background(), addr) // ann's is no key: still a request
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.requests) != 2 || len(w.dialed) != 1 {
		t.Errorf("two lookups at one host: %d requests over %d connections, want 2 over 1", len(w.requests), len(w.dialed))
	}
}
