package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/caliop/relay/config"
)

// The deployment material under deploy/, checked here with the real
// programs that will read it (deploy/deploy_test.go checks its structure
// without them). No container engine runs on the development machines,
// so the compose example is tested piece by piece: each file is laid out
// as compose.yaml mounts or copies it and handed to the program that
// reads it.

const deployDir = "../../deploy"

// deployCompose is the part of deploy/compose/compose.yaml these tests
// read.
type deployCompose struct {
	Services map[string]struct {
		Command []string
		Volumes []string
		// A list of networks, or a map of them with their settings.
		Networks any
	}
}

func loadDeployCompose(t *testing.T) deployCompose {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, "compose", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c deployCompose
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return c
}

// mounts maps each bind mount target of a service to its source file or
// directory.
func (c deployCompose) mounts(service string) map[string]string {
	out := map[string]string{}
	for _, v := range c.Services[service].Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && strings.HasPrefix(parts[0], ".") {
			out[parts[1]] = filepath.Join(deployDir, "compose", parts[0])
		}
	}
	return out
}

// address is a service's fixed address on the compose network.
func (c deployCompose) address(t *testing.T, service string) string {
	t.Helper()
	nets, _ := c.Services[service].Networks.(map[string]any)
	mail, _ := nets["mail"].(map[string]any)
	a, _ := mail["ipv4_address"].(string)
	if net.ParseIP(a) == nil {
		t.Fatalf("compose service %s has no fixed address on network mail", service)
	}
	return a
}

func deployCaliopConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load(filepath.Join(deployDir, "compose", "caliop.yml"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func deployPort(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%q: %v", addr, err)
	}
	return p
}

// deployRun runs a command and returns its standard output and standard
// error apart (warnings go to the latter even on success).
func deployRun(timeout time.Duration, name string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = time.Second
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, dst, string(b))
}

