// Package deploy_test checks the deployment material under deploy/
// without running anything: every YAML file parses, every Caliop
// configuration loads with Caliop's own loader, the Kubernetes manifests
// have what each kind needs and agree with each other, the compose files
// agree with each other (addresses, ports, mounts), and the systemd unit
// has its hardening. The real-component checks (postconf, postfix check,
// promtool, unbound-checkconf, systemd-analyze) are in
// internal/e2e/deploy_test.go.
package deploy_test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/caliop/relay/config"
)

// ---- Compose ----

type composeFile struct {
	Services map[string]struct {
		Image       string
		Build       any
		Command     []string
		Volumes     []string
		Ports       []string
		Networks    any
		Sysctls     map[string]any
		CapDrop     []string `yaml:"cap_drop"`
		CapAdd      []string `yaml:"cap_add"`
		ReadOnly    bool     `yaml:"read_only"`
		StopGrace   string   `yaml:"stop_grace_period"`
		Healthcheck struct{ Test []string }
	}
	Networks map[string]struct {
		IPAM struct {
			Config []struct {
				Subnet  string
				IPRange string `yaml:"ip_range"`
			}
		}
	}
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	b := sourceOf(t, filepath.Join("compose", "compose.yaml"))
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// composeMounts maps each bind mount target of a service to its source,
// relative to deploy/.
func composeMounts(c composeFile, service string) map[string]string {
	out := map[string]string{}
	for _, v := range c.Services[service].Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") {
			continue // a named volume
		}
		out[parts[1]] = filepath.Join("compose", parts[0])
	}
	return out
}

// address returns a service's fixed address on a network.
func address(t *testing.T, c composeFile, service string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(str(c.Services[service].Networks, "mail", "ipv4_address"))
	if err != nil {
		t.Fatalf("compose service %s: no fixed ipv4_address on network mail: %v", service, err)
	}
	return a
}

