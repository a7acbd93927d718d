package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestInbound(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(cert, []byte("x"), 0o600)
	os.WriteFile(key, []byte("x"), 0o600)
	base := "hostname: relay.example.net\ndns: {servers: [\"127.0.0.1\"]}\n"
	c, err := Parse([]byte(base + "inbound:\n  listen: \":25\"\n  domains: [Example.NET, bücher.example]\n  tls: {cert: " + cert + ", key: " + key + "}\n  require_tls_from: [partner.example]\n"))
	if err != nil {
		t.Fatal(err)
	}
	in := c.Inbound
	if in.Hostname != "relay.example.net" || strings.Join(in.Domains, ",") != "example.net,xn--bcher-kva.example" || in.NextHop != "127.0.0.1:10026" {
		t.Errorf("inbound = %+v", in)
	}
	if in.MTASTS.Mode != "enforce" || strings.Join(in.MTASTS.MX, ",") != "relay.example.net" || time.Duration(in.MTASTS.MaxAge) != 7*24*time.Hour {
		t.Errorf("mta_sts defaults = %+v", in.MTASTS)
	}
	c, err = Parse([]byte(base + "inbound:\n  listen: \":25\"\n  domains: [example.net]\n  tls:\n    acme: {email: ops@example.net}\n"))
	if err != nil || c.Inbound.TLS.ACME.Directory != DefaultACMEDirectory || c.Inbound.TLS.ACME.Challenge != "tls-alpn-01" {
		t.Errorf("acme defaults: %+v, %v", c.Inbound.TLS.ACME, err)
	}

	for _, tc := range []struct{ src, want string }{
		{"inbound:\n  listen: \":25\"\n  domains: [example.net]\n", "inbound.tls: set cert and key, or acme"},
		{"inbound:\n  listen: \":25\"\n  tls: {cert: " + cert + ", key: " + key + "}\n", "inbound.domains: no domain"},
		{"inbound:\n  listen: \":25\"\n  domains: [\"bad domain\"]\n  tls: {cert: " + cert + ", key: " + key + "}\n", `inbound.domains[0]: "bad domain" is not a domain name`},
		{"inbound:\n  listen: \":25\"\n  domains: [example.net]\n  tls: {cert: /nonexistent.pem, key: " + key + "}\n", "inbound.tls.cert: stat /nonexistent.pem"},
		{"inbound:\n  listen: \":25\"\n  domains: [example.net]\n  tls:\n    acme: {challenge: dns-01}\n", `inbound.tls.acme.challenge: "dns-01": tls-alpn-01 or http-01`},
		{"inbound:\n  listen: \":25\"\n  domains: [example.net]\n  https_listen: \"\"\n  tls:\n    acme: {}\n", "inbound.tls.acme.challenge: tls-alpn-01 needs https_listen"},
		{"inbound:\n  listen: \":25\"\n  domains: [example.net]\n  tls: {cert: " + cert + ", key: " + key + "}\n  mta_sts: {mode: strict}\n", `inbound.mta_sts.mode: "strict"`},
		{"inbound:\n  listen: \":25\"\n  domains: [example.net]\n  tls: {cert: " + cert + ", key: " + key + "}\n  mta_sts: {max_age: 400d}\n", "inbound.mta_sts.max_age"},
		{"inbound:\n  listen: \":25\"\n  domains: [example.net]\n  tls: {cert: " + cert + ", key: " + key + "}\n  require_tls: some\n", `inbound.require_tls: "some"`},
		{"inbound:\n  listen: \":25\"\n  domains: [example.net]\n  tls: {cert: " + cert + ", key: " + key + "}\n  limits: {max_line: 512}\n", "inbound.limits.max_line: 512: at least 1000"},
		{"inbound:\n  listen: \":25\"\n  domains: [example.net]\n  tls: {cert: " + cert + ", key: " + key + "}\n  tls_rpt: {rua: [\"tlsrpt@example.net\"]}\n", "inbound.tls_rpt.rua[0]"},
		{"inbound:\n  listen: \":25\"\n  domains: [example.net]\n  tls: {cert: " + cert + ", key: " + key + "}\n  limitz: {}\n", "inbound.limitz (line 7): unknown key"},
	} {
		_, err := Parse([]byte(base + tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.src, err, tc.want)
		}
	}
}

