// Package config loads and checks Caliop's YAML configuration file.
//
// Every key is documented in README.md ("Configuration reference"). A bad
// file yields one error naming the key, its line and the problem; nothing
// is started on such an error.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
	"golang.org/x/net/idna"

	"github.com/caliop/relay/address"

	"github.com/caliop/relay/resolver"
)

// ErrInvalid wraps every problem found in a configuration file.
var ErrInvalid = errors.New("config")

// Config is the whole configuration, after defaults are applied.
type Config struct {
	Hostname string   `yaml:"hostname"`
	DataDir  string   `yaml:"data_dir"`
	DNS      DNS      `yaml:"dns"`
	Outbound Outbound `yaml:"outbound"`
	Inbound  Inbound  `yaml:"inbound"`
	PGP      PGP      `yaml:"pgp"`
	TLSRPT   TLSRPT   `yaml:"tlsrpt"`
	Metrics  Metrics  `yaml:"metrics"`
	Log      Log      `yaml:"log"`
	Cluster  Cluster  `yaml:"cluster"`
}

// DNS selects the servers every lookup goes to.
type DNS struct {
	Servers []string `yaml:"servers"`
	// TrustAD trusts the AD bit from non-loopback servers too.
	TrustAD bool     `yaml:"trust_ad"`
	Timeout Duration `yaml:"timeout"`
	// CacheSize is how many answers are kept for their TTL; 0 keeps none.
	CacheSize int `yaml:"cache_size"`
}

// Outbound configures the listeners that take mail from the local MTA and
// the delivery to destination MXs.
type Outbound struct {
	SMTP            string   `yaml:"smtp"`
	LMTP            string   `yaml:"lmtp"`
	TrustedNetworks []Prefix `yaml:"trusted_networks"`
	// MXPort is the destination port; only tests change it.
	MXPort          int                     `yaml:"mx_port"`
	Default         Level                   `yaml:"default"`
	MinTLS          TLSVersion              `yaml:"min_tls"`
	DeliveryTimeout Duration                `yaml:"delivery_timeout"`
	ConnectTimeout  Duration                `yaml:"connect_timeout"`
	GreetingTimeout Duration                `yaml:"greeting_timeout"`
	MaxMessageSize  ByteSize                `yaml:"max_message_size"`
	MaxLine         int                     `yaml:"max_line"`
	MemoryBuffer    ByteSize                `yaml:"memory_buffer"`
	Domains         map[string]DomainPolicy `yaml:"domains"`
	TLS             CertFiles               `yaml:"tls"`
	Auth            Auth                    `yaml:"auth"`
	Limits          OutboundLimits          `yaml:"limits"`
	Reuse           Reuse                   `yaml:"reuse"`
	// Parallel bounds the destination domains one LMTP transaction
	// delivers to at once.
	Parallel int `yaml:"parallel"`
	// HonourTLSRequiredNo lets "TLS-Required: No" (RFC 8689 §5) set DANE
	// and MTA-STS aside for its message (LMTP mode; TLS still required).
	HonourTLSRequiredNo bool `yaml:"honour_tls_required_no"`
}

// DomainPolicy is a local override for one destination domain.
type DomainPolicy struct {
	Level  Level      `yaml:"level"`
	MinTLS TLSVersion `yaml:"min_tls"`
}

// CertFiles names a PEM certificate chain and its key.
type CertFiles struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Auth lists SMTP AUTH users (name → bcrypt hash) and bounds password
// guessing per client address: past MaxFailuresPerIP failures within
// FailureWindow, AUTH gets 454 4.7.0 unchecked.
type Auth struct {
	Users            map[string]string `yaml:"users"`
	MaxFailuresPerIP int               `yaml:"max_failures_per_ip"`
	FailureWindow    Duration          `yaml:"failure_window"`
}

// OutboundLimits bound the connections the SMTP and LMTP listeners take
// together: in all, per trusted client address, per other address.
type OutboundLimits struct {
	MaxConnections  int `yaml:"max_connections"`
	MaxPerTrustedIP int `yaml:"max_per_trusted_ip"`
	MaxPerIP        int `yaml:"max_per_ip"`
}

// Reuse bounds downstream connection caching. MaxMessages defaults to
// 500, as Exim's connection_max_messages: a TLS handshake per 100
// messages cost 6% of the relay's throughput, per 500 about 1%.
type Reuse struct {
	Idle        Duration `yaml:"idle"`
	MaxMessages int      `yaml:"max_messages"`
}