// TestDeployPrometheusConfig lays out /etc/prometheus as the compose file
// mounts it (prometheus.yml and dashboards/rules.yaml as
// caliop-rules.yaml) in a temporary directory and runs `promtool check
// config` on it, which also checks the rule files it names. (`promtool
// check rules dashboards/rules.yaml` alone is run by the dashboards
// tests.)
func TestDeployPrometheusConfig(t *testing.T) {
	t.Parallel()
	bins := requireComponents(t, "promtool")
	c := loadDeployCompose(t)
	dir := t.TempDir()
	var cfgFile string
	for _, a := range c.Services["prometheus"].Command {
		if v, ok := strings.CutPrefix(a, "--config.file="); ok {
			cfgFile = v
		}
	}
	if !strings.HasPrefix(cfgFile, "/etc/prometheus/") {
		t.Fatalf("compose prometheus command %v: no --config.file under /etc/prometheus", c.Services["prometheus"].Command)
	}
	for target, src := range c.mounts("prometheus") {
		if rel, ok := strings.CutPrefix(target, "/etc/prometheus/"); ok {
			copyFile(t, src, filepath.Join(dir, rel))
		}
	}
	cfg := filepath.Join(dir, strings.TrimPrefix(cfgFile, "/etc/prometheus/"))
	out, err := runCmd(30*time.Second, bins["promtool"], "check", "config", cfg)
	if err != nil || strings.Contains(out, "FAILED") {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	if !strings.Contains(out, "caliop-rules.yaml") || !regexp.MustCompile(`SUCCESS: [1-9]\d* rules found`).MatchString(out) {
		t.Errorf("promtool check config did not check the Caliop rules:\n%s", out)
	}
	t.Logf("promtool check config:\n%s", out)
}

// TestDeployPostfixConfig puts deploy/compose/postfix (main.cf,
// master.cf and the tables, not the Dockerfile) in a private Postfix
// configuration directory, with only the queue and data directories
// moved into the test's directory, and checks it with postconf (no
// warnings; the LMTP transport to Caliop, XCLIENT for Caliop's address
// only on the smtpd of inbound.next_hop, no smtpd on port 25), postmap
// (a postmaster mailbox for every inbound domain) and `postfix check`.
// Nothing is started.
func TestDeployPostfixConfig(t *testing.T) {
	t.Parallel()
	bins := requireComponents(t, "postconf", "postfix", "postmap", "root")
	c := loadDeployCompose(t)
	cal := deployCaliopConfig(t)
	caliopIP := c.address(t, "caliop")

	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	etc, queue, data := filepath.Join(dir, "etc"), filepath.Join(dir, "queue"), filepath.Join(dir, "data")
	for _, d := range []string{etc, queue, data} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src := filepath.Join(deployDir, "compose", "postfix")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() && e.Name() != "Dockerfile" {
			copyFile(t, filepath.Join(src, e.Name()), filepath.Join(etc, e.Name()))
		}
	}
	owner, err := runStdout(10*time.Second, bins["postconf"], "-c", etc, "-d", "-h", "mail_owner")
	if err != nil {
		t.Fatal(err)
	}
	u, err := user.Lookup(strings.TrimSpace(owner))
	if err != nil {
		t.Fatalf("postfix mail_owner %q: %v", strings.TrimSpace(owner), err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(data, uid, gid); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(etc, "main.cf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("\n# test instance\nqueue_directory = " + queue + "\ndata_directory = " + data + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	postconf := func(args ...string) string {
		t.Helper()
		out, stderr, err := deployRun(10*time.Second, bins["postconf"], append([]string{"-c", etc}, args...)...)
		if err != nil || stderr != "" {
			t.Fatalf("postconf %v: %v\n%s%s", args, err, stderr, out)
		}
		return out
	}
	n := postconf("-n")
	t.Logf("postconf -n:\n%s", n)
	transport := "default_transport = lmtp:inet:" + caliopIP + ":" + deployPort(t, cal.Outbound.LMTP)
	for _, want := range []string{transport, "lmtp_data_done_timeout = 600s", "inet_interfaces = all"} {
		if !strings.Contains(n, want+"\n") {
			t.Errorf("postconf -n lacks %q", want)
		}
	}
	p := postconf("-P")
	t.Logf("postconf -P:\n%s", p)
	hop := deployPort(t, cal.Inbound.NextHop)
	if want := hop + "/inet/smtpd_authorized_xclient_hosts = " + caliopIP + "\n"; !strings.Contains(p, want) {
		t.Errorf("postconf -P lacks %q (XCLIENT for Caliop on the next hop's smtpd)", strings.TrimSpace(want))
	}
	if strings.Count(p, "smtpd_authorized_xclient_hosts") != 1 {
		t.Error("XCLIENT is granted on more than the next hop's smtpd")
	}
	if v := postconf("-h", "smtpd_authorized_xclient_hosts"); strings.TrimSpace(v) != "" {
		t.Errorf("smtpd_authorized_xclient_hosts = %q in main.cf: XCLIENT for every smtpd", strings.TrimSpace(v))
	}
	// postfix check does not look at master.cf's services: every command
	// must be a Postfix daemon, and the services Postfix itself calls on
	// must be there (postlog for maillog_file).
	daemons := strings.TrimSpace(postconf("-h", "daemon_directory"))
	var inet []string
	services := map[string]bool{}
	for _, line := range strings.Split(postconf("-M"), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		if f[1] == "inet" {
			inet = append(inet, f[0]+" "+f[7])
		}
		services[f[0]] = true
		if _, err := os.Stat(filepath.Join(daemons, f[7])); err != nil {
			t.Errorf("master.cf service %s runs %s: %v", f[0], f[7], err)
		}
	}
	for _, s := range strings.Fields("pickup cleanup qmgr tlsmgr rewrite bounce defer trace verify flush proxymap smtp relay showq error retry discard local virtual lmtp anvil scache postlog") {
		if !services[s] {
			t.Errorf("master.cf lacks the %s service", s)
		}
	}
	if len(inet) != 1 || inet[0] != hop+" smtpd" {
		t.Errorf("master.cf inet services %v, want only the next hop's smtpd on %s (Caliop owns port 25)", inet, hop)
	}

	domains := strings.Fields(strings.ReplaceAll(postconf("-h", "virtual_mailbox_domains"), ",", " "))
	maps := strings.TrimSpace(postconf("-x", "-h", "virtual_mailbox_maps"))
	for _, d := range cal.Inbound.Domains {
		if !slices.Contains(domains, d) {
			t.Errorf("inbound domain %s is not in Postfix's virtual_mailbox_domains %v", d, domains)
		}
		out, err := runStdout(10*time.Second, bins["postmap"], "-c", etc, "-q", "postmaster@"+d, maps)
		if err != nil || strings.TrimSpace(out) == "" {
			t.Errorf("postmap -q postmaster@%s %s: %v %q (RFC 5321 §4.5.1 requires postmaster)", d, maps, err, out)
		}
	}

	out, err := runCmd(30*time.Second, bins["postfix"], "-c", etc, "check")
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("postfix check: %v\n%s", err, out)
	}
}

// deployAnchor is the root zone's KSK-2017 DS record: unbound-checkconf
// wants the trust anchor file to exist.
const deployAnchor = ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n"

// TestDeployUnboundConfig runs unbound-checkconf on the compose
// unbound.conf and on the one of the Kubernetes ConfigMap, with the
// trust anchor file and the working directory moved into the test's
// directory.
func TestDeployUnboundConfig(t *testing.T) {
	t.Parallel()
	bins := requireComponents(t, "unbound-checkconf")
	compose, err := os.ReadFile(filepath.Join(deployDir, "compose", "unbound", "unbound.conf"))
	if err != nil {
		t.Fatal(err)
	}
	confs := map[string]string{"compose": string(compose)}
	b, err := os.ReadFile(filepath.Join(deployDir, "kubernetes", "configmap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var cm struct {
			Kind     string
			Metadata struct{ Name string }
			Data     map[string]string
		}
		if dec.Decode(&cm) != nil {
			break
		}
		if s, ok := cm.Data["unbound.conf"]; ok && cm.Kind == "ConfigMap" {
			confs["kubernetes "+cm.Metadata.Name] = s
		}
	}
	if len(confs) != 2 {
		t.Fatalf("want the compose unbound.conf and one in a ConfigMap, got %d", len(confs))
	}
	for name, text := range confs {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "root.key"), deployAnchor)
		var lines []string
		for _, line := range strings.Split(text, "\n") {
			k, _, _ := strings.Cut(strings.TrimSpace(line), ":")
			switch k {
			case "auto-trust-anchor-file":
				line = `    auto-trust-anchor-file: "` + filepath.Join(dir, "root.key") + `"`
			case "directory":
				line = `    directory: "` + dir + `"`
			}
			lines = append(lines, line)
		}
		conf := filepath.Join(dir, "unbound.conf")
		write(t, conf, strings.Join(lines, "\n"))
		out, err := runCmd(30*time.Second, bins["unbound-checkconf"], conf)
		if err != nil || !strings.Contains(out, "no errors") {
			t.Errorf("%s: unbound-checkconf: %v\n%s", name, err, out)
		}
	}
}

