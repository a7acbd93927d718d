package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caliop/relay/config"
)

// TestHelp: help goes to standard output with status 0, for the program
// and for every command, however it is asked.
func TestHelp(t *testing.T) {
	asks := [][]string{{"--help"}, {"-h"}, {"help"}}
	for _, c := range commands {
		if c.name == "help" || c.name == "version" {
			continue
		}
		words := strings.Fields(c.name)
		asks = append(asks, append(append([]string{}, words...), "--help"), append(append([]string{}, words...), "-h"), append([]string{"help"}, words...))
	}
	for _, args := range asks {
		var out, errOut bytes.Buffer
		code := run(args, &out, &errOut)
		if code != 0 || !strings.HasPrefix(out.String(), "usage: caliop") || errOut.Len() != 0 {
			t.Errorf("caliop %v: exit %d, stdout %q, stderr %q; want 0 and the usage on stdout", args, code, out.String(), errOut.String())
		}
	}
}

// TestUsageErrors: a wrong command line says what was wrong, then the
// usage, on standard error, with status 2.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage: caliop COMMAND"},
		{[]string{"frobnicate"}, `caliop: unknown command "frobnicate"`},
		{[]string{"check"}, "caliop: check: DOMAIN missing"},
		{[]string{"check", "a.example", "b.example"}, `caliop: check: unexpected argument "b.example"`},
		{[]string{"mta-sts"}, "caliop: mta-sts: DOMAIN missing"},
		{[]string{"wkd"}, "caliop: wkd: ADDRESS missing"},
		{[]string{"serve", "extra"}, `caliop: serve: unexpected argument "extra"`},
		{[]string{"records", "--bogus"}, "caliop: records: flag provided but not defined: -bogus"},
		{[]string{"config", "frob"}, `caliop: unknown command "config frob"`},
		{[]string{"tlsrpt", "--print"}, "caliop: tlsrpt: DOMAIN missing"},
	} {
		var out, errOut bytes.Buffer
		code := run(tc.args, &out, &errOut)
		if code != 2 || !strings.HasPrefix(errOut.String(), tc.want) || !strings.Contains(errOut.String(), "usage: caliop") || out.Len() != 0 {
			t.Errorf("caliop %v: exit %d, stderr %q; want 2, %q first, then the usage", tc.args, code, errOut.String(), tc.want)
		}
	}
}

