package config

import (
	"fmt"
	"net"
)

// checkListeners refuses two listeners on one address: the same port on
// the same host, or on any host when one of them listens on all of them.
func (c *Config) checkListeners() error {
	type listener struct{ key, addr string }
	all := []listener{{"outbound.smtp", c.Outbound.SMTP}, {"outbound.lmtp", c.Outbound.LMTP}, {"metrics.listen", c.Metrics.Listen}}
	if in := c.Inbound; in.Listen != "" {
		all = append(all, listener{"inbound.listen", in.Listen}, listener{"inbound.https_listen", in.HTTPSListen})
		if in.TLS.ACME != nil && in.TLS.ACME.Challenge == "http-01" {
			all = append(all, listener{"inbound.tls.acme.http_listen", in.TLS.ACME.HTTPListen})
		}
	}
	seen := []listener{}
	for _, l := range all {
		host, port, err := net.SplitHostPort(l.addr)
		if l.addr == "" || err != nil || port == "0" {
			continue
		}
		for _, s := range seen {
			h, p, _ := net.SplitHostPort(s.addr)
			if p == port && (h == host || anyHost(h) || anyHost(host)) {
				return fmt.Errorf("%w: %s and %s both listen on %s: give each its own port", ErrInvalid, s.key, l.key, l.addr)
			}
		}
		seen = append(seen, l)
	}
	return nil
}

// anyHost reports a listen host that means every address.
func anyHost(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
