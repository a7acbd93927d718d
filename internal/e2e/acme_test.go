package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/caliop/relay/certs"
	"github.com/caliop/relay/internal/testworld/testpki"
	"github.com/caliop/relay/mtasts"
)

// acmeAddr is the loopback address the test DNS gives for every ACME host:
// the HTTPS listener listens there, on a free port that pebble is told to
// use for TLS-ALPN-01 (in production, 443).
const acmeAddr = "127.0.5.1"

// TestACMEWithPebble obtains certificates from a real ACME CA (pebble,
// RFC 8555) through certs.ACME, answering TLS-ALPN-01 (RFC 8737) on the
// HTTPS listener that hosts the MTA-STS policy, with pebble resolving the
// names through unbound and knot. It checks that each certificate chains
// to pebble's root for its name, that the policy is served over HTTPS with
// that certificate, that a STARTTLS client without SNI gets the inbound
// hostname's certificate, and that the cache holds what a restart needs to
// serve without the CA.
func TestACMEWithPebble(t *testing.T) {
	bin := requireComponents(t, "pebble", "knotd", "unbound")
	const (
		mxHost  = "mx.acme.test"
		domain  = "example.acme.test"
		stsHost = "mta-sts." + domain
	)
	hosts := []string{mxHost, stsHost}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	dnsSrv := StartDNSSEC(t, "acme.test", []string{
		mxHost + ". 300 IN A " + acmeAddr,
		stsHost + ". 300 IN A " + acmeAddr,
	}, DNSSECOptions{Knotd: bin["knotd"], Unbound: bin["unbound"]})

	ln, err := net.Listen("tcp", net.JoinHostPort(acmeAddr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	tlsPort := ln.Addr().(*net.TCPAddr).Port
	peb := acmeStartPebble(t, ctx, bin["pebble"], dnsSrv.Resolver, tlsPort, 0)

	cacheDir := filepath.Join(t.TempDir(), "acme")
	a, err := certs.NewACME(certs.ACMEConfig{
		Email:       "postmaster@" + domain,
		Directory:   peb.directory,
		Hosts:       hosts,
		DefaultHost: mxHost,
		CacheDir:    cacheDir,
		HTTPClient:  peb.client,
		Log:         zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	policy := &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{mxHost}, MaxAge: 7 * 24 * time.Hour}
	serverLog := &LockedBuffer{Max: 64 << 10}
	// Count the CA's TLS-ALPN-01 validation handshakes (ALPN acme-tls/1
	// only, RFC 8737 §3) per name.
	var challengeMu sync.Mutex
	challenges := map[string]int{}
	tlsConfig := a.TLSConfig()
	getCert := tlsConfig.GetCertificate
	tlsConfig.GetCertificate = func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if slices.Equal(h.SupportedProtos, []string{"acme-tls/1"}) {
			challengeMu.Lock()
			challenges[h.ServerName]++
			challengeMu.Unlock()
		}
		return getCert(h)
	}
	srv := &http.Server{
		Handler:           mtasts.Handler([]string{domain}, policy),
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(serverLog, "", log.LstdFlags),
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() {
		srv.Close()
		if t.Failed() {
			t.Logf("HTTPS listener log:\n%s", serverLog.String())
		}
	})
	listenAddr := ln.Addr().String()

	// The first handshake naming a host obtains its certificate.
	root := acmePebbleRoot(t, ctx, peb)
	leaves := map[string]*x509.Certificate{}
	for _, host := range hosts {
		start := time.Now()
		chain := acmeHandshake(t, ctx, listenAddr, &tls.Config{ServerName: host, NextProtos: []string{"http/1.1"}})
		acmeVerify(t, chain, host, root)
		leaves[host] = chain[0]
		t.Logf("%s: certificate obtained in %v, issuer %q, valid until %s",
			host, time.Since(start).Round(time.Millisecond), chain[0].Issuer.CommonName, chain[0].NotAfter.Format(time.DateOnly))
	}
	if leaves[mxHost].Equal(leaves[stsHost]) {
		t.Fatal("both hosts got the same certificate")
	}
	challengeMu.Lock()
	t.Logf("TLS-ALPN-01 validation handshakes: %v", challenges)
	for _, host := range hosts {
		if challenges[host] == 0 {
			t.Errorf("pebble made no TLS-ALPN-01 validation handshake for %s on %s (got %v)", host, listenAddr, challenges)
		}
	}
	challengeMu.Unlock()

	// The policy over HTTPS, verified against pebble's root, as a sender
	// fetches it (RFC 8461 §3.3).
	acmeCheckPolicy(t, ctx, listenAddr, root, stsHost, policy)

	// STARTTLS on port 25: a client without SNI gets the inbound
	// hostname's certificate, now from memory.
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	go func() {
		for {
			c, err := plain.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				s := tls.Server(c, certs.STARTTLSConfig(a))
				if s.Handshake() == nil {
					io.Copy(io.Discard, s)
				}
			}()
		}
	}()
	chain := acmeHandshake(t, ctx, plain.Addr().String(), &tls.Config{})
	acmeVerify(t, chain, mxHost, root)
	if !chain[0].Equal(leaves[mxHost]) {
		t.Errorf("STARTTLS without SNI: certificate for %v, want the one obtained for %s", chain[0].DNSNames, mxHost)
	}

	// The cache: the account key and both certificates; CachedKey gives
	// the served keys, for TLSA 3 1 1.
	entries, err := os.ReadDir(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	for _, want := range []string{"acme_account+key", mxHost, stsHost} {
		if !slices.Contains(names, want) {
			t.Errorf("cache %s holds %v, want %s among them", cacheDir, names, want)
		}
	}
	for _, host := range hosts {
		k, ok := a.CachedKey(host)
		if !ok {
			t.Errorf("CachedKey(%s): none", host)
			continue
		}
		want, _ := certs.TLSA311(leaves[host].PublicKey)
		if got, err := certs.TLSA311(k); err != nil || got != want {
			t.Errorf("TLSA311(CachedKey(%s)) = %q, %v; want %q, the served key", host, got, err, want)
		}
	}

	// A restart serves from the cache: a new ACME on the same directory
	// whose CA is unreachable hands out the same certificates.
	restarted, err := certs.NewACME(certs.ACMEConfig{
		Directory: "https://127.0.0.1:1/dir", Hosts: hosts, DefaultHost: mxHost, CacheDir: cacheDir, Log: zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range hosts {
		c, err := restarted.GetCertificate(&tls.ClientHelloInfo{
			ServerName:       host,
			SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
			SupportedCurves:  []tls.CurveID{tls.CurveP256},
			CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		})
		if err != nil {
			t.Errorf("after restart, %s: %v", host, err)
			continue
		}
		if !bytes.Equal(c.Certificate[0], leaves[host].Raw) {
			t.Errorf("after restart, %s: a different certificate than the one obtained", host)
		}
	}
}

// pebble is a running pebble ACME CA.
type pebble struct {
	directory string       // https://127.0.0.1:port/dir
	mgmt      string       // https://127.0.0.1:port (roots, intermediates)
	client    *http.Client // trusts pebble's own HTTPS certificate
}

// acmeStartPebble starts pebble with its HTTPS certificate made by testpki,
// resolving names through resolver and validating TLS-ALPN-01 on tlsPort
// (and HTTP-01 on httpPort, a free port if 0), and waits until its
// directory answers. It is stopped at cleanup and its
// log goes to the test log if the test failed.
func acmeStartPebble(t *testing.T, ctx context.Context, bin, resolver string, tlsPort, httpPort int) *pebble {
	t.Helper()
	dir := t.TempDir()
	ca := testpki.NewCA(t)
	certFile, keyFile := ca.WriteFiles(t, dir, testpki.LeafOptions{Names: []string{"localhost", "127.0.0.1"}})
	p := &pebble{client: &http.Client{
		Timeout:   20 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}},
	}}
	logPath := filepath.Join(dir, "pebble.log")
	t.Cleanup(func() {
		if b, err := os.ReadFile(logPath); err == nil && t.Failed() {
			t.Logf("pebble log:\n%s", b)
		}
	})
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		listen, mgmt := freeAddr(t), freeAddr(t)
		hp := strconv.Itoa(httpPort)
		if httpPort == 0 {
			_, hp, _ = net.SplitHostPort(freeAddr(t))
		}
		cfg := map[string]any{"pebble": map[string]any{
			"listenAddress":                  listen,
			"managementListenAddress":        mgmt,
			"certificate":                    certFile,
			"privateKey":                     keyFile,
			"httpPort":                       json.Number(hp),
			"tlsPort":                        tlsPort,
			"ocspResponderURL":               "",
			"externalAccountBindingRequired": false,
		}}
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		cfgPath := filepath.Join(dir, "pebble.json")
		if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
		// env(1) sets pebble's environment and execs it, so that the
		// harness's daemon stops pebble itself.
		d, err := startDaemon(logPath, "/usr/bin/env",
			"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0",
			bin, "-config", cfgPath, "-dnsserver", resolver)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := d.stop(5 * time.Second); err != nil {
				t.Errorf("pebble: %v", err)
			}
		})
		p.directory, p.mgmt = "https://"+listen+"/dir", "https://"+mgmt
		deadline := time.Now().Add(10 * time.Second)
		for {
			lastErr = acmeGet(ctx, p.client, p.directory, nil)
			if lastErr == nil {
				return p
			}
			if d.exited() {
				lastErr = fmt.Errorf("pebble exited: %v; last check: %w", d.err, lastErr)
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				t.Fatalf("pebble directory %s not ready: %v", p.directory, lastErr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Fatalf("pebble did not start: %v", lastErr)
	return nil
}

// acmeGet fetches url and, with out set, stores the body there.
func acmeGet(ctx context.Context, c *http.Client, url string, out *[]byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if out != nil {
		*out = b
	}
	return nil
}

// acmePebbleRoot fetches the root pebble issues under (a new one each
// start).
func acmePebbleRoot(t *testing.T, ctx context.Context, p *pebble) *x509.CertPool {
	t.Helper()
	var b []byte
	if err := acmeGet(ctx, p.client, p.mgmt+"/roots/0", &b); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("pebble root: no PEM certificate in %q", b)
	}
	return pool
}

// acmeHandshake makes a TLS connection to addr and returns the chain the
// server sent, unverified; the handshake may wait for an issuance.
func acmeHandshake(t *testing.T, ctx context.Context, addr string, cfg *tls.Config) []*x509.Certificate {
	t.Helper()
	cfg = cfg.Clone()
	cfg.InsecureSkipVerify = true // verified by acmeVerify against pebble's root
	hctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	d := &tls.Dialer{Config: cfg}
	c, err := d.DialContext(hctx, "tcp", addr)
	if err != nil {
		t.Fatalf("TLS handshake with %s (SNI %q): %v", addr, cfg.ServerName, err)
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates
}

// acmeVerify checks that chain's leaf is valid for host under root, with
// the intermediates the server sent, and has an ECDSA P-256 key.
func acmeVerify(t *testing.T, chain []*x509.Certificate, host string, root *x509.CertPool) {
	t.Helper()
	if len(chain) == 0 {
		t.Fatalf("%s: no certificate", host)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{DNSName: host, Roots: root, Intermediates: inter}); err != nil {
		t.Fatalf("%s: certificate %v does not verify against pebble's root: %v", host, chain[0].DNSNames, err)
	}
	if k, ok := chain[0].PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("%s: key %T, want ECDSA P-256", host, chain[0].PublicKey)
	}
}

// acmeCheckPolicy fetches https://<stsHost>/.well-known/mta-sts.txt through
// addr, trusting only pebble's root: raw, then with Caliop's own Fetcher.
func acmeCheckPolicy(t *testing.T, ctx context.Context, addr string, root *x509.CertPool, stsHost string, policy *mtasts.Policy) {
	t.Helper()
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext:     dial,
		TLSClientConfig: &tls.Config{RootCAs: root, MinVersion: tls.VersionTLS12},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+stsHost+"/.well-known/mta-sts.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("policy fetch: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/plain" || string(body) != policy.Marshal() {
		t.Fatalf("policy: %s, Content-Type %q, body %q; want 200, text/plain, %q",
			resp.Status, resp.Header.Get("Content-Type"), body, policy.Marshal())
	}
	if got := resp.TLS.PeerCertificates[0].DNSNames; !slices.Equal(got, []string{stsHost}) {
		t.Errorf("policy host certificate for %v, want [%s]", got, stsHost)
	}

	domain := strings.TrimPrefix(stsHost, "mta-sts.")
	f := &mtasts.Fetcher{DialContext: dial, Roots: root}
	p, err := f.Fetch(ctx, domain)
	if err != nil {
		t.Fatalf("mtasts.Fetcher: %v", err)
	}
	if p.Mode != policy.Mode || !slices.Equal(p.MX, policy.MX) || p.MaxAge != policy.MaxAge {
		t.Errorf("fetched policy %+v, want %+v", p, policy)
	}
	// Another path on the policy host: 404.
	req2, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+stsHost+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp2, err := c.Do(req2)
	if err != nil {
		t.Fatalf("GET / on the policy host: %v", err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusNotFound {
		t.Errorf("GET / on the policy host: %s, want 404", resp2.Status)
	}
}
