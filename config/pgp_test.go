package config

import (
	"strings"
	"testing"
)

func TestPGP(t *testing.T) {
	base := "hostname: relay.example.net\ndns: {servers: [\"127.0.0.1\"]}\n"
	c, err := Parse([]byte(base + "pgp:\n  destinations: {Bücher.example: required, Joe@Example.ORG: off}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.PGP.Mode != "opportunistic" || c.PGP.Destinations["xn--bcher-kva.example"] != "required" || c.PGP.Destinations["joe@example.org"] != "off" {
		t.Errorf("pgp = %+v", c.PGP)
	}
	for _, tc := range []struct{ src, want string }{
		{"pgp: {mode: always}\n", `pgp.mode: "always"`},
		{"pgp: {required: maybe}\n", `pgp.required: "maybe"`},
		{"pgp:\n  destinations: {example.org: sometimes}\n", `pgp.destinations.example.org: "sometimes"`},
		{"pgp:\n  destinations: {\"@example.org\": off}\n", "pgp.destinations.@example.org: not a domain or an address"},
	} {
		if _, err := Parse([]byte(base + tc.src)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.src, err, tc.want)
		}
	}
}

func TestMetricsAndTLSRPT(t *testing.T) {
	base := "hostname: relay.example.net\ndns: {servers: [\"127.0.0.1\"]}\n"
	c, err := Parse([]byte(base + "metrics:\n  domains: [Gmail.com]\n  providers: {.google.com: google}\ntlsrpt: {enabled: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Metrics.TopDomains != 50 || c.Metrics.Domains[0] != "gmail.com" || c.TLSRPT.From != "tlsrpt-noreply@relay.example.net" {
		t.Errorf("metrics %+v tlsrpt %+v", c.Metrics, c.TLSRPT)
	}
	for _, tc := range []struct{ src, want string }{
		{"metrics: {top_domains: 5000}\n", "metrics.top_domains: 5000"},
		{"metrics:\n  providers: {google.com: google}\n", "metrics.providers.google.com"},
	} {
		if _, err := Parse([]byte(base + tc.src)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.src, err, tc.want)
		}
	}
}
