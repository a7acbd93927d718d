package certs

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
	"golang.org/x/net/idna"
)

// ErrACMEConfig: NewACME was given an unusable configuration; the error
// names the field.
var ErrACMEConfig = errors.New("acme configuration invalid")

// ACMEConfig configures NewACME.
type ACMEConfig struct {
	// Email is the account's contact (RFC 8555 §7.3), for the CA's
	// expiry notices; may be empty.
	Email string
	// Directory is the ACME directory URL (RFC 8555 §7.1.1). Required.
	Directory string
	// Hosts are exactly the names certificates may be requested for: the
	// inbound hostname and mta-sts.<domain> of each inbound domain.
	// Required.
	Hosts []string
	// DefaultHost is the certificate served to a client that names no
	// host (SMTP clients often send no SNI) or one outside Hosts: the
	// inbound hostname. Empty: such handshakes fail.
	DefaultHost string
	// CacheDir holds the account key and the certificates with their keys
	// (data_dir/acme), created with mode 0700. Required: without it every
	// start would issue again and soon hit the CA's rate limits. Not
	// used when Cache is set.
	CacheDir string
	// Cache replaces the directory (cluster mode: a SharedCache).
	Cache autocert.Cache
	// HTTPClient talks to the CA (private CA roots in tests); nil:
	// http.DefaultClient.
	HTTPClient *http.Client
	// Log may be nil.
	Log *zap.Logger
}

// ACME obtains and renews certificates with autocert: the first handshake
// naming a host in ACMEConfig.Hosts triggers the issuance (and blocks until
// it is done), and autocert renews when a third of the lifetime (at most
// 30 days) remains, reusing the key.
//
// Keys are ECDSA P-256 for every client that supports ECDSA (all current
// ones); for a client that does not, autocert obtains a separate RSA
// certificate, whose key no TLSA 3 1 1 record of the ECDSA key matches.
type ACME struct {
	m           *autocert.Manager
	hosts       map[string]bool
	defaultHost string
	log         *zap.Logger
}

// NewACME checks cfg and prepares the manager; it contacts the CA only when
// a certificate is first needed.
func NewACME(cfg ACMEConfig) (*ACME, error) {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrACMEConfig, field, fmt.Sprintf(format, a...))
	}
	if cfg.Directory == "" {
		return nil, bad("Directory", "empty")
	}
	if cfg.CacheDir == "" && cfg.Cache == nil {
		return nil, bad("CacheDir", "empty")
	}
	if len(cfg.Hosts) == 0 {
		return nil, bad("Hosts", "no host")
	}
	a := &ACME{hosts: map[string]bool{}, log: cfg.Log}
	if a.log == nil {
		a.log = zap.NewNop()
	}
	var hosts []string
	for _, h := range cfg.Hosts {
		n, err := normalizeHost(h)
		if err != nil {
			return nil, bad("Hosts", "%q: %v", h, err)
		}
		if !a.hosts[n] {
			a.hosts[n] = true
			hosts = append(hosts, n)
		}
	}
	if cfg.DefaultHost != "" {
		n, err := normalizeHost(cfg.DefaultHost)
		if err != nil || !a.hosts[n] {
			return nil, bad("DefaultHost", "%q is not one of Hosts", cfg.DefaultHost)
		}
		a.defaultHost = n
	}
	cache := cfg.Cache
	if cache == nil {
		if err := os.MkdirAll(cfg.CacheDir, 0o700); err != nil {
			return nil, bad("CacheDir", "%v", err)
		}
		cache = autocert.DirCache(cfg.CacheDir)
	}
	a.m = &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      cache,
		HostPolicy: autocert.HostWhitelist(hosts...),
		Email:      cfg.Email,
		Client:     &acme.Client{DirectoryURL: cfg.Directory, HTTPClient: cfg.HTTPClient, UserAgent: "caliop"},
	}
	return a, nil
}

// normalizeHost gives a host name as autocert compares it: lowercase
// A-labels without the trailing dot.
func normalizeHost(h string) (string, error) {
	n, err := idna.Lookup.ToASCII(strings.TrimSuffix(h, "."))
	if err != nil {
		return "", err
	}
	if !strings.Contains(n, ".") {
		return "", errors.New("not a fully qualified host name")
	}
	return strings.ToLower(n), nil
}