// Metrics configures the Prometheus listener.
type Metrics struct {
	Listen string `yaml:"listen"`
	// Domains always get their own domain label value.
	Domains []string `yaml:"domains"`
	// TopDomains is how many other observed domains get their own value.
	TopDomains int `yaml:"top_domains"`
	// Providers group hosted domains by MX host suffix: ".google.com" →
	// "google".
	Providers map[string]string `yaml:"providers"`
}

// TLSRPT configures the TLS-RPT reports Caliop sends (RFC 8460).
type TLSRPT struct {
	// Enabled sends a daily report to every domain that asks for one.
	Enabled          bool   `yaml:"enabled"`
	OrganizationName string `yaml:"organization"`
	ContactInfo      string `yaml:"contact"`
	// From is the sender address of mailed reports.
	From string `yaml:"from"`
}

// Log configures zap.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // json | console
}

// Defaults is the embedded configuration used when no file is given.
func Defaults() *Config {
	host, _ := os.Hostname()
	return &Config{
		Hostname: host,
		DataDir:  "./caliop-data",
		DNS:      DNS{Timeout: Duration(5 * time.Second), CacheSize: 10000},
		Outbound: Outbound{
			SMTP:            "127.0.0.1:10025",
			LMTP:            "127.0.0.1:10024",
			TrustedNetworks: []Prefix{{netip.MustParsePrefix("127.0.0.0/8")}, {netip.MustParsePrefix("::1/128")}},
			MXPort:          25,
			Default:         LevelEncrypt,
			MinTLS:          TLS12,
			DeliveryTimeout: Duration(5 * time.Minute),
			ConnectTimeout:  Duration(30 * time.Second),
			GreetingTimeout: Duration(30 * time.Second),
			MaxMessageSize:  50 << 20,
			MaxLine:         2000,
			MemoryBuffer:    1 << 20,
			Reuse:           Reuse{Idle: Duration(10 * time.Second), MaxMessages: 500},
			Auth:            Auth{MaxFailuresPerIP: 10, FailureWindow: Duration(10 * time.Minute)},
			Limits:          OutboundLimits{MaxConnections: 1000, MaxPerTrustedIP: 200, MaxPerIP: 20},
			Parallel:        8,
		},
		Inbound: inboundDefaults(),
		PGP:     pgpDefaults(),
		Metrics: Metrics{Listen: "127.0.0.1:9464", TopDomains: 50},
		Log:     Log{Level: "info", Format: "json"},
		Cluster: clusterDefaults(),
	}
}

