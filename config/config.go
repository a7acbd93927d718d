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
	Learn    Learn    `yaml:"learn"`
	TLSRPT   TLSRPT   `yaml:"tlsrpt"`
	Metrics  Metrics  `yaml:"metrics"`
	Log      Log      `yaml:"log"`
	Cluster  Cluster  `yaml:"cluster"`
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
		DNS:      DNS{Timeout: Duration(5 * time.Second), CacheSize: 50000},
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
		Learn:   learnDefaults(),
		Metrics: Metrics{Listen: "127.0.0.1:9464", TopDomains: 50},
		Log:     Log{Level: "info", Format: "json"},
		Cluster: clusterDefaults(),
	}
}

// finish checks each section, and what spans sections, and fills
// dynamic defaults. bad makes the error of a key.
func (c *Config) finish() error {
	if err := c.finishTop(); err != nil {
		return err
	}
	if err := c.DNS.finish(); err != nil {
		return err
	}
	o := &c.Outbound
	if o.SMTP == "" && o.LMTP == "" && c.Inbound.Listen == "" {
		return bad("outbound", "smtp and lmtp are both empty, and inbound.listen too: nothing would listen")
	}
	for _, finish := range []func() error{o.finish, c.finishInbound, c.checkListeners, c.finishPGP, c.finishLearn, c.finishCluster, c.finishMetrics} {
		if err := finish(); err != nil {
			return err
		}
	}
	return nil
}

// bad is the error of a key: ErrInvalid, the key, the problem.
func bad(key, format string, a ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, key, fmt.Sprintf(format, a...))
}

// finishTop checks the top-level keys: hostname, data_dir, log.
func (c *Config) finishTop() error {
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
	return nil
}

// finishMetrics checks the label bounds and the TLS-RPT identity.
func (c *Config) finishMetrics() error {
	m := &c.Metrics
	if m.Listen != "" {
		if _, _, err := net.SplitHostPort(m.Listen); err != nil {
			return bad("metrics.listen", "%q is not host:port: %v", m.Listen, err)
		}
	}
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
