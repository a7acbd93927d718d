package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// runAs is how a shipped manifest runs the binary: its user, the
// capability bounding set, ambient capabilities, no_new_privs, and
// whether the binary is the image's (with the Dockerfile's file
// capability) or a plain install.
type runAs struct {
	uid      int
	bounding []string // capability names, lower case, without cap_
	ambient  []string
	noNew    bool
	fileCaps string // setcap argument, "" for none
}

// TestDeployCapabilities runs the built binary under the exact
// capabilities and user each shipped manifest grants (setpriv), and has
// it bind a port below 1024, as port 25 in production: the compose
// service, the Kubernetes container (both with the image's file
// capability) and the systemd unit (ambient capability, plain binary).
func TestDeployCapabilities(t *testing.T) {
	t.Parallel()
	bin := requireComponents(t, "root", "setpriv", "setcap")
	caliop := buildCaliop(t)
	fileCaps := dockerfileCaps(t)
	for name, r := range map[string]runAs{
		"compose":    composeRunAs(t, fileCaps),
		"kubernetes": kubernetesRunAs(t, fileCaps),
		"systemd":    systemdRunAs(t),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			// t.TempDir's parent is 0700: the manifest's user must reach
			// the binary and its files.
			for _, d := range []string{filepath.Dir(dir), dir} {
				os.Chmod(d, 0o755)
			}
			exe := filepath.Join(dir, "caliop")
			copyFile(t, caliop, exe)
			os.Chmod(exe, 0o755)
			if r.fileCaps != "" {
				if out, err := runCmd(10*time.Second, bin["setcap"], r.fileCaps, exe); err != nil {
					t.Fatalf("setcap %s: %v %s", r.fileCaps, err, out)
				}
			}
			data := filepath.Join(dir, "data")
			if err := os.Mkdir(data, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(data, r.uid, r.uid); err != nil {
				t.Fatal(err)
			}
			low := freeLowPort(t, name)
			cfg := filepath.Join(dir, "caliop.yml")
			write(t, cfg, fmt.Sprintf("hostname: relay.test\ndata_dir: %q\ndns: {servers: [\"127.0.0.1:53\"]}\noutbound: {smtp: %q, lmtp: \"\"}\nmetrics: {listen: \"127.0.0.1:0\"}\n", data, low))
			args := []string{"--reuid", strconv.Itoa(r.uid), "--regid", strconv.Itoa(r.uid), "--clear-groups",
				"--bounding-set", "-all" + caps("+", r.bounding)}
			if len(r.ambient) > 0 {
				args = append(args, "--inh-caps", strings.TrimPrefix(caps("+", r.ambient), ","), "--ambient-caps", strings.TrimPrefix(caps("+", r.ambient), ","))
			}
			if r.noNew {
				args = append(args, "--no-new-privs")
			}
			out, err := runCmd(10*time.Second, bin["setpriv"], append(args, exe, "version")...)
			if err != nil || !strings.HasPrefix(out, "caliop ") {
				t.Fatalf("setpriv %v caliop version: %v\n%s", args, err, out)
			}
			if out, ok := bindsLowPort(t, bin["setpriv"], args, exe, cfg, low); !ok {
				t.Errorf("caliop did not bind %s under %v:\n%s", low, args, out)
			}
		})
	}
}

// caps renders capability names for setpriv: ",+net_bind_service,...".
func caps(sign string, names []string) string {
	var b strings.Builder
	for _, n := range names {
		b.WriteString("," + sign + n)
	}
	return b.String()
}

// bindsLowPort runs caliop serve under setpriv until it listens on addr,
// then stops it.
func bindsLowPort(t *testing.T, setpriv string, args []string, exe, cfg, addr string) (string, bool) {
	t.Helper()
	out := &LockedBuffer{}
	cmd := exec.Command(setpriv, append(args, exe, "serve", "--config", cfg)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return out.String(), true
		}
		if cmd.ProcessState != nil || strings.Contains(out.String(), "permission denied") {
			break
		}
	}
	return out.String(), false
}

// freeLowPort is 127.0.0.1:N with N below 1024 free now, from a range of
// its own for each name (the subtests run at once).
func freeLowPort(t *testing.T, name string) string {
	t.Helper()
	base := 600 + 100*map[string]int{"compose": 0, "kubernetes": 1, "systemd": 2}[name] + os.Getpid()%50
	for p := base; p < 1024; p++ {
		addr := "127.0.0.1:" + strconv.Itoa(p)
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatal("no free port below 1024")
	return ""
}

// dockerfileCaps is the file capability the Dockerfile gives the binary
// (setcap's argument), "" when none.
func dockerfileCaps(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`setcap\s+(\S+)`).FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}

// capSet applies drop and add lists (Docker and Kubernetes names) to the
// default set of a container runtime; only ALL and explicit names are
// understood, which is what the manifests use.
func capSet(t *testing.T, drop, add []string) []string {
	t.Helper()
	if !slices.Contains(drop, "ALL") {
		t.Fatalf("manifest does not drop ALL capabilities: %v", drop)
	}
	var out []string
	for _, a := range add {
		out = append(out, strings.ToLower(strings.TrimPrefix(a, "CAP_")))
	}
	return out
}

func composeRunAs(t *testing.T, fileCaps string) runAs {
	t.Helper()
	var c struct {
		Services map[string]struct {
			User        string
			CapDrop     []string `yaml:"cap_drop"`
			CapAdd      []string `yaml:"cap_add"`
			SecurityOpt []string `yaml:"security_opt"`
		}
	}
	b, err := os.ReadFile(filepath.Join(deployDir, "compose", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	s := c.Services["caliop"]
	uid := 65532 // the image's USER nonroot
	if s.User != "" {
		uid, _ = strconv.Atoi(strings.Split(s.User, ":")[0])
	}
	return runAs{uid: uid, bounding: capSet(t, s.CapDrop, s.CapAdd), noNew: slices.Contains(s.SecurityOpt, "no-new-privileges:true"), fileCaps: fileCaps}
}

func kubernetesRunAs(t *testing.T, fileCaps string) runAs {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, "kubernetes", "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Spec struct {
			Template struct {
				Spec struct {
					SecurityContext struct {
						RunAsUser int `yaml:"runAsUser"`
					} `yaml:"securityContext"`
					Containers []struct {
						Name            string
						SecurityContext struct {
							AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
							Capabilities             struct{ Drop, Add []string }
						} `yaml:"securityContext"`
					}
				}
			}
		}
	}
	if err := yaml.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "caliop" {
			sc := c.SecurityContext
			return runAs{uid: d.Spec.Template.Spec.SecurityContext.RunAsUser, bounding: capSet(t, sc.Capabilities.Drop, sc.Capabilities.Add),
				noNew: sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation, fileCaps: fileCaps}
		}
	}
	t.Fatal("deployment.yaml has no caliop container")
	return runAs{}
}

// systemdRunAs reads the unit; its User= is a system user created at
// install, played here by uid 65533.
func systemdRunAs(t *testing.T) runAs {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, "systemd", "caliop.service"))
	if err != nil {
		t.Fatal(err)
	}
	r := runAs{uid: 65533}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		var names []string
		for _, f := range strings.Fields(v) {
			names = append(names, strings.ToLower(strings.TrimPrefix(f, "CAP_")))
		}
		switch k {
		case "CapabilityBoundingSet":
			r.bounding = names
		case "AmbientCapabilities":
			r.ambient = names
		case "NoNewPrivileges":
			r.noNew = v == "yes"
		}
	}
	return r
}
