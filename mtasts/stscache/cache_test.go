package stscache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/caliop/relay/internal/testworld/fakeclock"
	"github.com/caliop/relay/internal/testworld/fakedns"
	"github.com/caliop/relay/mtasts"
	"github.com/caliop/relay/resolver"
	"github.com/caliop/relay/store"
	"github.com/caliop/relay/tlsrpt"
)

// stsDNS is the shared fake resolver with a setter of MTA-STS records.
type stsDNS struct{ *fakedns.Resolver }

// set publishes domain's MTA-STS record with id, or withdraws it ("").
func (d stsDNS) set(domain, id string) {
	d.Lock()
	defer d.Unlock()
	if id == "" {
		delete(d.TXT, "_mta-sts."+domain)
		return
	}
	d.TXT["_mta-sts."+domain] = []string{"v=spf1 -all", "v=STSv1; id=" + id}
}

// fakeFetch serves policies from a map and counts fetches per domain.
type fakeFetch struct {
	mu      sync.Mutex
	policy  map[string]*mtasts.Policy
	err     map[string]error
	calls   map[string]int
	release chan struct{} // when set, fetches wait for it
}

func (f *fakeFetch) Fetch(ctx context.Context, domain string) (*mtasts.Policy, error) {
	f.mu.Lock()
	f.calls[domain]++
	wait := f.release
	f.mu.Unlock()
	if wait != nil {
		<-wait
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.err[domain]; err != nil {
		return nil, err
	}
	p, ok := f.policy[domain]
	if !ok {
		return nil, fmt.Errorf("%w: mta-sts.%s: HTTP 404 Not Found", mtasts.ErrFetch, domain)
	}
	cp := *p
	return &cp, nil
}

func (f *fakeFetch) count(domain string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[domain]
}

func (f *fakeFetch) serve(domain string, p *mtasts.Policy, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.policy[domain], f.err[domain] = p, err
	if p == nil {
		delete(f.policy, domain)
	}
}

// env is a cache with fakes around it, on a real store in a temp dir.
type env struct {
	t     *testing.T
	dns   stsDNS
	fetch *fakeFetch
	clock *fakeclock.Clock
	dir   string
	tally *tlsrpt.Tally
	c     *Cache
}

func newEnv(t *testing.T) *env {
	e := &env{
		t:     t,
		dns:   stsDNS{fakedns.New()},
		fetch: &fakeFetch{policy: map[string]*mtasts.Policy{}, err: map[string]error{}, calls: map[string]int{}},
		clock: fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)),
		dir:   t.TempDir(),
		tally: &tlsrpt.Tally{},
	}
	e.reopen()
	return e
}

// reopen makes a new Cache on the same store, as a restart does.
func (e *env) reopen() {
	e.t.Helper()
	st, err := store.Open(e.dir)
	if err != nil {
		e.t.Fatal(err)
	}
	e.c, err = Open(Config{DNS: e.dns, Fetch: e.fetch, Store: st, Report: e.tally, Now: e.clock.Now})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) lookup(domain string) Result {
	return e.c.Lookup(context.Background(), domain)
}

func enforce(maxAge time.Duration, mx ...string) *mtasts.Policy {
	return &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: mx, MaxAge: maxAge, Text: fmt.Sprintf("version: STSv1\nmode: enforce\nmx: %v\nmax_age: %d\n", mx, int(maxAge.Seconds()))}
}

const day = 24 * time.Hour

func TestNoPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.lookup("plain.test")
	if r.Policy != nil || r.Source != SourceNone || !errors.Is(r.RecordErr, mtasts.ErrNoRecord) {
		t.Errorf("no TXT record: %+v", r)
	}
	if n := e.fetch.count("plain.test"); n != 0 {
		t.Errorf("fetched %d times without a TXT record", n)
	}
}

func TestFetchThenCached(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.dns.set("example.test", "1")
	e.fetch.serve("example.test", enforce(7*day, "mx.example.test"), nil)
	r := e.lookup("Example.Test.")
	if r.Policy == nil || r.Policy.Mode != mtasts.ModeEnforce || r.Source != SourceFetched || r.ID != "1" || !r.Expires.Equal(e.clock.Now().Add(7*day)) {
		t.Fatalf("first lookup: %+v", r)
	}
	e.clock.Advance(time.Hour)
	r = e.lookup("example.test")
	if r.Source != SourceCached || r.Record != "v=STSv1; id=1" {
		t.Errorf("same id: %+v, want cached", r)
	}
	if n := e.fetch.count("example.test"); n != 1 {
		t.Errorf("fetched %d times, want 1 (same id)", n)
	}
	// A new id triggers a fetch.
	e.dns.set("example.test", "2")
	e.fetch.serve("example.test", enforce(7*day, "mx2.example.test"), nil)
	r = e.lookup("example.test")
	if r.Source != SourceFetched || r.ID != "2" || r.Policy.MX[0] != "mx2.example.test" || e.fetch.count("example.test") != 2 {
		t.Errorf("new id: %+v after %d fetches", r, e.fetch.count("example.test"))
	}
}

