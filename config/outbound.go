package config

import (
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/net/idna"
)

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

// finish checks the outbound section.
func (o *Outbound) finish() error {
	for key, addr := range map[string]string{"outbound.smtp": o.SMTP, "outbound.lmtp": o.LMTP} {
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
	if err := o.checkNumbers(); err != nil {
		return err
	}
	if (o.TLS.Cert == "") != (o.TLS.Key == "") {
		return bad("outbound.tls", "cert and key go together")
	}
	if err := o.checkUsers(); err != nil {
		return err
	}
	return o.checkDomains()
}

// checkNumbers checks the timeouts, sizes and limits.
func (o *Outbound) checkNumbers() error {
	for name, v := range map[string]Duration{"outbound.delivery_timeout": o.DeliveryTimeout, "outbound.connect_timeout": o.ConnectTimeout, "outbound.greeting_timeout": o.GreetingTimeout, "outbound.reuse.idle": o.Reuse.Idle, "outbound.auth.failure_window": o.Auth.FailureWindow} {
		if v < 0 || v == 0 && name != "outbound.reuse.idle" {
			return bad(name, "must be positive")
		}
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
	for key, v := range map[string]int{"outbound.limits.max_connections": o.Limits.MaxConnections, "outbound.limits.max_per_trusted_ip": o.Limits.MaxPerTrustedIP, "outbound.limits.max_per_ip": o.Limits.MaxPerIP, "outbound.auth.max_failures_per_ip": o.Auth.MaxFailuresPerIP} {
		if v < 1 {
			return bad(key, "%d: must be at least 1", v)
		}
	}
	return nil
}

// checkUsers requires a bcrypt hash for every SMTP AUTH user.
func (o *Outbound) checkUsers() error {
	for user, hash := range o.Auth.Users {
		if user == "" {
			return fmt.Errorf("%w: outbound.auth.users: empty user name", ErrInvalid)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return fmt.Errorf("%w: outbound.auth.users.%s: not a bcrypt hash (make one with: htpasswd -nbB user pass): %v", ErrInvalid, user, err)
		}
	}
	return nil
}

// checkDomains normalises override domains to lowercase A-labels.
func (o *Outbound) checkDomains() error {
	out := make(map[string]DomainPolicy, len(o.Domains))
	for name, p := range o.Domains {
		key := "outbound.domains." + name
		d, err := idna.Lookup.ToASCII(strings.TrimSuffix(name, "."))
		if err != nil || !isHostname(d) {
			return fmt.Errorf("%w: %s: not a domain name", ErrInvalid, key)
		}
		switch p.Level {
		case "":
			return fmt.Errorf("%w: %s.level: missing (none, encrypt, verify, mta-sts or dane)", ErrInvalid, key)
		case LevelNone:
			if p.MinTLS != 0 {
				return fmt.Errorf("%w: %s.min_tls: contradicts level none", ErrInvalid, key)
			}
		}
		if p.MinTLS == 0 {
			p.MinTLS = o.MinTLS
		}
		if _, dup := out[d]; dup {
			return fmt.Errorf("%w: %s: listed twice", ErrInvalid, key)
		}
		out[d] = p
	}
	o.Domains = out
	return nil
}