func TestComposeFile(t *testing.T) {
	c := loadCompose(t)
	for _, s := range []string{"caliop", "postfix", "unbound", "prometheus", "grafana"} {
		if _, ok := c.Services[s]; !ok {
			t.Errorf("compose.yaml: no service %s", s)
		}
	}
	// Every bind mount and build context exists.
	for name, s := range c.Services {
		for target, src := range composeMounts(c, name) {
			if _, err := os.Stat(src); err != nil {
				t.Errorf("compose service %s: mount of %s: %v", name, target, err)
			}
		}
		ctx := ""
		switch b := s.Build.(type) {
		case string:
			ctx = b
		case map[string]any:
			ctx = str(b, "context")
		}
		if ctx != "" {
			df := "Dockerfile"
			if m, ok := s.Build.(map[string]any); ok && str(m, "dockerfile") != "" {
				df = str(m, "dockerfile")
			}
			if _, err := os.Stat(filepath.Join("compose", ctx, df)); err != nil {
				t.Errorf("compose service %s: build: %v", name, err)
			}
		}
	}

	// Caliop: its configuration is the mounted file it is started with.
	cal := c.Services["caliop"]
	i := slices.Index(cal.Command, "--config")
	if i < 0 || i+1 == len(cal.Command) {
		t.Fatalf("compose caliop command %v has no --config", cal.Command)
	}
	src := composeMounts(c, "caliop")[cal.Command[i+1]]
	if src == "" {
		t.Fatalf("compose caliop: --config %s is not a mounted file", cal.Command[i+1])
	}
	cfg, err := config.Load(src)
	if err != nil {
		t.Fatalf("config.Load(%s): %v", src, err)
	}
	containerConfig(t, src, cfg)
	if cfg.Inbound.TLS.ACME == nil || cfg.Inbound.TLS.ACME.Email == "" {
		t.Errorf("%s: inbound certificates should come from ACME with a contact address", src)
	}
	// Only the inbound ports are published.
	want := []string{fmt.Sprint(listenPort(t, cfg.Inbound.Listen)), fmt.Sprint(listenPort(t, cfg.Inbound.HTTPSListen))}
	var published []string
	for _, p := range cal.Ports {
		parts := strings.Split(p, ":")
		published = append(published, parts[len(parts)-1])
	}
	slices.Sort(published)
	slices.Sort(want)
	if !slices.Equal(published, want) {
		t.Errorf("compose caliop publishes %v, want only the inbound ports %v", published, want)
	}
	if !slices.Contains(cal.CapDrop, "ALL") || !cal.ReadOnly {
		t.Errorf("compose caliop: want cap_drop [ALL] and read_only")
	}
	// The image's binary has the file capability cap_net_bind_service:
	// without it in the bounding set the kernel refuses to run it.
	if !slices.Equal(cal.CapAdd, []string{"NET_BIND_SERVICE"}) {
		t.Errorf("compose caliop: cap_add %v, want [NET_BIND_SERVICE] (the binary's file capability)", cal.CapAdd)
	}
	if fmt.Sprint(cal.Sysctls["net.ipv4.ip_unprivileged_port_start"]) != "0" {
		t.Errorf("compose caliop: the nonroot image needs net.ipv4.ip_unprivileged_port_start: 0 to bind port 25")
	}
	if g, err := time.ParseDuration(cal.StopGrace); err != nil || g < time.Duration(cfg.Outbound.DeliveryTimeout)+5*time.Second {
		t.Errorf("compose caliop: stop_grace_period %q shorter than delivery_timeout + 5s", cal.StopGrace)
	}
	if !slices.Contains(cal.Healthcheck.Test, "healthcheck") {
		t.Errorf("compose caliop: health check %v does not run `caliop healthcheck` (/readyz)", cal.Healthcheck.Test)
	}

	// Fixed addresses: in the subnet, outside the dynamic range, and the
	// same in every file that names them.
	ipam := c.Networks["mail"].IPAM.Config
	if len(ipam) != 1 {
		t.Fatalf("compose network mail: want one ipam config, got %v", ipam)
	}
	subnet, err1 := netip.ParsePrefix(ipam[0].Subnet)
	dyn, err2 := netip.ParsePrefix(ipam[0].IPRange)
	if err1 != nil || err2 != nil {
		t.Fatalf("compose network mail: subnet %q, ip_range %q", ipam[0].Subnet, ipam[0].IPRange)
	}
	caliopIP, postfixIP, unboundIP := address(t, c, "caliop"), address(t, c, "postfix"), address(t, c, "unbound")
	for _, a := range []netip.Addr{caliopIP, postfixIP, unboundIP} {
		if !subnet.Contains(a) || dyn.Contains(a) {
			t.Errorf("fixed address %v: want it in %v and outside ip_range %v", a, subnet, dyn)
		}
	}
	if !slices.ContainsFunc(cfg.Outbound.TrustedNetworks, func(p config.Prefix) bool { return p.Contains(postfixIP) }) {
		t.Errorf("%s: outbound.trusted_networks %v lack postfix %v", src, cfg.Outbound.TrustedNetworks, postfixIP)
	}
	if len(cfg.Outbound.TrustedNetworks) != 1 || cfg.Outbound.TrustedNetworks[0].Bits() != 32 {
		t.Errorf("%s: outbound.trusted_networks %v: want only Postfix's address", src, cfg.Outbound.TrustedNetworks)
	}
	mainCF := postfixMain(t, filepath.Join("compose", "postfix", "main.cf"))
	if got, want := mainCF["default_transport"], fmt.Sprintf("lmtp:inet:%v:%d", caliopIP, listenPort(t, cfg.Outbound.LMTP)); got != want {
		t.Errorf("postfix main.cf default_transport %q, want %q (Caliop's LMTP listener)", got, want)
	}
	svc := postfixService(t, filepath.Join("compose", "postfix", "master.cf"), cfg.Inbound.NextHop)
	if svc == nil {
		t.Fatalf("postfix master.cf has no smtpd for inbound.next_hop %s", cfg.Inbound.NextHop)
	}
	if got := svc["smtpd_authorized_xclient_hosts"]; got != caliopIP.String() {
		t.Errorf("postfix master.cf: smtpd_authorized_xclient_hosts %q, want Caliop's address %v", got, caliopIP)
	}
	if host, _, _ := strings.Cut(cfg.Inbound.NextHop, ":"); host != postfixIP.String() {
		t.Errorf("%s: inbound.next_hop %s, want postfix %v", src, cfg.Inbound.NextHop, postfixIP)
	}
	if len(cfg.DNS.Servers) != 1 || cfg.DNS.Servers[0] != addrPort(unboundIP, 53) || !cfg.DNS.TrustAD {
		t.Errorf("%s: dns.servers %v (trust_ad %v): want unbound %v with trust_ad", src, cfg.DNS.Servers, cfg.DNS.TrustAD, addrPort(unboundIP, 53))
	}
	u := unboundSettings(string(sourceOf(t, filepath.Join("compose", "unbound", "unbound.conf"))))
	allowed := false
	for _, ac := range u["access-control"] {
		p, action, _ := strings.Cut(ac, " ")
		if pp, err := netip.ParsePrefix(p); err == nil && pp.Contains(caliopIP) && strings.TrimSpace(action) == "allow" {
			allowed = true
		}
	}
	if !allowed {
		t.Errorf("unbound.conf access-control %v does not allow Caliop %v", u["access-control"], caliopIP)
	}
	// The postfix smtpd Caliop hands mail to must not listen on 25.
	if postfixService(t, filepath.Join("compose", "postfix", "master.cf"), "smtp") != nil {
		t.Error("postfix master.cf has an smtpd on port 25: Caliop listens there")
	}

	// Prometheus scrapes Caliop's metrics port and loads the rules.
	prom := documents(t, filepath.Join("compose", "prometheus.yml"))[0]
	var targets []string
	for _, sc := range list(prom, "scrape_configs") {
		for _, st := range list(sc, "static_configs") {
			targets = append(targets, strList(st, "targets")...)
		}
	}
	if want := hostPort("caliop", listenPort(t, cfg.Metrics.Listen)); !slices.Contains(targets, want) {
		t.Errorf("prometheus.yml targets %v lack %s", targets, want)
	}
	pm := composeMounts(c, "prometheus")
	for _, r := range strList(prom, "rule_files") {
		if !filepath.IsAbs(r) {
			r = filepath.Join("/etc/prometheus", r)
		}
		if pm[r] != filepath.Join("..", "dashboards", "rules.yaml") {
			t.Errorf("prometheus rule file %s is mounted from %q, want dashboards/rules.yaml", r, pm[r])
		}
	}
	if len(strList(prom, "rule_files")) == 0 {
		t.Error("prometheus.yml loads no rule file")
	}
}

