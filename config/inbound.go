package config

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/net/idna"
)

// Inbound configures the port-25 side: the listener in front of the MTA,
// its certificates, the MTA-STS policy it publishes and its limits. An
// empty Listen disables all of it.
type Inbound struct {
	Listen string `yaml:"listen"`
	// Hostname is the name in the greeting and on the certificate, the
	// MX host name senders use; default: the top-level hostname.
	Hostname string   `yaml:"hostname"`
	Domains  []string `yaml:"domains"`
	NextHop  string   `yaml:"next_hop"`
	// NextHopXCLIENT requires the next hop to offer XCLIENT (with ADDR)
	// to Caliop; false lets mail through to one that does not, which
	// then sees every client as Caliop.
	NextHopXCLIENT bool `yaml:"next_hop_xclient"`
	// NextHopSource is the IP address connections to the next hop are
	// made from; default: the address of Listen when it names one.
	NextHopSource string `yaml:"next_hop_source"`
	// NextHopTimeout bounds the connection, greeting and each command
	// toward the next hop.
	NextHopTimeout Duration `yaml:"next_hop_timeout"`
	// RequireTLSFrom lists sender domains that must use STARTTLS.
	RequireTLSFrom []string `yaml:"require_tls_from"`
	// RequireTLS "all" requires STARTTLS from every sender.
	RequireTLS     string        `yaml:"require_tls"`
	TLS            InboundTLS    `yaml:"tls"`
	HTTPSListen    string        `yaml:"https_listen"`
	MTASTS         InboundMTASTS `yaml:"mta_sts"`
	TLSRPT         InboundTLSRPT `yaml:"tls_rpt"`
	Limits         Limits        `yaml:"limits"`
	MaxMessageSize ByteSize      `yaml:"max_message_size"`
}

// InboundTLS gives the certificate: from files, or from ACME.
type InboundTLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	ACME *ACME  `yaml:"acme"`
}

// ACME configures certificates from an ACME CA (RFC 8555).
type ACME struct {
	Email     string `yaml:"email"`
	Directory string `yaml:"directory"`
	// Challenge is "tls-alpn-01" (on https_listen) or "http-01" (on
	// http_listen).
	Challenge  string `yaml:"challenge"`
	HTTPListen string `yaml:"http_listen"`
	// DirectoryCA is a PEM file of roots to trust for the directory's
	// HTTPS (a private ACME CA); empty means the system roots.
	DirectoryCA string `yaml:"directory_ca"`
}

// InboundMTASTS is the policy published for every inbound domain.
type InboundMTASTS struct {
	Mode   string   `yaml:"mode"`
	MX     []string `yaml:"mx"`
	MaxAge Duration `yaml:"max_age"`
}

// InboundTLSRPT is where senders send TLS reports (RFC 8460 §3).
type InboundTLSRPT struct {
	RUA []string `yaml:"rua"`
}

// Limits bound what one client, or all of them, may cost.
type Limits struct {
	MaxConnections int      `yaml:"max_connections"`
	MaxPerIP       int      `yaml:"max_per_ip"`
	MaxLine        int      `yaml:"max_line"`
	MaxErrors      int      `yaml:"max_errors"`
	CommandTimeout Duration `yaml:"command_timeout"`
	// MinDataRate is the slowest a client may send DATA, per second.
	MinDataRate ByteSize `yaml:"min_data_rate"`
}

// DefaultACMEDirectory is Let's Encrypt's production directory.
const DefaultACMEDirectory = "https://acme-v02.api.letsencrypt.org/directory"

func inboundDefaults() Inbound {
	return Inbound{
		NextHop:        "127.0.0.1:10026",
		NextHopXCLIENT: true,
		NextHopTimeout: Duration(time.Minute),
		HTTPSListen:    ":443",
		MTASTS:         InboundMTASTS{Mode: "enforce", MaxAge: Duration(7 * 24 * time.Hour)},
		Limits: Limits{
			MaxConnections: 1000, MaxPerIP: 20, MaxLine: 2000, MaxErrors: 10,
			CommandTimeout: Duration(5 * time.Minute), MinDataRate: 1 << 10,
		},
		MaxMessageSize: 50 << 20,
	}
}

