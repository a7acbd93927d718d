package wkd_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/caliop/relay/wkd"
)

// The draft §3.1 example address and where its key is looked up.
func ExampleAdvancedURL() {
	fmt.Println(wkd.Hash("Joe.Doe"))
	fmt.Println(wkd.AdvancedURL("Joe.Doe", "Example.ORG"))
	fmt.Println(wkd.DirectURL("Joe.Doe", "Example.ORG"))
	// Output:
	// iy9q119eutrkn8s1mk4r39qejnbu3n5q
	// https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe
	// https://example.org/.well-known/openpgpkey/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe
}

// A directory answer with a revoked key and a valid one: the valid one
// is chosen, and the revoked one is listed with the reason.
func ExampleSelect() {
	revoked, _ := os.ReadFile("testdata/revoked-2025-ed25519.asc")
	valid, _ := os.ReadFile("testdata/valid-2023-rsa3072.asc")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	key, rejected, err := wkd.Select(append(revoked, valid...), "joe@example.org", now)
	if err != nil {
		fmt.Println(err)
		return
	}
	for name := range key.Identities {
		fmt.Println("chosen:", name)
	}
	fmt.Println("rejected:", len(rejected))

	_, _, err = wkd.Select(revoked, "joe@example.org", now)
	fmt.Println(errors.Is(err, wkd.ErrNoKey))
	// Output:
	// chosen: Valid 2023 Joe <joe@example.org>
	// rejected: 1
	// true
}

// A lookup. Caliop passes a dialer and an address check that go through
// its own DNS servers (resolver.Resolver.Dialer); the system resolver
// stands in for both here. (Not run: it needs the network.)
func ExampleClient_Lookup() {
	var dialer net.Dialer
	c := &wkd.Client{
		DialContext: dialer.DialContext,
		HasAddress: func(ctx context.Context, host string) (bool, error) {
			_, err := net.DefaultResolver.LookupIPAddr(ctx, host)
			var dnsErr *net.DNSError
			if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
				return false, nil // NXDOMAIN or NODATA
			}
			return err == nil, err
		},
	}
	l, err := c.Lookup(context.Background(), "joe@example.org")
	switch {
	case errors.Is(err, wkd.ErrNoKey):
		fmt.Println("no usable key: send unencrypted", l.Rejected)
	case errors.Is(err, wkd.ErrUnknown):
		fmt.Println("lookup failed, try again later:", err)
	default:
		fmt.Println("encrypt to", l.Fingerprint, "found by the", l.Method, "method")
	}
}
