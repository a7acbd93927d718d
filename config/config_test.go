package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte("dns: {servers: [\"127.0.0.1\"]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	o := c.Outbound
	if o.SMTP != "127.0.0.1:10025" || o.LMTP != "127.0.0.1:10024" || c.Metrics.Listen != "127.0.0.1:9464" || c.DataDir != "./caliop-data" {
		t.Errorf("listeners %q %q %q, data %q", o.SMTP, o.LMTP, c.Metrics.Listen, c.DataDir)
	}
	if o.Default != LevelEncrypt || o.MinTLS != TLS12 || time.Duration(o.DeliveryTimeout) != 5*time.Minute || o.MaxMessageSize != 50<<20 {
		t.Errorf("default %v min %v timeout %v size %d", o.Default, o.MinTLS, o.DeliveryTimeout, o.MaxMessageSize)
	}
	if c.DNS.Servers[0] != "127.0.0.1:53" {
		t.Errorf("DNS server %q: port 53 not added", c.DNS.Servers[0])
	}
	if len(o.TrustedNetworks) != 2 || !o.TrustedNetworks[0].Contains(mustAddr("127.9.9.9")) {
		t.Errorf("trusted networks %v", o.TrustedNetworks)
	}
}

func TestFullFile(t *testing.T) {
	src := `
hostname: Relay.Example.NET
data_dir: /var/lib/caliop
dns:
  servers: ["127.0.0.1:5353", "[::1]:53"]
  trust_ad: true
outbound:
  smtp: "127.0.0.1:2525"
  lmtp: ""
  trusted_networks: ["10.0.0.0/8", "192.0.2.7"]
  mx_port: 2500
  default: verify
  min_tls: "1.3"
  delivery_timeout: 90s
  max_message_size: 10MiB
  domains:
    Partner.Example: {level: verify, min_tls: "1.3"}
    bücher.example: {level: encrypt}
    legacy.example: {level: none}
metrics:
  listen: "127.0.0.1:9000"
`
	c, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if c.Hostname != "relay.example.net" || c.Outbound.MXPort != 2500 || c.Outbound.MaxMessageSize != 10<<20 || c.Outbound.Default != LevelVerify {
		t.Errorf("%+v", c)
	}
	d := c.Outbound.Domains
	if d["partner.example"].MinTLS != TLS13 || d["xn--bcher-kva.example"].Level != LevelEncrypt || d["legacy.example"].Level != LevelNone {
		t.Errorf("domains %+v", d)
	}
	if d["xn--bcher-kva.example"].MinTLS != TLS13 {
		t.Errorf("domain without min_tls should inherit outbound.min_tls: %+v", d["xn--bcher-kva.example"])
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	tests := []struct{ src, want string }{
		{"outbound:\n  defualt: verify\n", "outbound.defualt (line 2): unknown key"},
		{"outbound:\n  delivery_timeout: soon\n", `outbound.delivery_timeout (line 2): "soon" is not a duration`},
		{"outbound:\n  default: none\n", "outbound.default: \"none\": must be encrypt or verify"},
		{"outbound:\n  default: plaintext\n", `outbound.default (line 2): "plaintext" is not a level`},
		{"outbound:\n  mx_port: many\n", `outbound.mx_port (line 2): want a whole number, got "many"`},
		{"outbound:\n  mx_port: 70000\n", "outbound.mx_port: 70000 is not a TCP port"},
		{"outbound:\n  min_tls: \"1.0\"\n", `outbound.min_tls (line 2): "1.0" is not a TLS version`},
		{"outbound:\n  trusted_networks: [\"10.0.0.0/33\"]\n", `outbound.trusted_networks[0] (line 2): "10.0.0.0/33" is not a network`},
		{"outbound:\n  trusted_networks: 10.0.0.0/8\n", "outbound.trusted_networks (line 2): expected a list"},
		{"outbound:\n  smtp: localhost\n", `outbound.smtp: "localhost" is not host:port`},
		{"outbound:\n  smtp: \"\"\n  lmtp: \"\"\n", "outbound: smtp and lmtp are both empty"},
		{"outbound:\n  delivery_timeout: 20m\n", "outbound.delivery_timeout: 20m0s is longer than"},
		{"outbound:\n  honour_tls_required_no: maybe\n", `outbound.honour_tls_required_no (line 2): want true or false, got "maybe"`},
		{"outbound:\n  parallel: eight\n", `outbound.parallel (line 2): want a whole number, got "eight"`},
		{"outbound:\n\tparallel: 8\n", "line 2: a tab in the indentation"},
		{"log: {level: loud}\n", `log.level: "loud": debug, info, warn or error`},
		{"log: {format: xml}\n", `log.format: "xml": json or console`},
		{"outbound: {smtp: \"127.0.0.1:2525\", lmtp: \"127.0.0.1:2525\"}\n", "outbound.smtp and outbound.lmtp both listen on 127.0.0.1:2525"},
		{"metrics: {listen: \":10025\"}\n", "outbound.smtp and metrics.listen both listen on :10025"},
		{"outbound:\n  domains:\n    partner.example: {level: mta-sts, min_tls: \"1.4\"}\n", `outbound.domains.partner.example.min_tls (line 3): "1.4" is not a TLS version`},
		{"outbound:\n  domains:\n    partner.example: {min_tls: \"1.3\"}\n", "outbound.domains.partner.example.level: missing"},
		{"outbound:\n  domains:\n    \"bad domain\": {level: verify}\n", "outbound.domains.bad domain: not a domain name"},
		{"outbound:\n  auth:\n    users: {mta: plain}\n", "outbound.auth.users.mta: not a bcrypt hash"},
		{"outbound:\n  tls: {cert: /x.pem}\n", "outbound.tls: cert and key go together"},
		{"dns:\n  servers: [\"dns.example:53\"]\n", `dns.servers[0]: "dns.example" is not an IP address`},
		{"dns:\n  cache_size: -5\n", "dns.cache_size: -5: must be 0 (no cache) or more"},
		{"hostname: \"bad host\"\n", `hostname: "bad host" is not a host name`},
		{"outbound: [1]\n", "outbound (line 1): expected a mapping"},
		{"key: [unclosed\n", "config: "},
	}
	for _, tc := range tests {
		src := tc.src
		if !strings.Contains(src, "dns:") {
			src += "dns: {servers: [\"127.0.0.1\"]}\n"
		}
		_, err := Parse([]byte(src))
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant …%s…", tc.src, err, tc.want)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.yml"))
	if !errors.Is(err, ErrInvalid) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v", err)
	}
}