// TestConfigCheck: twenty broken files, each refused with status 2 and
// one line naming the key (and the line where there is one); nothing is
// bound and nothing written. A good file says OK.
func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free := freePort(t)
	base := "hostname: relay.example.net\ndata_dir: " + filepath.Join(dir, "data") + "\ndns: {servers: [\"127.0.0.1\"]}\nmetrics: {listen: \"127.0.0.1:0\"}\n"
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct{ name, text, want string }{
		{"wrong type", "outbound:\n  parallel: eight\n", `outbound.parallel (line 6): want a whole number, got "eight"`},
		{"tab", "outbound:\n\tparallel: 8\n", "line 6: a tab in the indentation"},
		{"duplicate key", "hostname: x.example\n", `hostname (line 5): mapping key "hostname" already defined at line 1`},
		{"unknown key", "outbund: {}\n", "outbund (line 5): unknown key"},
		{"bad level", "outbound:\n  default: plaintext\n", `outbound.default (line 6): "plaintext" is not a level`},
		{"bad duration", "outbound:\n  delivery_timeout: soon\n", `outbound.delivery_timeout (line 6): "soon" is not a duration`},
		{"too long budget", "outbound:\n  delivery_timeout: 20m\n", "outbound.delivery_timeout: 20m0s is longer than"},
		{"bad size", "outbound:\n  max_message_size: huge\n", `outbound.max_message_size (line 6): "huge" is not a size`},
		{"bad network", "outbound:\n  trusted_networks: [\"10.0.0.0/33\"]\n", `outbound.trusted_networks[0] (line 6): "10.0.0.0/33" is not a network`},
		{"bad tls version", "outbound:\n  min_tls: \"1.1\"\n", `outbound.min_tls (line 6): "1.1" is not a TLS version`},
		{"not host:port", "outbound:\n  smtp: localhost\n", `outbound.smtp: "localhost" is not host:port`},
		{"same address twice", "outbound:\n  smtp: \"127.0.0.1:" + free + "\"\n  lmtp: \"127.0.0.1:" + free + "\"\n", "outbound.smtp and outbound.lmtp both listen on"},
		{"log level", "log: {level: loud}\n", `log.level: "loud": debug, info, warn or error`},
		{"bcrypt", "outbound:\n  auth: {users: {mta: secret}}\n", "outbound.auth.users.mta: not a bcrypt hash"},
		{"dns name", "dns: {servers: [\"dns.example\"]}\n", `dns.servers[0]: "dns.example" is not an IP address`},
		{"inbound without domains", "inbound:\n  listen: \":2525\"\n  tls: {cert: " + missing + ", key: " + missing + "}\n", "inbound.domains: no domain"},
		{"missing certificate", "inbound:\n  listen: \"127.0.0.1:" + free + "\"\n  domains: [example.net]\n  tls: {cert: " + missing + ", key: " + missing + "}\n", "inbound.tls.cert: stat " + missing},
		{"certificate that does not load", "outbound:\n  tls: {cert: " + filepath.Join(dir, "bad.pem") + ", key: " + filepath.Join(dir, "bad.pem") + "}\n", "outbound.tls: certificate"},
		{"port in use", "outbound:\n  smtp: \"" + busy.Addr().String() + "\"\n", "outbound.smtp: " + busy.Addr().String() + " is in use"},
		{"data_dir a file", "data_dir: " + filepath.Join(dir, "bad.pem") + "\n", "data_dir: " + filepath.Join(dir, "bad.pem") + " is not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.WriteFile(filepath.Join(dir, "bad.pem"), []byte("not pem"), 0o644)
			// The case's first key replaces the base's line of that key.
			key, _, _ := strings.Cut(tc.text, ":")
			var kept []string
			for _, l := range strings.SplitAfter(base, "\n") {
				if l != "" && !strings.HasPrefix(l, key+":") || tc.name == "duplicate key" {
					kept = append(kept, l)
				}
			}
			text := strings.Join(kept, "") + tc.text
			file := filepath.Join(dir, "caliop.yml")
			os.WriteFile(file, []byte(text), 0o644)
			before := listDir(t, dir)
			var out, errOut bytes.Buffer
			code := run([]string{"config", "check", "--config", file}, &out, &errOut)
			lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
			if code != 2 || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and one line with %q", code, errOut.String(), tc.want)
			}
			if after := listDir(t, dir); after != before {
				t.Errorf("config check wrote files: %s, then %s", before, after)
			}
			if l, err := net.Listen("tcp", "127.0.0.1:"+free); err != nil {
				t.Errorf("port %s no longer free: %v", free, err)
			} else {
				l.Close()
			}
		})
	}
	file := filepath.Join(dir, "good.yml")
	os.WriteFile(file, []byte(base), 0o644)
	var out, errOut bytes.Buffer
	if code := run([]string{"config", "check", "--config", file}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "OK") {
		t.Errorf("good file: exit %d, %q %q", code, out.String(), errOut.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Error("config check created data_dir")
	}
}

// TestConfigShow: the configuration in force, defaults filled in, which
// loads back to the same configuration.
func TestConfigShow(t *testing.T) {
	file := filepath.Join(t.TempDir(), "caliop.yml")
	os.WriteFile(file, []byte("hostname: relay.example.net\ndns: {servers: [\"127.0.0.1\"]}\noutbound:\n  domains:\n    partner.example: {level: dane}\ncluster: {redis: \"redis://u:secret@127.0.0.1:6379/0\"}\n"), 0o644)
	var out, errOut bytes.Buffer
	if code := run([]string{"config", "show", "--config", file}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"hostname: relay.example.net", "delivery_timeout: 5m0s", "max_message_size: 50MiB", "partner.example:", "level: dane", "redis://u:xxxxx@127.0.0.1:6379/0"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("config show lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "secret") {
		t.Error("config show prints the Redis password")
	}
	shown := strings.Replace(out.String(), "xxxxx", "secret", 1)
	again, err := config.Parse([]byte(shown))
	if err != nil {
		t.Fatalf("config show's output does not load: %v", err)
	}
	first, _ := config.Load(file)
	a, _ := first.YAML()
	b, _ := again.YAML()
	if !bytes.Equal(a, b) {
		t.Errorf("config show does not load back to the same configuration")
	}
	out.Reset()
	if code := run([]string{"config", "show", "--defaults"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "smtp: 127.0.0.1:10025") {
		t.Errorf("config show --defaults: %d %s", code, out.String())
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p
}

// listDir names the entries of dir, for "nothing written".
func listDir(t *testing.T, dir string) string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return strings.Join(names, ",")
}