// GetCertificate returns the certificate for the name the client asked
// for, obtaining it first if needed, and answers TLS-ALPN-01 challenge
// handshakes (ALPN "acme-tls/1", RFC 8737 §3). A hello without a server
// name, or with one outside Hosts, gets DefaultHost's certificate when
// DefaultHost is set; without DefaultHost it fails, and the CA is never
// asked for a name outside Hosts.
func (a *ACME) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if isChallenge(hello) {
		return a.m.GetCertificate(hello)
	}
	if a.defaultHost != "" && !a.known(hello.ServerName) {
		h := *hello
		h.ServerName = a.defaultHost
		hello = &h
	}
	cert, err := a.m.GetCertificate(hello)
	if err != nil {
		a.log.Warn("acme certificate unavailable", zap.String("server_name", hello.ServerName), zap.Error(err))
	}
	return cert, err
}

// isChallenge reports whether hello is a CA's TLS-ALPN-01 validation: it
// offers exactly the "acme-tls/1" protocol (RFC 8737 §3).
func isChallenge(hello *tls.ClientHelloInfo) bool {
	return len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acme.ALPNProto
}

func (a *ACME) known(name string) bool {
	if name == "" {
		return false
	}
	n, err := normalizeHost(name)
	return err == nil && a.hosts[n]
}

// TLSConfig is the configuration for the HTTPS listener: certificates from
// GetCertificate, ALPN h2, http/1.1 and acme-tls/1 (so that TLS-ALPN-01
// challenges are answered there), TLS 1.2 or later.
func (a *ACME) TLSConfig() *tls.Config {
	c := a.m.TLSConfig()
	c.GetCertificate = a.GetCertificate
	c.MinVersion = tls.VersionTLS12
	if !slices.Contains(c.NextProtos, acme.ALPNProto) {
		c.NextProtos = append(c.NextProtos, acme.ALPNProto)
	}
	return c
}

// HTTPHandler answers HTTP-01 challenges (RFC 8555 §8.3) under
// /.well-known/acme-challenge/ and passes other requests to fallback (nil:
// a redirect to https). Calling it enables HTTP-01, which autocert tries
// after TLS-ALPN-01; it must be served on port 80 of the hosts' address.
// A port in the Host header (a CA validating on another port, as test
// CAs do) is dropped before autocert checks the host against Hosts.
func (a *ACME) HTTPHandler(fallback http.Handler) http.Handler {
	h := a.m.HTTPHandler(fallback)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if host, _, err := net.SplitHostPort(r.Host); err == nil {
			r = r.Clone(r.Context())
			r.Host = host
		}
		h.ServeHTTP(w, r)
	})
}

// CachedKey returns the public key of the valid ECDSA certificate in the
// cache for host, if there is one: the key a TLSA 3 1 1 record for host
// must match now (see TLSA311 on when it changes).
func (a *ACME) CachedKey(host string) (crypto.PublicKey, bool) {
	n, err := normalizeHost(host)
	if err != nil || !a.hosts[n] {
		return nil, false
	}
	leaf := a.cachedLeaf(n)
	if leaf == nil || time.Now().After(leaf.NotAfter) {
		return nil, false
	}
	return leaf.PublicKey, true
}

// Expiry returns when the cached ECDSA certificate of each host expires,
// expired ones included; hosts without a certificate yet are absent. For
// caliop_certificate_expiry_timestamp_seconds (metrics.WatchCertificates);
// it reads the cache directory, a few files, at each call.
func (a *ACME) Expiry() map[string]time.Time {
	out := map[string]time.Time{}
	for h := range a.hosts {
		if leaf := a.cachedLeaf(h); leaf != nil {
			out[h] = leaf.NotAfter
		}
	}
	return out
}

// cachedLeaf is the leaf certificate of autocert's cache entry for host
// (normalised), nil when there is none.
func (a *ACME) cachedLeaf(host string) *x509.Certificate {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// autocert's cache entry for an ECDSA certificate is named after the
	// host; it holds the private key, then the chain, in PEM.
	get := a.m.Cache.Get
	if p, ok := a.m.Cache.(interface {
		Peek(ctx context.Context, key string) ([]byte, error)
	}); ok {
		get = p.Peek // a read that must not start an order
	}
	data, err := get(ctx, host)
	if err != nil {
		return nil
	}
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		leaf, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil
		}
		return leaf
	}
}
