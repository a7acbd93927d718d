package server

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

// Preflight finds what would stop serve from starting with cfg,
// beyond the file itself.
func Preflight(cfg *config.Config) []error {
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
	if _, err := newResolver(cfg); err != nil {
		out = append(out, err)
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