// finishInbound checks the inbound section and fills its defaults.
func (c *Config) finishInbound() error {
	in := &c.Inbound
	if in.Listen == "" {
		return nil
	}
	bad := func(key, format string, a ...any) error {
		return fmt.Errorf("%w: inbound.%s: %s", ErrInvalid, key, fmt.Sprintf(format, a...))
	}
	if in.Hostname == "" {
		in.Hostname = c.Hostname
	}
	in.Hostname = strings.ToLower(in.Hostname)
	if !isHostname(in.Hostname) {
		return bad("hostname", "%q is not a host name", in.Hostname)
	}
	for key, addr := range map[string]string{"listen": in.Listen, "next_hop": in.NextHop, "https_listen": in.HTTPSListen} {
		if addr == "" && key != "https_listen" {
			return bad(key, "must be set")
		}
		if _, _, err := net.SplitHostPort(addr); addr != "" && err != nil {
			return bad(key, "%q is not host:port: %v", addr, err)
		}
	}
	if in.NextHopTimeout <= 0 {
		return bad("next_hop_timeout", "must be positive")
	}
	if err := in.finishSource(bad); err != nil {
		return err
	}
	if len(in.Domains) == 0 {
		return bad("domains", "no domain: the listener would refuse every recipient")
	}
	for _, list := range []struct {
		key   string
		names []string
	}{{"domains", in.Domains}, {"require_tls_from", in.RequireTLSFrom}} {
		for i, d := range list.names {
			// require_tls_from: ".partner.example" matches its
			// subdomains (Postfix's convention).
			dot := ""
			if list.key == "require_tls_from" && strings.HasPrefix(d, ".") {
				dot, d = ".", d[1:]
			}
			a, err := idna.Lookup.ToASCII(strings.TrimSuffix(d, "."))
			if err != nil || !isHostname(a) {
				return bad(fmt.Sprintf("%s[%d]", list.key, i), "%q is not a domain name", dot+d)
			}
			list.names[i] = dot + strings.ToLower(a)
		}
	}
	if in.RequireTLS != "" && in.RequireTLS != "all" {
		return bad("require_tls", "%q: only \"all\" (or nothing, to use require_tls_from)", in.RequireTLS)
	}
	if err := in.finishTLS(bad); err != nil {
		return err
	}
	if err := in.finishMTASTS(bad); err != nil {
		return err
	}
	return in.Limits.check(bad, in.MaxMessageSize)
}

// finishSource checks next_hop_source, or makes it the address of listen
// when that names one (not ":25", "0.0.0.0:25" or "[::]:25") of the
// next hop's address family.
func (in *Inbound) finishSource(bad func(string, string, ...any) error) error {
	hopHost, _, _ := net.SplitHostPort(in.NextHop)
	hop, hopErr := netip.ParseAddr(hopHost)
	sameFamily := func(a netip.Addr) bool { return hopErr != nil || a.Is4() == hop.Unmap().Is4() }
	if in.NextHopSource == "" {
		host, _, _ := net.SplitHostPort(in.Listen)
		if a, err := netip.ParseAddr(host); err == nil && !a.IsUnspecified() && sameFamily(a.Unmap()) {
			in.NextHopSource = a.Unmap().String()
		}
		return nil
	}
	a, err := netip.ParseAddr(in.NextHopSource)
	if err != nil || a.IsUnspecified() || a.Zone() != "" {
		return bad("next_hop_source", "%q is not a unicast IP address", in.NextHopSource)
	}
	a = a.Unmap()
	if !sameFamily(a) {
		return bad("next_hop_source", "%s cannot reach next_hop %s (another address family)", a, in.NextHop)
	}
	in.NextHopSource = a.String()
	return nil
}