// finish checks values that depend on each other and fills dynamic defaults.
func (c *Config) finish() error {
	bad := func(key, format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, key, fmt.Sprintf(format, a...))
	}
	if c.Hostname == "" || !isHostname(c.Hostname) {
		return bad("hostname", "%q is not a host name (set hostname: relay.example.net)", c.Hostname)
	}
	c.Hostname = strings.ToLower(c.Hostname)
	if c.DataDir == "" {
		return bad("data_dir", "must not be empty")
	}
	if _, err := zapcore.ParseLevel(c.Log.Level); err != nil {
		return bad("log.level", "%q: debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "console" {
		return bad("log.format", "%q: json or console", c.Log.Format)
	}
	if len(c.DNS.Servers) == 0 {
		s, err := resolver.ServersFromResolvConf("/etc/resolv.conf")
		if err != nil {
			return bad("dns.servers", "not set and %v", err)
		}
		c.DNS.Servers = s
	}
	for i, s := range c.DNS.Servers {
		if !strings.Contains(s, ":") || strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
			s = net.JoinHostPort(s, "53")
		}
		host, _, err := net.SplitHostPort(s)
		if err != nil {
			return bad(fmt.Sprintf("dns.servers[%d]", i), "%q: %v", c.DNS.Servers[i], err)
		}
		if _, err := netip.ParseAddr(host); err != nil {
			return bad(fmt.Sprintf("dns.servers[%d]", i), "%q is not an IP address (a resolver must be reached without DNS)", host)
		}
		c.DNS.Servers[i] = s
	}
	o := &c.Outbound
	if o.SMTP == "" && o.LMTP == "" && c.Inbound.Listen == "" {
		return bad("outbound", "smtp and lmtp are both empty, and inbound.listen too: nothing would listen")
	}
	for key, addr := range map[string]string{"outbound.smtp": o.SMTP, "outbound.lmtp": o.LMTP, "metrics.listen": c.Metrics.Listen} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return bad(key, "%q is not host:port: %v", addr, err)
		}
	}
	if o.MXPort < 1 || o.MXPort > 65535 {
		return bad("outbound.mx_port", "%d is not a TCP port", o.MXPort)
	}
	if o.Default != LevelEncrypt && o.Default != LevelVerify {
		return bad("outbound.default", "%q: must be encrypt or verify (plaintext is only for a named domain)", o.Default)
	}
	for name, v := range map[string]Duration{"outbound.delivery_timeout": o.DeliveryTimeout, "outbound.connect_timeout": o.ConnectTimeout, "outbound.greeting_timeout": o.GreetingTimeout, "dns.timeout": c.DNS.Timeout, "outbound.reuse.idle": o.Reuse.Idle} {
		if v < 0 || v == 0 && name != "outbound.reuse.idle" {
			return bad(name, "must be positive")
		}
	}
	if c.DNS.CacheSize < 0 {
		return bad("dns.cache_size", "%d: must be 0 (no cache) or more", c.DNS.CacheSize)
	}
	if o.DeliveryTimeout > Duration(10*time.Minute) {
		return bad("outbound.delivery_timeout", "%v is longer than an MTA waits for the end of DATA (10m)", time.Duration(o.DeliveryTimeout))
	}
	if o.MaxMessageSize <= 0 {
		return bad("outbound.max_message_size", "must be positive")
	}
	if o.MaxLine < 1000 || o.MaxLine > 64<<10 {
		// RFC 5321 §4.5.3.1.6: a text line may be 1000 octets.
		return bad("outbound.max_line", "%d: between 1000 (RFC 5321 §4.5.3.1.6) and 65536", o.MaxLine)
	}
	if o.Parallel < 1 {
		return bad("outbound.parallel", "must be at least 1")
	}
	if o.Reuse.MaxMessages < 0 {
		return bad("outbound.reuse.max_messages", "must not be negative")
	}
	if (o.TLS.Cert == "") != (o.TLS.Key == "") {
		return bad("outbound.tls", "cert and key go together")
	}
	for key, v := range map[string]int{"outbound.limits.max_connections": o.Limits.MaxConnections, "outbound.limits.max_per_trusted_ip": o.Limits.MaxPerTrustedIP, "outbound.limits.max_per_ip": o.Limits.MaxPerIP, "outbound.auth.max_failures_per_ip": o.Auth.MaxFailuresPerIP} {
		if v < 1 {
			return bad(key, "%d: must be at least 1", v)
		}
	}
	if o.Auth.FailureWindow <= 0 {
		return bad("outbound.auth.failure_window", "must be positive")
	}
	if err := o.checkUsers(); err != nil {
		return err
	}
	if err := o.checkDomains(); err != nil {
		return err
	}
	if err := c.finishInbound(); err != nil {
		return err
	}
	if err := c.checkListeners(); err != nil {
		return err
	}
	if err := c.finishPGP(); err != nil {
		return err
	}
	if err := c.finishCluster(); err != nil {
		return err
	}
	return c.finishMetrics()
}

// finishMetrics checks the label bounds and the TLS-RPT identity.
func (c *Config) finishMetrics() error {
	m := &c.Metrics
	if m.TopDomains < 0 || m.TopDomains > 1000 {
		return fmt.Errorf("%w: metrics.top_domains: %d: between 0 and 1000 (each is a set of series)", ErrInvalid, m.TopDomains)
	}
	for i, d := range m.Domains {
		a, err := idna.Lookup.ToASCII(strings.TrimSuffix(d, "."))
		if err != nil || !isHostname(a) {
			return fmt.Errorf("%w: metrics.domains[%d]: %q is not a domain name", ErrInvalid, i, d)
		}
		m.Domains[i] = strings.ToLower(a)
	}
	for suffix, name := range m.Providers {
		if !strings.HasPrefix(suffix, ".") || !isHostname(strings.TrimPrefix(suffix, ".")) || name == "" {
			return fmt.Errorf("%w: metrics.providers.%s: want \".mx-suffix.example: name\"", ErrInvalid, suffix)
		}
	}
	// Always, not only when sending: RFC 8460 §4.4 requires both fields
	// in every report, and caliop tlsrpt --print shows one.
	t := &c.TLSRPT
	if t.OrganizationName == "" {
		t.OrganizationName = c.Hostname
	}
	if t.From == "" {
		t.From = "tlsrpt-noreply@" + c.Hostname
	}
	if t.ContactInfo == "" {
		t.ContactInfo = "postmaster@" + c.Hostname
	}
	if a, err := address.Parse(t.From, address.Sender, false); err != nil || a.IsNull() || a.IsLiteral() {
		return fmt.Errorf("%w: tlsrpt.from: %q is not a mail address (local@domain)", ErrInvalid, t.From)
	}
	return nil
}

var typeOfConfig = typeOf[Config]()

var lineRE = regexp.MustCompile(`^line (\d+)`)