// TestNextHopSource: the source defaults to the listener's address when
// it names one of the next hop's family; an explicit one is checked.
func TestNextHopSource(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(cert, []byte("x"), 0o600)
	os.WriteFile(key, []byte("x"), 0o600)
	base := "hostname: relay.example.net\ndns: {servers: [\"127.0.0.1\"]}\ninbound:\n  domains: [example.net]\n  tls: {cert: " + cert + ", key: " + key + "}\n"
	for _, tc := range []struct{ src, source, err string }{
		{"  listen: \":25\"\n", "", ""},
		{"  listen: \"0.0.0.0:25\"\n", "", ""},
		{"  listen: \"192.0.2.5:25\"\n", "192.0.2.5", ""},
		{"  listen: \"[2001:db8::5]:25\"\n", "", ""}, // next hop 127.0.0.1: another family
		{"  listen: \"[2001:db8::5]:25\"\n  next_hop: \"[::1]:10026\"\n", "2001:db8::5", ""},
		{"  listen: \"192.0.2.5:25\"\n  next_hop_source: 127.0.0.1\n", "127.0.0.1", ""},
		{"  listen: \":25\"\n  next_hop_source: localhost\n", "", `inbound.next_hop_source: "localhost" is not a unicast IP address`},
		{"  listen: \":25\"\n  next_hop_source: \"::1\"\n", "", "inbound.next_hop_source: ::1 cannot reach next_hop 127.0.0.1:10026"},
	} {
		c, err := Parse([]byte(base + tc.src))
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.src, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.src, err)
		case c.Inbound.NextHopSource != tc.source || !c.Inbound.NextHopXCLIENT:
			t.Errorf("%q: next_hop_source %q, xclient %v; want %q, true", tc.src, c.Inbound.NextHopSource, c.Inbound.NextHopXCLIENT, tc.source)
		}
	}
	c, err := Parse([]byte(base + "  listen: \":25\"\n  next_hop_xclient: false\n"))
	if err != nil || c.Inbound.NextHopXCLIENT {
		t.Errorf("next_hop_xclient: false → %v, %v", c.Inbound.NextHopXCLIENT, err)
	}
}

func TestNextHopTimeout(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(cert, []byte("x"), 0o600)
	os.WriteFile(key, []byte("x"), 0o600)
	base := "hostname: relay.example.net\ndns: {servers: [\"127.0.0.1\"]}\ninbound:\n  listen: \":25\"\n  domains: [example.net]\n  tls: {cert: " + cert + ", key: " + key + "}\n"
	c, err := Parse([]byte(base))
	if err != nil || time.Duration(c.Inbound.NextHopTimeout) != time.Minute {
		t.Errorf("default next_hop_timeout: %v, %v; want 1m", c.Inbound.NextHopTimeout, err)
	}
	if _, err := Parse([]byte(base + "  next_hop_timeout: 0s\n")); err == nil || !strings.Contains(err.Error(), "inbound.next_hop_timeout: must be positive") {
		t.Errorf("next_hop_timeout 0s: %v", err)
	}
}

// TestRequireTLSFromSubdomains: a leading dot is kept (it stands for the
// subdomains) and the rest normalised.
func TestRequireTLSFromSubdomains(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(cert, []byte("x"), 0o600)
	os.WriteFile(key, []byte("x"), 0o600)
	c, err := Parse([]byte("hostname: relay.example.net\ndns: {servers: [\"127.0.0.1\"]}\ninbound:\n  listen: \":25\"\n  domains: [example.net]\n  tls: {cert: " + cert + ", key: " + key + "}\n  require_tls_from: [Partner.Example, .Bücher.Example]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Inbound.RequireTLSFrom, ","); got != "partner.example,.xn--bcher-kva.example" {
		t.Errorf("require_tls_from = %s", got)
	}
}
