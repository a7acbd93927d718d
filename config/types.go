package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Level is a security level name as written in the file.
type Level string

// The levels of DESIGN.md, weakest first.
const (
	LevelNone    Level = "none"
	LevelEncrypt Level = "encrypt"
	LevelVerify  Level = "verify"
	LevelMTASTS  Level = "mta-sts"
	LevelDANE    Level = "dane"
)

// UnmarshalYAML accepts one of the level names.
func (l *Level) UnmarshalYAML(n *yaml.Node) error {
	switch v := Level(strings.ToLower(n.Value)); v {
	case LevelNone, LevelEncrypt, LevelVerify, LevelMTASTS, LevelDANE:
		*l = v
		return nil
	}
	return fmt.Errorf("line %d: %q is not a level (none, encrypt, verify, mta-sts, dane)", n.Line, n.Value)
}

// TLSVersion is a minimum TLS version, "1.2" or "1.3".
type TLSVersion uint16

// The versions a minimum may name; older ones are never accepted.
const (
	TLS12 TLSVersion = 0x0303
	TLS13 TLSVersion = 0x0304
)

// UnmarshalYAML accepts "1.2" or "1.3".
func (v *TLSVersion) UnmarshalYAML(n *yaml.Node) error {
	switch strings.TrimPrefix(strings.ToLower(n.Value), "tls") {
	case "1.2":
		*v = TLS12
	case "1.3":
		*v = TLS13
	default:
		return fmt.Errorf("line %d: %q is not a TLS version Caliop accepts as a minimum (1.2 or 1.3)", n.Line, n.Value)
	}
	return nil
}

// String returns "1.2" or "1.3".
func (v TLSVersion) String() string {
	if v == TLS13 {
		return "1.3"
	}
	return "1.2"
}

// Duration is a time.Duration written as "90s", "5m".
type Duration time.Duration

// UnmarshalYAML parses a Go duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if days, ok := strings.CutSuffix(n.Value, "d"); ok {
		if v, err := strconv.Atoi(days); err == nil && v >= 0 && v <= 100000 {
			*d = Duration(time.Duration(v) * 24 * time.Hour)
			return nil
		}
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (write 90s, 5m, 1h, 60d)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// ByteSize is a size in bytes, written plain or with a KiB/MiB/GiB suffix.
type ByteSize int64

// UnmarshalYAML parses "52428800", "50MiB", "512KiB".
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	s := strings.TrimSpace(n.Value)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > (1<<40)/mult {
		return fmt.Errorf("line %d: %q is not a size (write 52428800, 50MiB or 512KiB)", n.Line, n.Value)
	}
	*b = ByteSize(v * mult)
	return nil
}

// Prefix is a network in CIDR notation; a bare address means that host.
type Prefix struct{ netip.Prefix }

// UnmarshalYAML parses "10.0.0.0/8", "::1/128" or "192.0.2.1".
func (p *Prefix) UnmarshalYAML(n *yaml.Node) error {
	if a, err := netip.ParseAddr(n.Value); err == nil {
		p.Prefix = netip.PrefixFrom(a, a.BitLen())
		return nil
	}
	v, err := netip.ParsePrefix(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a network (write 192.0.2.0/24 or 2001:db8::/32)", n.Line, n.Value)
	}
	p.Prefix = v.Masked()
	return nil
}

// MarshalYAML writes "1.2" or "1.3" (caliop config show).
func (v TLSVersion) MarshalYAML() (any, error) {
	if v == 0 {
		return "", nil
	}
	return v.String(), nil
}

// MarshalYAML writes a Go duration ("5m0s").
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// MarshalYAML writes the size with the largest exact unit ("50MiB").
func (b ByteSize) MarshalYAML() (any, error) {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if v := int64(b); v != 0 && v%u.mult == 0 {
			return strconv.FormatInt(v/u.mult, 10) + u.suffix, nil
		}
	}
	return int64(b), nil
}

// MarshalYAML writes the network in CIDR notation.
func (p Prefix) MarshalYAML() (any, error) { return p.Prefix.String(), nil }

// YAML is the configuration as a file would write it (caliop config
// show): every key, defaults filled in; a password in cluster.redis is
// shown as "xxxxx".
func (c *Config) YAML() ([]byte, error) {
	out := *c
	if u, err := url.Parse(out.Cluster.Redis); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			out.Cluster.Redis = u.String()
		}
	}
	return yaml.Marshal(&out)
}
