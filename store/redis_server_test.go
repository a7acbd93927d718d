package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/caliop/relay/internal/testworld/redistest"
	"github.com/caliop/relay/store"
	"github.com/caliop/relay/store/storetest"
)

// TestRedisServerStore runs the Store suite on a real redis-server, each
// subtest under its own prefix.
func TestRedisServerStore(t *testing.T) {
	t.Parallel()
	addr, _ := redistest.Start(t)
	storetest.Run(t, func(t *testing.T) (a, b store.Store) {
		return openRedis(t, addr, t.Name(), 0), openRedis(t, addr, t.Name(), 0)
	})
}

// TestRedisServerKilled: a Redis killed mid-run turns every call into a
// quick error; a new one on the same port (empty: no persistence) is
// used by the same client without reopening it.
func TestRedisServerKilled(t *testing.T) {
	t.Parallel()
	addr, stop := redistest.Start(t)
	s := openRedis(t, addr, "", 500*time.Millisecond)
	defer s.Close()
	if err := s.Put("bk", "k", "before"); err != nil {
		t.Fatal(err)
	}
	stop()
	for _, name := range []string{"Get", "Put", "Check"} {
		start := time.Now()
		var err error
		switch name {
		case "Get":
			var ok bool
			ok, err = s.Get("bk", "k", new(string))
			if ok {
				t.Errorf("Get with Redis down found the value")
			}
		case "Put":
			err = s.Put("bk", "k", "during")
		case "Check":
			err = s.Check()
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s took %v with Redis down", name, d)
		}
		if err == nil || !strings.HasPrefix(err.Error(), "store: redis "+addr+": ") {
			t.Errorf("%s with Redis down = %v, want an error naming %s", name, err, addr)
		}
	}
	redistest.Restart(t, addr)
	waitUp(t, s)
	if ok, err := s.Get("bk", "k", new(string)); ok || err != nil {
		t.Errorf("Get on the new, empty Redis = %v, %v; want false, nil", ok, err)
	}
	if err := s.Put("bk", "k", "after"); err != nil {
		t.Fatal(err)
	}
	var got string
	if ok, err := s.Get("bk", "k", &got); !ok || err != nil || got != "after" {
		t.Errorf("Get after Put = %q, %v, %v", got, ok, err)
	}
}
