package tlsrpt

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/caliop/relay/store"
)

// sink keeps what it receives.
type sink struct {
	mu      sync.Mutex
	reports []*Report
}

func (s *sink) Received(r *Report) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reports = append(s.reports, r)
}

func (s *sink) got() []*Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reports
}

func TestReceiverHTTP(t *testing.T) {
	t.Parallel()
	example := readFixture(t, "rfc8460-example.json")
	var bomb bytes.Buffer
	bomb.Write(Gzip(bytes.Repeat([]byte(" "), MaxReportSize+1)))
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        []byte
		domains     []string
		code        int
		received    int
	}{
		{"gzip", http.MethodPost, "/tlsrpt", MediaTypeGzip, Gzip(example), nil, 200, 1},
		{"json", http.MethodPost, "/tlsrpt", MediaTypeJSON, example, nil, 200, 1},
		{"gzip without its media type", http.MethodPost, "/tlsrpt", "application/octet-stream", Gzip(example), nil, 200, 1},
		{"our domain", http.MethodPost, "/tlsrpt", MediaTypeGzip, Gzip(example), []string{"company-y.example"}, 200, 1},
		{"not our domain", http.MethodPost, "/tlsrpt", MediaTypeGzip, Gzip(example), []string{"example.net"}, 400, 0},
		{"not a report", http.MethodPost, "/tlsrpt", MediaTypeJSON, []byte(`{"x":1}`), nil, 400, 0},
		{"bad media type", http.MethodPost, "/tlsrpt", "text/html", example, nil, 415, 0},
		{"gzip bomb", http.MethodPost, "/tlsrpt", MediaTypeGzip, bomb.Bytes(), nil, 413, 0},
		{"GET", http.MethodGet, "/tlsrpt", "", nil, nil, 405, 0},
		{"other path to next", http.MethodGet, "/.well-known/mta-sts.txt", "", nil, nil, 299, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &sink{}
			rc := &Receiver{Sink: s, Domains: tc.domains}
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })
			srv := httptest.NewServer(rc.Wrap(next))
			defer srv.Close()
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, bytes.NewReader(tc.body))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("status %d (%s), want %d", resp.StatusCode, strings.TrimSpace(string(msg)), tc.code)
			}
			got := s.got()
			if len(got) != tc.received {
				t.Fatalf("%d reports received, want %d", len(got), tc.received)
			}
			if tc.received == 1 && (got[0].ReportID != "5065427c-23d3-47ca-b6e0-946ea0e8c4be" || got[0].Policies[0].Summary.TotalFailure != 303) {
				t.Errorf("received %+v", got[0])
			}
		})
	}
}

func TestReceiverKeepsOurPolicies(t *testing.T) {
	t.Parallel()
	r, err := Parse(readFixture(t, "rfc8460-example.json"))
	if err != nil {
		t.Fatal(err)
	}
	other := r.Policies[0]
	other.Policy.Domain = "elsewhere.example"
	r.Policies = append(r.Policies, other)
	b, _ := Marshal(r)
	var got *Report
	rc := &Receiver{Sink: ReceivedFunc(func(r *Report) { got = r }), Domains: []string{"elsewhere.example"}}
	rec := httptest.NewRecorder()
	rc.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/tlsrpt", bytes.NewReader(Gzip(b))))
	if rec.Code != 200 || got == nil || len(got.Policies) != 1 || got.Policies[0].Policy.Domain != "elsewhere.example" {
		t.Errorf("status %d, received %+v", rec.Code, got)
	}
}

// TestReceiverCountsEachReportOnce: a report posted again (senders retry)
// is answered 200 and counted once, also when the second post reaches
// another replica sharing the store; a store that cannot tell makes the
// post fail with 503, so that the sender retries.
func TestReceiverCountsEachReportOnce(t *testing.T) {
	t.Parallel()
	example := Gzip(readFixture(t, "rfc8460-example.json"))
	post := func(t *testing.T, rc *Receiver) int {
		srv := httptest.NewServer(rc.Wrap(http.NotFoundHandler()))
		defer srv.Close()
		resp, err := srv.Client().Post(srv.URL+DefaultPath, MediaTypeGzip, bytes.NewReader(example))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	m := miniredis.RunT(t)
	replica := func() store.Store {
		st, err := store.OpenRedis(store.RedisOptions{URL: "redis://" + m.Addr()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	bolt, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bolt.Close() })
	for name, stores := range map[string][2]store.Store{"one store": {bolt, bolt}, "two replicas on one Redis": {replica(), replica()}} {
		t.Run(name, func(t *testing.T) {
			s := &sink{}
			a := &Receiver{Sink: s, Seen: &store.Once{Store: stores[0], Bucket: "seen"}}
			b := &Receiver{Sink: s, Seen: &store.Once{Store: stores[1], Bucket: "seen"}}
			for i, rc := range []*Receiver{a, a, b} {
				if code := post(t, rc); code != 200 {
					t.Errorf("post %d: %d, want 200", i+1, code)
				}
			}
			if n := len(s.got()); n != 1 {
				t.Errorf("report counted %d times, want 1", n)
			}
		})
	}
	s := &sink{}
	if code := post(t, &Receiver{Sink: s, Seen: failingSeen{}}); code != 503 || len(s.got()) != 0 {
		t.Errorf("store down: %d, %d counted; want 503 and 0", code, len(s.got()))
	}
}

type failingSeen struct{}

func (failingSeen) First(string, time.Time) (bool, error) { return false, errors.New("store down") }
