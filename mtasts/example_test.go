package mtasts_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/caliop/relay/mtasts"
)

// The TXT records at _mta-sts.<domain>: only the one starting with
// "v=STSv1" counts (RFC 8461 §3.1).
func ExampleSelectRecord() {
	rec, err := mtasts.SelectRecord([]string{
		"v=spf1 -all",
		"v=STSv1; id=20160831085700Z;",
	})
	fmt.Println(rec.ID, err)

	_, err = mtasts.SelectRecord([]string{"v=STSv1; id=1", "v=STSv1; id=2"})
	fmt.Println(errors.Is(err, mtasts.ErrMultipleRecords))
	// Output:
	// 20160831085700Z <nil>
	// true
}

// The RFC 8461 §3.2 example policy, and which MX hosts it admits (§4.1).
func ExamplePolicy_Admits() {
	body, err := os.ReadFile("testdata/rfc8461-3.2-policy.txt")
	if err != nil {
		panic(err)
	}
	p, err := mtasts.ParsePolicy(body)
	if err != nil {
		panic(err)
	}
	fmt.Println(p.Mode, p.MaxAge, p.MX)
	for _, mx := range []string{"mail.example.com", "mx1.example.net", "a.b.example.net", "mail.attacker.example"} {
		fmt.Println(mx, p.Admits(mx))
	}
	// Output:
	// enforce 168h0m0s [mail.example.com *.example.net backupmx.example.com]
	// mail.example.com true
	// mx1.example.net true
	// a.b.example.net false
	// mail.attacker.example false
}

// Discovery and fetch for one domain. The caller resolves through its own
// DNS servers; here the system resolver stands in for both the TXT lookup
// and the dialer. (Not run: it needs the network.)
func ExampleFetcher_Fetch() {
	ctx := context.Background()
	domain := "example.com"
	resolver := &net.Resolver{}
	txts, err := resolver.LookupTXT(ctx, "_mta-sts."+domain)
	if err != nil {
		fmt.Println("no record:", err)
		return
	}
	rec, err := mtasts.SelectRecord(txts)
	if err != nil {
		fmt.Println(err) // a cached policy still applies
		return
	}
	dialer := &net.Dialer{Resolver: resolver}
	f := &mtasts.Fetcher{DialContext: dialer.DialContext}
	p, err := f.Fetch(ctx, domain)
	switch {
	case errors.Is(err, mtasts.ErrWebPKI):
		fmt.Println("sts-webpki-invalid:", err)
	case errors.Is(err, mtasts.ErrPolicyInvalid):
		fmt.Println("sts-policy-invalid:", err)
	case err != nil:
		fmt.Println("sts-policy-fetch-error:", err)
	default:
		fmt.Println(rec.ID, p.Mode, p.Admits("mx1."+domain))
	}
}