func (in *Inbound) finishTLS(bad func(string, string, ...any) error) error {
	t := &in.TLS
	switch {
	case t.ACME != nil && t.Cert != "":
		return bad("tls", "cert/key and acme exclude each other")
	case t.ACME == nil && (t.Cert == "" || t.Key == ""):
		return bad("tls", "set cert and key, or acme: STARTTLS is not optional")
	case t.ACME == nil:
		for _, kf := range [][2]string{{"tls.cert", t.Cert}, {"tls.key", t.Key}} {
			if _, err := os.Stat(kf[1]); err != nil {
				return bad(kf[0], "%v", err)
			}
		}
		return nil
	}
	a := t.ACME
	if a.Directory == "" {
		a.Directory = DefaultACMEDirectory
	}
	if !strings.HasPrefix(a.Directory, "https://") {
		return bad("tls.acme.directory", "%q is not an https URL", a.Directory)
	}
	switch a.Challenge {
	case "", "tls-alpn-01":
		a.Challenge = "tls-alpn-01"
		if in.HTTPSListen == "" {
			return bad("tls.acme.challenge", "tls-alpn-01 needs https_listen")
		}
	case "http-01":
		if a.HTTPListen == "" {
			a.HTTPListen = ":80"
		}
		if _, _, err := net.SplitHostPort(a.HTTPListen); err != nil {
			return bad("tls.acme.http_listen", "%q is not host:port: %v", a.HTTPListen, err)
		}
	default:
		return bad("tls.acme.challenge", "%q: tls-alpn-01 or http-01", a.Challenge)
	}
	if a.DirectoryCA != "" {
		if _, err := os.Stat(a.DirectoryCA); err != nil {
			return bad("tls.acme.directory_ca", "%v", err)
		}
	}
	return nil
}

func (in *Inbound) finishMTASTS(bad func(string, string, ...any) error) error {
	m := &in.MTASTS
	switch m.Mode {
	case "enforce", "testing", "none":
	default:
		return bad("mta_sts.mode", "%q: enforce, testing or none", m.Mode)
	}
	if len(m.MX) == 0 {
		m.MX = []string{in.Hostname}
	}
	for i, mx := range m.MX {
		if !isHostname(strings.TrimPrefix(mx, "*.")) {
			return bad(fmt.Sprintf("mta_sts.mx[%d]", i), "%q is not a host name or *.domain pattern", mx)
		}
		m.MX[i] = strings.ToLower(mx)
	}
	if m.MaxAge < Duration(time.Second) || m.MaxAge > Duration(31557600*time.Second) {
		return bad("mta_sts.max_age", "%v: between 1s and 31557600s (RFC 8461 §3.2)", time.Duration(m.MaxAge))
	}
	for i, u := range in.TLSRPT.RUA {
		if !strings.HasPrefix(u, "mailto:") && !strings.HasPrefix(u, "https://") {
			return bad(fmt.Sprintf("tls_rpt.rua[%d]", i), "%q: a mailto: or https: URI (RFC 8460 §3)", u)
		}
	}
	return nil
}

func (l Limits) check(bad func(string, string, ...any) error, size ByteSize) error {
	for key, v := range map[string]int{"limits.max_connections": l.MaxConnections, "limits.max_per_ip": l.MaxPerIP, "limits.max_errors": l.MaxErrors} {
		if v < 1 {
			return bad(key, "%d: must be at least 1", v)
		}
	}
	if l.MaxLine < 1000 {
		// RFC 5321 §4.5.3.1.6: a text line may be 1000 octets.
		return bad("limits.max_line", "%d: at least 1000 (RFC 5321 §4.5.3.1.6)", l.MaxLine)
	}
	if l.CommandTimeout <= 0 {
		return bad("limits.command_timeout", "must be positive")
	}
	if l.MinDataRate < 0 {
		return bad("limits.min_data_rate", "must not be negative")
	}
	if size <= 0 {
		return bad("max_message_size", "must be positive")
	}
	return nil
}
