package tlsrptsend

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/caliop/relay/internal/testworld/fakeclock"
	"github.com/caliop/relay/internal/testworld/fakedns"
	"github.com/caliop/relay/internal/testworld/redistest"
	"github.com/caliop/relay/store"
	"github.com/caliop/relay/tlsrpt"
)

// TestReplicasAddUpAndSendOnce: two reporters on one store (replicas of a
// cluster) count the same day; the stored counts are the sum, and the
// day's report leaves once although both send loops run at once.
func TestReplicasAddUpAndSendOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	openStore := func() Store {
		st, err := store.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	testReplicas(t, openStore)
}

// TestReplicasOnRedis: the same on a (fake) Redis, the cluster store.
func TestReplicasOnRedis(t *testing.T) {
	t.Parallel()
	m := miniredis.RunT(t)
	testReplicas(t, func() Store {
		st, err := store.OpenRedis(store.RedisOptions{URL: "redis://" + m.Addr()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
}

// TestReplicasOnRedisServer: the same on a real redis-server (skipped
// without one, unless CALIOP_E2E is set).
func TestReplicasOnRedisServer(t *testing.T) {
	t.Parallel()
	addr, _ := redistest.Start(t)
	testReplicas(t, func() Store {
		st, err := store.OpenRedis(store.RedisOptions{URL: "redis://" + addr})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
}

// testReplicas runs the replica scenario on stores from open, each call a
// new handle on the same shared store.
func testReplicas(t *testing.T, open func() Store) {
	t.Helper()
	c := &collector{}
	srv := httptest.NewTLSServer(slow{c})
	t.Cleanup(srv.Close)
	clk := fakeclock.New(day.Add(10 * time.Hour))
	dns := fakedns.New()
	dns.TXT["_smtp._tls.example.com"] = []string{"v=TLSRPTv1; rua=" + srv.URL + "/tlsrpt"}
	var rs []*Reporter
	for range 2 {
		r, err := New(Options{
			Store: open(), DNS: dns, HTTP: srv.Client(), Submitter: "relay.example",
			OrganizationName: "Caliop Test", ContactInfo: "postmaster@relay.example",
			Now: clk.Now, Delay: func() time.Duration { return 0 },
		})
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	ok := tlsrpt.Outcome{Domain: "example.com", Policy: tlsrpt.PolicySTS, PolicyText: stsPolicy, MX: "mx1.example.com", Success: true}
	bad := tlsrpt.Outcome{Domain: "example.com", Policy: tlsrpt.PolicySTS, PolicyText: stsPolicy, MX: "mx2.example.com", Result: tlsrpt.CertificateExpired}
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Go(func() {
			for n := range 30 {
				r.Record(ok)
				if n%10 == i {
					r.Record(bad)
				}
				if n%7 == 0 {
					if err := r.Flush(); err != nil {
						t.Error(err)
					}
				}
			}
			if err := r.Flush(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	rep, err := rs[1].Report("example.com", day)
	if err != nil {
		t.Fatal(err)
	}
	var sum tlsrpt.Summary
	for _, p := range rep.Policies {
		sum.TotalSuccessful += p.Summary.TotalSuccessful
		sum.TotalFailure += p.Summary.TotalFailure
	}
	if sum != (tlsrpt.Summary{TotalSuccessful: 60, TotalFailure: 6}) {
		t.Errorf("counts of both replicas: %+v, want 60 successes and 6 failures", sum)
	}

	clk.Set(day.Add(24*time.Hour + time.Minute))
	for _, r := range rs {
		wg.Go(func() { r.sendDue(context.Background()) })
	}
	wg.Wait()
	// A replica that found the lock taken tries again later and finds
	// the report sent.
	for _, r := range rs {
		r.sendDue(context.Background())
	}
	if n := len(c.all()); n != 1 {
		t.Errorf("%d reports posted, want 1", n)
	}
	for _, r := range rs {
		if done, _, err := r.Sent("example.com", day); !done || err != nil {
			t.Errorf("Sent = %v, %v", done, err)
		}
	}
}

// slow makes each post take a while, so that both send loops overlap.
type slow struct{ c *collector }

func (s slow) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	time.Sleep(100 * time.Millisecond)
	s.c.ServeHTTP(w, r)
}