// TestShippedExample keeps deploy/caliop.yml, which the Docker image uses,
// valid and saying what its comments say.
func TestShippedExample(t *testing.T) {
	c, err := Load(filepath.Join("..", "deploy", "caliop.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/var/lib/caliop" || c.Outbound.Default != LevelEncrypt {
		t.Errorf("data_dir %q, default %q", c.DataDir, c.Outbound.Default)
	}
	if d, ok := c.Outbound.Domains["partner.example"]; !ok || d.Level != LevelVerify {
		t.Errorf("partner.example override = %+v, %v", d, ok)
	}
}

// TestOutboundLimits: the listener and AUTH limits have defaults that
// never bite a local MTA, and refuse nonsense.
func TestOutboundLimits(t *testing.T) {
	base := "hostname: relay.example.net\ndns: {servers: [\"127.0.0.1\"]}\n"
	c, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	o := c.Outbound
	if o.Limits != (OutboundLimits{MaxConnections: 1000, MaxPerTrustedIP: 200, MaxPerIP: 20}) || o.Auth.MaxFailuresPerIP != 10 || time.Duration(o.Auth.FailureWindow) != 10*time.Minute {
		t.Errorf("defaults: limits %+v, auth %+v", o.Limits, o.Auth)
	}
	for src, want := range map[string]string{
		"outbound:\n  limits: {max_per_ip: 0}\n":         "outbound.limits.max_per_ip: 0: must be at least 1",
		"outbound:\n  auth: {max_failures_per_ip: -1}\n": "outbound.auth.max_failures_per_ip: -1",
		"outbound:\n  auth: {failure_window: 0s}\n":      "outbound.auth.failure_window: must be positive",
		"outbound:\n  limits: {max_connections: 0}\n":    "outbound.limits.max_connections",
		"outbound:\n  limits: {max_per_trusted_ip: 0}\n": "outbound.limits.max_per_trusted_ip",
	} {
		if _, err := Parse([]byte(base + src)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", src, err, want)
		}
	}
}

// TestLoadEmptyFile: an empty file, or one of comments only, is refused
// with a hint.
func TestLoadEmptyFile(t *testing.T) {
	for _, text := range []string{"", "\n\n", "# nothing yet\n---\n"} {
		f := filepath.Join(t.TempDir(), "c.yml")
		os.WriteFile(f, []byte(text), 0o644)
		if _, err := Load(f); err == nil || !strings.Contains(err.Error(), "is empty: write at least") {
			t.Errorf("%q: %v", text, err)
		}
	}
}

// TestLearnSection: the learn: section's defaults, days as a duration,
// and its checks.
func TestLearnSection(t *testing.T) {
	c, err := Parse([]byte("learn:\n  max_age: 90d\n  exclude: [Example.COM, .bulk.example]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if l := c.Learn; l.Mode != "report" || l.MinSessions != 20 || l.MinDays != 7 || time.Duration(l.MaxAge) != 90*24*time.Hour ||
		strings.Join(l.Exclude, ",") != "example.com,.bulk.example" {
		t.Errorf("learn = %+v", l)
	}
	for in, want := range map[string]string{
		"learn:\n  mode: strict\n":       `learn.mode: "strict"`,
		"learn:\n  max_age: 3d\n":        "learn.max_age",
		"learn:\n  min_sessions: 0\n":    "learn.min_sessions",
		"learn:\n  exclude: [\"a b\"]\n": "learn.exclude[0]",
	} {
		if _, err := Parse([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %s", in, err, want)
		}
	}
}