// TestDeployGrafanaProvisioning reads the Grafana provisioning files the
// compose file mounts: the dashboard provider's path is a mounted
// directory of dashboards that parse, and each datasource's URL names a
// compose service, Prometheus with the scrape interval as timeInterval.
// It needs no program (Grafana is not packaged for Debian).
func TestDeployGrafanaProvisioning(t *testing.T) {
	t.Parallel()
	c := loadDeployCompose(t)
	m := c.mounts("grafana")
	var providers, datasources int
	for target, src := range m {
		kind, ok := strings.CutPrefix(target, "/etc/grafana/provisioning/")
		if !ok {
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			APIVersion int `yaml:"apiVersion"`
			Providers  []struct {
				Name, Type string
				Options    struct{ Path string }
			}
			Datasources []struct {
				Name, Type, URL string
				JSONData        map[string]any `yaml:"jsonData"`
			}
		}
		if err := yaml.Unmarshal(b, &p); err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if p.APIVersion != 1 {
			t.Errorf("%s: apiVersion %d, want 1", src, p.APIVersion)
		}
		switch filepath.Dir(kind) {
		case "dashboards":
			for _, pr := range p.Providers {
				providers++
				dir, ok := m[pr.Options.Path]
				if pr.Type != "file" || !ok {
					t.Errorf("%s: provider %s (%s) reads %s, which no volume mounts", src, pr.Name, pr.Type, pr.Options.Path)
					continue
				}
				files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
				if len(files) < 2 {
					t.Errorf("provider %s: %s holds %d dashboards, want the overview and the charter", pr.Name, dir, len(files))
				}
				for _, f := range files {
					var d struct{ UID, Title string }
					b, err := os.ReadFile(f)
					if err == nil {
						err = json.Unmarshal(b, &d)
					}
					if err != nil || d.UID == "" || d.Title == "" {
						t.Errorf("%s: %v (uid %q, title %q)", f, err, d.UID, d.Title)
					}
				}
			}
		case "datasources":
			for _, ds := range p.Datasources {
				datasources++
				u, err := url.Parse(ds.URL)
				if err != nil {
					t.Errorf("%s: datasource %s: %v", src, ds.Name, err)
					continue
				}
				if _, ok := c.Services[u.Hostname()]; !ok {
					t.Errorf("%s: datasource %s: %s is not a compose service", src, ds.Name, u.Host)
				}
				if ds.Type == "prometheus" {
					checkPrometheusDatasource(t, u, ds.JSONData)
				}
			}
		default:
			t.Errorf("unexpected provisioning mount %s", target)
		}
	}
	if providers == 0 || datasources == 0 {
		t.Errorf("compose grafana provisions %d dashboard providers and %d datasources, want both", providers, datasources)
	}
}