// TestDowngradeResisted: once a policy is cached, losing the TXT record,
// DNS or the HTTPS fetch does not remove it (RFC 8461 §5.1), also across a
// restart; only expiry does.
func TestDowngradeResisted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.dns.set("example.test", "1")
	e.fetch.serve("example.test", enforce(2*day, "mx.example.test"), nil)
	if r := e.lookup("example.test"); r.Policy == nil {
		t.Fatal("policy not fetched")
	}

	e.dns.set("example.test", "") // TXT now NXDOMAIN
	if r := e.lookup("example.test"); r.Policy == nil || r.Source != SourceCached || r.Policy.Mode != mtasts.ModeEnforce {
		t.Errorf("TXT gone: %+v, want the cached enforce policy", r)
	}

	e.reopen()
	e.dns.SetErr(fmt.Errorf("%w: TXT _mta-sts.example.test: SERVFAIL", resolver.ErrServFail))
	if r := e.lookup("example.test"); r.Policy == nil || r.Source != SourceCached || r.Policy.MX[0] != "mx.example.test" {
		t.Errorf("after restart with DNS failing: %+v, want the stored policy", r)
	}

	// A new id whose fetch fails: the cached policy still applies, and
	// the fetch is not retried for RetryAfter.
	e.dns.SetErr(nil)
	e.dns.set("example.test", "2")
	e.fetch.serve("example.test", nil, fmt.Errorf("%w: mta-sts.example.test: timeout", mtasts.ErrFetch))
	for range 3 {
		r := e.lookup("example.test")
		if r.Policy == nil || r.ID != "1" || r.Failure != tlsrpt.STSPolicyFetchError {
			t.Errorf("new id, fetch failing: %+v, want cached id 1 with a fetch error", r)
		}
		e.clock.Advance(time.Minute)
	}
	if n := e.fetch.count("example.test"); n != 2 {
		t.Errorf("fetched %d times, want 2 (one ok, one failed, then held off)", n)
	}
	if n := e.tally.Failures("example.test", tlsrpt.STSPolicyFetchError); n != 1 {
		t.Errorf("reported %d fetch errors, want 1", n)
	}
	e.clock.Advance(2 * time.Minute) // 5 minutes after the failure
	e.lookup("example.test")
	if n := e.fetch.count("example.test"); n != 3 {
		t.Errorf("fetched %d times after RetryAfter, want 3", n)
	}

	// Expired, DNS failing: no policy.
	e.clock.Advance(2 * day)
	e.dns.SetErr(fmt.Errorf("%w: TXT: SERVFAIL", resolver.ErrServFail))
	if r := e.lookup("example.test"); r.Policy != nil {
		t.Errorf("expired policy still applied: %+v", r)
	}
}

func TestModeNoneRemoves(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.dns.set("example.test", "1")
	e.fetch.serve("example.test", enforce(7*day, "mx.example.test"), nil)
	e.lookup("example.test")
	e.dns.set("example.test", "2")
	e.fetch.serve("example.test", &mtasts.Policy{Mode: mtasts.ModeNone, MaxAge: day, Text: "version: STSv1\nmode: none\nmax_age: 86400\n"}, nil)
	if r := e.lookup("example.test"); r.Policy != nil {
		t.Errorf("mode none fetched: %+v, want no policy", r)
	}
	e.reopen()
	e.dns.set("example.test", "")
	if r := e.lookup("example.test"); r.Policy != nil {
		t.Errorf("after restart: %+v, want the policy gone from the store", r)
	}
}

func TestFailureKinds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want tlsrpt.ResultType
	}{
		{fmt.Errorf("%w: x509", mtasts.ErrWebPKI), tlsrpt.STSWebPKIInvalid},
		{fmt.Errorf("%w: line 2", mtasts.ErrPolicyInvalid), tlsrpt.STSPolicyInvalid},
		{fmt.Errorf("%w: 404", mtasts.ErrFetch), tlsrpt.STSPolicyFetchError},
	} {
		e := newEnv(t)
		e.dns.set("example.test", "1")
		e.fetch.serve("example.test", nil, tc.err)
		r := e.lookup("example.test")
		if r.Policy != nil || r.Failure != tc.want || e.tally.Failures("example.test", tc.want) != 1 {
			t.Errorf("%v: %+v, want failure %s reported once", tc.err, r, tc.want)
		}
	}
}

// TestOneFetchForConcurrentLookups: many deliveries to a new domain at
// once cause one HTTPS fetch.
func TestOneFetchForConcurrentLookups(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.dns.set("example.test", "1")
	e.fetch.serve("example.test", enforce(day, "mx.example.test"), nil)
	e.fetch.release = make(chan struct{})
	var wg sync.WaitGroup
	results := make([]Result, 10)
	for i := range results {
		wg.Go(func() { results[i] = e.lookup("example.test") })
	}
	deadline := time.Now().Add(2 * time.Second)
	for e.fetch.count("example.test") == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the others queue behind it
	close(e.fetch.release)
	wg.Wait()
	if n := e.fetch.count("example.test"); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
	for i, r := range results {
		if r.Policy == nil {
			t.Errorf("lookup %d got no policy", i)
		}
	}
}

func TestCorruptEntryDropped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	st, _ := store.Open(e.dir)
	st.Put(bucket, "bad.test", "not an entry")
	e.reopen()
	if r := e.lookup("bad.test"); r.Policy != nil {
		t.Errorf("corrupt entry applied: %+v", r)
	}
	n := 0
	st.ForEach(bucket, func(string, []byte) error { n++; return nil })
	if n != 0 {
		t.Errorf("%d entries left in the store, want the corrupt one removed", n)
	}
}