func addrPort(a netip.Addr, port int) string { return netip.AddrPortFrom(a, uint16(port)).String() }
func hostPort(host string, port int) string  { return net.JoinHostPort(host, strconv.Itoa(port)) }

// TestComposeGrafanaProvisioning checks that the compose file mounts the
// repository's dashboards and their file provider where the provider
// looks for them.
func TestComposeGrafanaProvisioning(t *testing.T) {
	c := loadCompose(t)
	m := composeMounts(c, "grafana")
	const provisioning = "/etc/grafana/provisioning/dashboards/"
	var provider string
	for target, src := range m {
		if strings.HasPrefix(target, provisioning) {
			if src != filepath.Join("..", "dashboards", "provisioning", "dashboards.yaml") {
				t.Errorf("grafana %s is mounted from %s, want dashboards/provisioning/dashboards.yaml", target, src)
			}
			provider = src
		}
	}
	if provider == "" {
		t.Fatal("compose grafana does not mount dashboards/provisioning/dashboards.yaml")
	}
	for _, p := range list(documents(t, provider)[0], "providers") {
		path := str(p, "options", "path")
		src, ok := m[path]
		if !ok {
			t.Errorf("provider %s reads %s, which no volume mounts", str(p, "name"), path)
			continue
		}
		if src != filepath.Join("..", "dashboards") {
			t.Errorf("provider path %s is mounted from %s, want dashboards/", path, src)
		}
		json, _ := filepath.Glob(filepath.Join(src, "*.json"))
		if len(json) == 0 {
			t.Errorf("no dashboard JSON in %s", src)
		}
	}
	var ds bool
	for target := range m {
		ds = ds || strings.HasPrefix(target, "/etc/grafana/provisioning/datasources/")
	}
	if !ds {
		t.Error("compose grafana provisions no datasource")
	}
}

// postfixMain reads main.cf "name = value" lines (with continuation
// lines) into a map.
func postfixMain(t *testing.T, path string) map[string]string {
	t.Helper()
	out := map[string]string{}
	var last string
	for _, line := range strings.Split(string(sourceOf(t, path)), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") || strings.TrimSpace(line) == "" {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if last != "" {
				out[last] += " " + strings.TrimSpace(line)
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not name = value", path, line)
		}
		last = strings.TrimSpace(k)
		out[last] = strings.TrimSpace(v)
	}
	return out
}

// postfixService returns the -o overrides of the smtpd inet service of
// master.cf whose service name is name or whose port is that of the
// host:port name; nil when there is none.
func postfixService(t *testing.T, path, name string) map[string]string {
	t.Helper()
	_, port, err := net.SplitHostPort(name)
	if err != nil {
		port = name
	}
	var cur map[string]string
	var found map[string]string
	for _, line := range strings.Split(string(sourceOf(t, path)), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || trimmed == "" {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			f := strings.Fields(line)
			cur = nil
			if len(f) >= 8 && f[1] == "inet" && f[7] == "smtpd" {
				svc := f[0]
				if i := strings.LastIndex(svc, ":"); i >= 0 {
					svc = svc[i+1:]
				}
				if svc == port || svc == name {
					cur = map[string]string{}
					found = cur
				}
			}
			continue
		}
		if cur != nil {
			f := strings.Fields(trimmed)
			if len(f) == 2 && f[0] == "-o" {
				k, v, _ := strings.Cut(f[1], "=")
				cur[k] = v
			}
		}
	}
	return found
}
