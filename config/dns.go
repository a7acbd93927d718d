package config

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// DNS selects the servers every lookup goes to. No servers: those of
// /etc/resolv.conf, read when the relay starts (not by this package).
type DNS struct {
	Servers []string `yaml:"servers"`
	// TrustAD trusts the AD bit from non-loopback servers too.
	TrustAD bool     `yaml:"trust_ad"`
	Timeout Duration `yaml:"timeout"`
	// CacheSize is how many answers are kept for their TTL; 0 keeps none.
	CacheSize int `yaml:"cache_size"`
}

// finish checks the dns section and adds port 53 to servers without one.
func (d *DNS) finish() error {
	for i, s := range d.Servers {
		if !strings.Contains(s, ":") || strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
			s = net.JoinHostPort(s, "53")
		}
		host, _, err := net.SplitHostPort(s)
		if err != nil {
			return bad(fmt.Sprintf("dns.servers[%d]", i), "%q: %v", d.Servers[i], err)
		}
		if _, err := netip.ParseAddr(host); err != nil {
			return bad(fmt.Sprintf("dns.servers[%d]", i), "%q is not an IP address (a resolver must be reached without DNS)", host)
		}
		d.Servers[i] = s
	}
	if d.Timeout <= 0 {
		return bad("dns.timeout", "must be positive")
	}
	if d.CacheSize < 0 {
		return bad("dns.cache_size", "%d: must be 0 (no cache) or more", d.CacheSize)
	}
	return nil
}
