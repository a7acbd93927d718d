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
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caliop/relay/config"
)

// ---- systemd ----

// unit reads a systemd unit into section → key → values.
func unit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	out := map[string]map[string][]string{}
	var section string
	for n, line := range strings.Split(string(sourceOf(t, path)), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: %q", path, n+1, line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	return out
}

func TestSystemdUnit(t *testing.T) {
	path := filepath.Join("systemd", "caliop.service")
	u := unit(t, path)
	s := u["Service"]
	want := map[string]string{
		"ProtectSystem":           "strict",
		"NoNewPrivileges":         "yes",
		"AmbientCapabilities":     "CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet":   "CAP_NET_BIND_SERVICE",
		"StateDirectory":          "caliop",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"RestrictSUIDSGID":        "yes",
		"RestrictNamespaces":      "yes",
		"LockPersonality":         "yes",
		"SystemCallArchitectures": "native",
		"ProtectKernelTunables":   "yes",
		"ProtectControlGroups":    "yes",
	}
	for k, v := range want {
		if got := s[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s: %s=%v, want %s", path, k, got, v)
		}
	}
	if u := s["User"]; len(u) != 1 || u[0] == "" || u[0] == "root" {
		t.Errorf("%s: User=%v: want a dedicated user", path, u)
	}
	// Caliop reloads its configuration on SIGHUP.
	if r := s["ExecReload"]; len(r) != 1 || r[0] != "/bin/kill -HUP $MAINPID" {
		t.Errorf("%s: ExecReload=%v, want /bin/kill -HUP $MAINPID", path, r)
	}
	exec := s["ExecStart"]
	if len(exec) != 1 {
		t.Fatalf("%s: ExecStart=%v", path, exec)
	}
	args := strings.Fields(exec[0])
	i := slices.Index(args, "--config")
	if len(args) < 4 || args[1] != "serve" || i < 0 || i+1 == len(args) {
		t.Fatalf("%s: ExecStart=%s: want caliop serve --config FILE", path, exec[0])
	}
	if args[i+1] != "/etc/caliop/caliop.yml" {
		t.Errorf("%s: --config %s; the documented place is /etc/caliop/caliop.yml", path, args[i+1])
	}
	// The unit runs deploy/caliop.yml: its data_dir is the StateDirectory
	// (the only writable place under ProtectSystem=strict).
	cfg, err := config.Load("caliop.yml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/var/lib/caliop" {
		t.Errorf("deploy/caliop.yml data_dir %s is not the unit's StateDirectory /var/lib/caliop", cfg.DataDir)
	}
	stop := s["TimeoutStopSec"]
	if len(stop) != 1 {
		t.Fatalf("%s: TimeoutStopSec=%v", path, stop)
	}
	d, err := time.ParseDuration(stop[0])
	if err != nil || d < time.Duration(cfg.Outbound.DeliveryTimeout)+5*time.Second {
		t.Errorf("%s: TimeoutStopSec=%s shorter than delivery_timeout + 5s", path, stop[0])
	}
	if u["Install"]["WantedBy"] == nil {
		t.Errorf("%s: no [Install] WantedBy", path)
	}
}