func checkPrometheusDatasource(t *testing.T, u *url.URL, jsonData map[string]any) {
	t.Helper()
	if u.Hostname() != "prometheus" || u.Port() != "9090" {
		t.Errorf("datasource URL %s: want the prometheus service on its default port 9090", u)
	}
	b, err := os.ReadFile(filepath.Join(deployDir, "compose", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var prom struct {
		Global struct {
			ScrapeInterval string `yaml:"scrape_interval"`
		}
	}
	if err := yaml.Unmarshal(b, &prom); err != nil {
		t.Fatal(err)
	}
	if got := jsonData["timeInterval"]; got != prom.Global.ScrapeInterval {
		t.Errorf("datasource timeInterval %v, want Prometheus's scrape_interval %s ($__rate_interval)", got, prom.Global.ScrapeInterval)
	}
}

// TestDeploySystemdUnit runs `systemd-analyze verify` on the unit, with
// ExecStart pointed at a freshly built caliop (verify checks that the
// binary exists), and requires no complaint; where the installed
// systemd has `security --offline`, the unit's exposure score must stay
// low. Skipped where systemd-analyze is not installed, even under
// CALIOP_E2E: CI does not install systemd.
func TestDeploySystemdUnit(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	sa, err := lookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	b, err := os.ReadFile(filepath.Join(deployDir, "systemd", "caliop.service"))
	if err != nil {
		t.Fatal(err)
	}
	const execStart = "ExecStart=/usr/local/bin/caliop "
	if !strings.Contains(string(b), execStart) {
		t.Fatalf("caliop.service has no %q line", execStart)
	}
	bin := buildCaliop(t)
	unit := filepath.Join(t.TempDir(), "caliop.service")
	write(t, unit, strings.Replace(string(b), execStart, "ExecStart="+bin+" ", 1))
	out, err := runCmd(60*time.Second, sa, "verify", unit)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = runCmd(60*time.Second, sa, "security", "--offline=yes", unit)
	m := regexp.MustCompile(`Overall exposure level for caliop\.service: ([0-9.]+)`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Logf("systemd-analyze security --offline not usable here (%v); exposure not checked\n%s", err, out)
		return
	}
	score, _ := strconv.ParseFloat(m[1], 64)
	t.Logf("systemd-analyze security: exposure %.1f", score)
	if score > 2.0 {
		t.Errorf("exposure level %.1f, want at most 2.0:\n%s", score, out)
	}
}
