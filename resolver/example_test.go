package resolver_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/caliop/relay/internal/testworld/dnstest"
	"github.com/caliop/relay/resolver"
)

func Example() {
	// A fake DNS server stands in for the local validating resolver.
	srv, err := dnstest.New()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	srv.Add(
		"example.test. 300 IN MX 20 mx2.example.test.",
		"example.test. 300 IN MX 10 MX1.Example.Test.",
		"mx1.example.test. 300 IN A 192.0.2.1",
		"mx1.example.test. 300 IN AAAA 2001:db8::1",
	)
	srv.SetAuthenticAll(true) // the validator vouches for everything

	r, err := resolver.New(resolver.Config{
		Servers: []string{srv.Addr}, // loopback, so the AD bit is trusted
		Timeout: 200 * time.Millisecond,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()

	mxs, res, err := r.LookupMX(ctx, "Example.Test.")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("MX authentic:", res.Authentic)
	for _, mx := range mxs {
		addrs, _, err := r.LookupIP(ctx, mx.Host)
		switch {
		case errors.Is(err, resolver.ErrNXDomain):
			fmt.Println(mx.Pref, mx.Host, "does not exist")
		case err != nil:
			fmt.Println(mx.Pref, mx.Host, "try later:", errors.Is(err, resolver.ErrServFail) || errors.Is(err, resolver.ErrTimeout))
		default:
			fmt.Println(mx.Pref, mx.Host, addrs)
		}
	}
	// Output:
	// MX authentic: true
	// 10 mx1.example.test [192.0.2.1 2001:db8::1]
	// 20 mx2.example.test does not exist
}
