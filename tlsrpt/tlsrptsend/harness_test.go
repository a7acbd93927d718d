package tlsrptsend

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/caliop/relay/internal/testworld/fakeclock"
	"github.com/caliop/relay/internal/testworld/fakedns"
	"github.com/caliop/relay/store"
	"github.com/caliop/relay/tlsrpt"
)

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
	clock *fakeclock.Clock
	dns   *fakedns.Resolver
	mail  *mailbox
	http  *http.Client
	r     *Reporter
}

func newEnv(t *testing.T, start time.Time) *env {
	t.Helper()
	e := &env{dir: t.TempDir(), clock: fakeclock.New(start), dns: fakedns.New(), mail: &mailbox{}}
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
