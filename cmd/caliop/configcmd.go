package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/caliop/relay/config"
)

// runConfigCheck checks the configuration as serve would before it
// starts, but binds nothing and writes nothing (like postfix check or
// unbound-checkconf): the file loads and validates, the certificate and
// key files load, data_dir is usable, and no listen address is in use
// (probed by connecting, never by binding). Exit 0, or 2 with one line
// per problem.
func runConfigCheck(c cmdContext) int {
	cfg, err := c.load()
	if err != nil {
		fmt.Fprintln(c.stderr, "caliop:", err)
		return 2
	}
	problems := configProblems(cfg)
	for _, p := range problems {
		fmt.Fprintln(c.stderr, "caliop:", p)
	}
	if len(problems) > 0 {
		return 2
	}
	what := c.path
	if what == "" {
		what = "the embedded defaults"
	}
	fmt.Fprintf(c.stdout, "%s: OK\n", what)
	return 0
}

// configProblems finds what would stop serve from starting with cfg,
// beyond the file itself.
func configProblems(cfg *config.Config) []error {
	var out []error
	for _, kp := range []struct{ key, cert, key2 string }{
		{"outbound.tls", cfg.Outbound.TLS.Cert, cfg.Outbound.TLS.Key},
		{"inbound.tls", cfg.Inbound.TLS.Cert, cfg.Inbound.TLS.Key},
	} {
		if kp.cert == "" || kp.key2 == "" || kp.key == "inbound.tls" && cfg.Inbound.Listen == "" {
			continue
		}
		if _, err := tls.LoadX509KeyPair(kp.cert, kp.key2); err != nil {
			out = append(out, fmt.Errorf("%s: certificate %s and key %s do not load: %w (PEM files, key matching the certificate)", kp.key, kp.cert, kp.key2, err))
		}
	}
	if !cfg.Cluster.Enabled() {
		if err := usableDir(cfg.DataDir); err != nil {
			out = append(out, fmt.Errorf("data_dir: %w", err))
		}
	}
	for _, l := range listeners(cfg) {
		if inUse(l.addr) {
			out = append(out, fmt.Errorf("%s: %s is in use by another program: stop it, or give %s another address", l.key, l.addr, l.key))
		}
	}
	return out
}

// usableDir reports whether serve could use dir as data_dir: an existing
// writable directory, or one it can create.
func usableDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		parent := filepath.Dir(filepath.Clean(dir))
		if unix.Access(parent, unix.W_OK|unix.X_OK) != nil {
			return fmt.Errorf("%s does not exist and %s is not writable: create it, or choose another directory", dir, parent)
		}
		return nil
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case unix.Access(dir, unix.W_OK|unix.X_OK) != nil:
		return fmt.Errorf("%s is not writable by this user", dir)
	}
	return nil
}

// listenAddr is one configured listener.
type listenAddr struct{ key, addr string }

func listeners(cfg *config.Config) []listenAddr {
	all := []listenAddr{{"outbound.smtp", cfg.Outbound.SMTP}, {"outbound.lmtp", cfg.Outbound.LMTP}, {"metrics.listen", cfg.Metrics.Listen}}
	if in := cfg.Inbound; in.Listen != "" {
		all = append(all, listenAddr{"inbound.listen", in.Listen}, listenAddr{"inbound.https_listen", in.HTTPSListen})
		if in.TLS.ACME != nil && in.TLS.ACME.Challenge == "http-01" {
			all = append(all, listenAddr{"inbound.tls.acme.http_listen", in.TLS.ACME.HTTPListen})
		}
	}
	out := all[:0]
	for _, l := range all {
		if l.addr != "" {
			out = append(out, l)
		}
	}
	return out
}

// inUse reports whether something accepts connections at addr (a listen
// address; every-address hosts are probed on loopback).
func inUse(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "0" {
		return false
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// runConfigShow prints the configuration in force as YAML: the file's
// values with every default filled in (postconf -n and -d in one), or
// with --defaults the embedded defaults alone.
func runConfigShow(c cmdContext) int {
	cfg := c.cfg
	if c.flags.defaults {
		var err error
		if cfg, err = config.Parse(nil); err != nil {
			fmt.Fprintln(c.stderr, "caliop:", err)
			return 2
		}
	}
	b, err := cfg.YAML()
	if err != nil {
		fmt.Fprintln(c.stderr, "caliop:", err)
		return 1
	}
	c.stdout.Write(b)
	return 0
}
