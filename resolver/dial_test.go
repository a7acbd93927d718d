package resolver_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/caliop/relay/internal/testworld/dnstest"
	"github.com/caliop/relay/resolver"
)

// TestDialer checks that names are resolved through the configured server
// and every address is tried in order, IPv4 first.
func TestDialer(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	s.Add(
		"web.example.test. 300 IN A 192.0.2.1",
		"web.example.test. 300 IN A 192.0.2.2",
		"web.example.test. 300 IN AAAA 2001:db8::1",
	)
	r := newResolver(t, s.Addr)
	var tried []string
	ok := "192.0.2.2:443"
	dial := r.Dialer(func(ctx context.Context, network, addr string) (net.Conn, error) {
		tried = append(tried, addr)
		if addr == ok {
			c, _ := net.Pipe()
			return c, nil
		}
		return nil, errors.New("refused")
	})
	c, err := dial(context.Background(), "tcp", "web.example.test:443")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if want := []string{"192.0.2.1:443", "192.0.2.2:443"}; !slices.Equal(tried, want) {
		t.Errorf("tried %v, want %v", tried, want)
	}

	tried, ok = nil, ""
	_, err = dial(context.Background(), "tcp", "web.example.test:443")
	if err == nil || !strings.Contains(err.Error(), `web.example.test port "443": refused`) || len(tried) != 3 || tried[2] != "[2001:db8::1]:443" {
		t.Errorf("all refused: err %v, tried %v", err, tried)
	}
	if _, err := dial(context.Background(), "tcp", "missing.example.test:443"); !errors.Is(err, resolver.ErrNXDomain) {
		t.Errorf("unknown name: %v, want ErrNXDomain", err)
	}
	tried = nil
	dial(context.Background(), "tcp", "127.0.0.1:443")
	if !slices.Equal(tried, []string{"127.0.0.1:443"}) {
		t.Errorf("address literal: tried %v", tried)
	}
}
