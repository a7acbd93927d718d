package main

import (
	"fmt"
	"strings"

	"github.com/miekg/dns"

	"github.com/caliop/relay/internal/testworld/dnstest"
)

// startDNS serves the benchmark's one destination domain: an MX naming
// mx.<domain>, whose A record is 127.0.0.1, and the zone's SOA so that
// negative answers (no AAAA, TXT, TLSA: no DANE, no MTA-STS) can be cached
// as on the Internet (RFC 2308 §5).
func startDNS(domain string) (*dnstest.Server, error) {
	s, err := dnstest.New()
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	zone := dns.Fqdn(strings.ToLower(domain))
	s.Add(
		zone+" 3600 IN SOA ns."+zone+" hostmaster."+zone+" 1 3600 600 86400 300",
		zone+" 300 IN MX 10 mx."+zone,
		"mx."+zone+" 300 IN A 127.0.0.1",
	)
	return s, nil
}

// queryCounts groups the questions a server received: "TYPE name" → count.
func queryCounts(qs []dns.Question) map[string]int64 {
	m := make(map[string]int64)
	for _, q := range qs {
		m[dns.Type(q.Qtype).String()+" "+strings.ToLower(q.Name)]++
	}
	return m
}
