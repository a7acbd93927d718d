package tlsrptsend

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/caliop/relay/resolver"
	"github.com/caliop/relay/store"
	"github.com/caliop/relay/tlsrpt"
)

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// txtResolver answers TXT lookups from a map; a missing name is NXDOMAIN.
type txtResolver struct {
	mu      sync.Mutex
	records map[string][]string
	errs    map[string]error
	lookups int
}

func (r *txtResolver) LookupTXT(_ context.Context, name string) ([]string, resolver.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lookups++
	if err := r.errs[name]; err != nil {
		return nil, resolver.Result{}, err
	}
	txts, ok := r.records[name]
	if !ok {
		return nil, resolver.Result{}, fmt.Errorf("%w: %s", resolver.ErrNXDomain, name)
	}
	return txts, resolver.Result{}, nil
}

// mailbox keeps the messages given to SendMail.
type mailbox struct {
	mu   sync.Mutex
	sent []sentMail
	fail error
}

type sentMail struct {
	from, to string
	msg      []byte
}

func (m *mailbox) SendMail(_ context.Context, from, to string, msg []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.sent = append(m.sent, sentMail{from, to, msg})
	return nil
}

func (m *mailbox) all() []sentMail {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]sentMail(nil), m.sent...)
}

// env is a Reporter on a store in a temporary directory, at a fake time.
type env struct {
	dir   string
	clock *clock
	dns   *txtResolver
	mail  *mailbox
	http  *http.Client
	r     *Reporter
}

func newEnv(t *testing.T, start time.Time) *env {
	t.Helper()
	e := &env{dir: t.TempDir(), clock: &clock{t: start}, dns: &txtResolver{records: map[string][]string{}, errs: map[string]error{}}, mail: &mailbox{}}
	e.restart(t)
	return e
}

// restart makes a new Reporter on the same store, as after a restart.
func (e *env) restart(t *testing.T) {
	t.Helper()
	st, err := store.Open(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	e.r, err = New(Options{
		Store:            st,
		DNS:              e.dns,
		HTTP:             e.http,
		SendMail:         e.mail.SendMail,
		OrganizationName: "Caliop Test",
		ContactInfo:      "postmaster@relay.example",
		Submitter:        "relay.example",
		From:             "tlsrpt-noreply@relay.example",
		Now:              e.clock.Now,
		Delay:            func() time.Duration { return 0 },
	})
	if err != nil {
		t.Fatal(err)
	}
}

// jsonEqual compares two JSON texts semantically.
func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got invalid JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want invalid JSON: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func marshal(t *testing.T, r *tlsrpt.Report) []byte {
	t.Helper()
	b, err := tlsrpt.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
