package store_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/caliop/relay/store"
	"github.com/caliop/relay/store/storetest"
)

// fakeRedis starts a miniredis whose clock follows the real one:
// miniredis only expires keys when told to, and the lock tests wait for
// real ttls.
func fakeRedis(t *testing.T) *miniredis.Miniredis {
	m := miniredis.RunT(t)
	done := make(chan struct{})
	ticker := time.NewTicker(10 * time.Millisecond)
	go func() {
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-ticker.C:
				m.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	t.Cleanup(func() {
		ticker.Stop()
		close(done)
	})
	return m
}

func openRedis(t *testing.T, addr, prefix string, timeout time.Duration) *store.Redis {
	t.Helper()
	s, err := store.OpenRedis(store.RedisOptions{URL: "redis://" + addr, Prefix: prefix, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRedisStore runs the Store suite on two clients of one fake Redis,
// as two replicas.
func TestRedisStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) (a, b store.Store) {
		m := fakeRedis(t)
		return openRedis(t, m.Addr(), "", 0), openRedis(t, m.Addr(), "", 0)
	})
}

// TestRedisLayout checks the keys other tools (redis-cli) see.
func TestRedisLayout(t *testing.T) {
	t.Parallel()
	m := fakeRedis(t)
	s := openRedis(t, m.Addr(), "", 0)
	defer s.Close()
	if err := s.Put("mtasts", "example.org", map[string]int{"max_age": 86400}); err != nil {
		t.Fatal(err)
	}
	if got := m.HGet("caliop:mtasts", "example.org"); got != `{"max_age":86400}` {
		t.Errorf("caliop:mtasts example.org = %q, want the JSON", got)
	}
	other := openRedis(t, m.Addr(), "blue", 0)
	defer other.Close()
	if ok, err := other.Get("mtasts", "example.org", new(any)); ok || err != nil {
		t.Errorf("Get under another prefix = %v, %v; want false, nil", ok, err)
	}
	unlock, err := s.Lock("acme", 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if tok, _ := m.Get("caliop:lock:acme"); len(tok) != 32 {
		t.Errorf("caliop:lock:acme = %q, want a 32-digit token", tok)
	}
	if ttl := m.TTL("caliop:lock:acme"); ttl <= 80*time.Second || ttl > 90*time.Second {
		t.Errorf("lock ttl %v, want 90s", ttl)
	}
	unlock()
	if m.Exists("caliop:lock:acme") {
		t.Error("lock key still set after unlock")
	}
}

func TestOpenRedisBadURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, want string }{
		{"", "store: redis URL: "},
		{"http://127.0.0.1:6379", "invalid URL scheme"},
		{"redis://127.0.0.1:6379/x", `invalid database number: "x"`},
		{"redis://user:s3cret@127.0.0.1:notaport", "invalid port"},
	} {
		s, err := store.OpenRedis(store.RedisOptions{URL: tc.url})
		if err == nil {
			s.Close()
			t.Errorf("OpenRedis(%q): nil error", tc.url)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "store: redis URL: ") {
			t.Errorf("OpenRedis(%q) = %v, want %q", tc.url, err, tc.want)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("OpenRedis(%q) = %v: the error shows the password", tc.url, err)
		}
	}
}

// TestOpenRedisNoAnswer: a Redis that refuses or never answers fails
// OpenRedis, in about the Timeout, naming the address.
func TestOpenRedisNoAnswer(t *testing.T) {
	t.Parallel()
	// Refused: a port nobody listens on any more.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String()
	l.Close()
	// Silent: accepts the connection and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	for _, addr := range []string{refused, silent.Addr().String()} {
		start := time.Now()
		s, err := store.OpenRedis(store.RedisOptions{URL: "redis://" + addr, Timeout: 300 * time.Millisecond})
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("OpenRedis(%s) took %v", addr, d)
		}
		if err == nil {
			s.Close()
			t.Errorf("OpenRedis(%s): nil error", addr)
		} else if !strings.HasPrefix(err.Error(), "store: redis "+addr+": ") {
			t.Errorf("OpenRedis(%s) = %v, want an error naming the address", addr, err)
		}
	}
}

// TestRedisDownAndBack: while Redis is down every call errs within about
// the Timeout, never (false, nil); once it is back on the same address
// the same client works again.
func TestRedisDownAndBack(t *testing.T) {
	t.Parallel()
	m := fakeRedis(t)
	addr := m.Addr()
	s := openRedis(t, addr, "", 500*time.Millisecond)
	defer s.Close()
	if err := s.Put("bk", "k", "before"); err != nil {
		t.Fatal(err)
	}
	m.Close()
	prefix := "store: redis " + addr + ": "
	calls := []struct {
		name string
		call func() error
	}{
		{"Get", func() error {
			ok, err := s.Get("bk", "k", new(string))
			if ok {
				return errors.New("found")
			}
			return err
		}},
		{"Put", func() error { return s.Put("bk", "k", "during") }},
		{"Delete", func() error { return s.Delete("bk", "k") }},
		{"ForEach", func() error { return s.ForEach("bk", func(string, []byte) error { return nil }) }},
		{"Update", func() error {
			return s.Update("bk", "k", func(old []byte) ([]byte, error) { return old, nil })
		}},
		{"Lock", func() error {
			u, err := s.Lock("job", time.Minute)
			if err == nil {
				u()
				return nil
			}
			if errors.Is(err, store.ErrLocked) {
				return nil // down is not "locked by another"
			}
			return err
		}},
		{"Check", s.Check},
	}
	// Twice: the first calls find pooled connections broken, the later
	// ones find nothing to dial.
	for round := range 2 {
		for _, c := range calls {
			start := time.Now()
			err := c.call()
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("round %d: %s took %v with Redis down", round, c.name, d)
			}
			if err == nil || !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("round %d: %s with Redis down = %v, want an error starting %q", round, c.name, err, prefix)
			}
		}
	}

	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	waitUp(t, s)
	var got string
	if ok, err := s.Get("bk", "k", &got); !ok || err != nil || got != "before" {
		t.Errorf("Get after restart = %q, %v, %v; want before", got, ok, err)
	}
	if err := s.Put("bk", "k", "after"); err != nil {
		t.Errorf("Put after restart: %v", err)
	}
}

// waitUp waits (bounded) for s to reach its Redis again.
func waitUp(t *testing.T, s store.Store) {
	t.Helper()
	start := time.Now()
	for {
		err := s.Check()
		if err == nil {
			return
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("store still down %v after Redis came back: %v", time.Since(start), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
