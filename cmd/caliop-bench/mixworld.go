package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"github.com/caliop/relay/internal/testworld/dnstest"
	"github.com/caliop/relay/wkd"
)

// mixWorld is the destinations of a provider's mix: domains d0.test …
// d<N-1>.test hosted by a few dozen providers, each a TLS sink on its own
// loopback address (127.0.1.k+1, one port for all, as MX hosts on the
// Internet share port 25), with certificates from a test CA that Caliop
// is told to trust (SSL_CERT_FILE). Domain i:
//   - is hosted by provider i mod P: MX mx1.prov<k>.test (and
//     mx2.prov<k>.test for one domain in five, i mod 5 = 4);
//   - publishes an MTA-STS policy in enforce (mx: *.prov<k>.test) when
//     (i/P) mod 10 >= 7, 30% of domains;
//   - is under DANE when its provider is among the first tenth: the
//     provider's MX hosts have TLSA records and every answer on the way
//     is DNSSEC-authentic, 10% of domains;
//   - has a WKD directory (openpgpkey.d<i>.test) when i mod 20 = 19, 5%.
//
// d0.test, the whole of the one-domain mix, thus has an MX only: the
// common case.
//
// The policies and the WKD keys are served over HTTPS on port 443 of the
// world's own loopback address (127.0.2.k), so that several worlds can run
// side by side.
type mixWorld struct {
	domains int
	httpsIP string
	sinks   []*sink
	dns     *dnstest.Server
	https   *http.Server
	caFile  string // PEM of the test CA, for SSL_CERT_FILE

	ca      *x509.Certificate
	caKey   *ecdsa.PrivateKey
	certsMu sync.Mutex
	certs   map[string]*tls.Certificate // minted per SNI name
	keysMu  sync.Mutex
	keys    map[string][]byte // WKD keys per address, binary

	stsFetches atomic.Int64
	wkdFetches atomic.Int64
}

// mixProviders is the number of providers (sinks) for n domains.
func mixProviders(n int) int { return min(n, 32) }

// mix rules, per domain index i and provider count p.
func mixProvider(i, p int) int      { return i % p }
func mixSTS(i, p int) bool          { return (i/p)%10 >= 7 }
func mixDANE(provider, p int) bool  { return provider < max(1, p/10) && p >= 10 }
func mixWKD(i int) bool             { return i%20 == 19 }
func mixTwoMX(i int) bool           { return i%5 == 4 }
func mixDomain(i int) string        { return "d" + strconv.Itoa(i) + ".test" }
func mixSinkIP(provider int) string { return fmt.Sprintf("127.0.1.%d", provider+1) }

// startMixWorld starts n domains' world, with its HTTPS server on
// httpsIP; dir holds the CA file.
func startMixWorld(n int, dir, httpsIP string) (_ *mixWorld, err error) {
	w := &mixWorld{domains: n, httpsIP: httpsIP, certs: map[string]*tls.Certificate{}, keys: map[string][]byte{}}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	if err := w.newCA(dir); err != nil {
		return nil, err
	}
	if w.dns, err = dnstest.New(); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p := mixProviders(n)
	for k := range p {
		name := fmt.Sprintf("prov%d.test", k)
		cert, err := w.leaf("*." + name)
		if err != nil {
			return nil, err
		}
		sk, err := startSinkOn(net.JoinHostPort(mixSinkIP(k), strconv.Itoa(port)), name, *cert)
		if err != nil {
			return nil, err
		}
		w.sinks = append(w.sinks, sk)
		w.publishProvider(k, cert)
	}
	for i := range n {
		w.publishDomain(i, p)
	}
	return w, w.startHTTPS()
}

// mxPort is the port every sink listens on.
func (w *mixWorld) mxPort() int {
	_, port, _ := net.SplitHostPort(w.sinks[0].Addr)
	n, _ := strconv.Atoi(port)
	return n
}

// publishProvider adds provider k's MX hosts, with TLSA records under
// DANE.
func (w *mixWorld) publishProvider(k int, cert *tls.Certificate) {
	p := mixProviders(w.domains)
	w.dns.Add("test. 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 300")
	spki := sha256.Sum256(cert.Leaf.RawSubjectPublicKeyInfo)
	for _, h := range []string{"mx1", "mx2"} {
		host := fmt.Sprintf("%s.prov%d.test", h, k)
		w.dns.Add(host + ". 300 IN A " + mixSinkIP(k))
		if mixDANE(k, p) {
			tlsa := "_25._tcp." + host
			w.dns.Add(tlsa + ". 300 IN TLSA 3 1 1 " + hex.EncodeToString(spki[:]))
			w.dns.SetAuthentic(host, true)
			w.dns.SetAuthentic(tlsa, true)
		}
	}
}

// publishDomain adds domain i's MX and, by the mix rules, its MTA-STS
// record and WKD host.
func (w *mixWorld) publishDomain(i, p int) {
	d := mixDomain(i)
	k := mixProvider(i, p)
	w.dns.Add(fmt.Sprintf("%s. 300 IN MX 10 mx1.prov%d.test.", d, k))
	if mixTwoMX(i) {
		w.dns.Add(fmt.Sprintf("%s. 300 IN MX 20 mx2.prov%d.test.", d, k))
	}
	if mixDANE(k, p) {
		w.dns.SetAuthentic(d, true)
	}
	if mixSTS(i, p) {
		w.dns.Add(`_mta-sts.` + d + `. 300 IN TXT "v=STSv1; id=1"`)
		w.dns.Add("mta-sts." + d + ". 300 IN A " + w.httpsIP)
	}
	if mixWKD(i) {
		w.dns.Add("openpgpkey." + d + ". 300 IN A " + w.httpsIP)
	}
}

// startHTTPS serves MTA-STS policies and WKD keys on port 443 of
// w.httpsIP.
func (w *mixWorld) startHTTPS() error {
	l, err := net.Listen("tcp", net.JoinHostPort(w.httpsIP, "443"))
	if err != nil {
		return fmt.Errorf("mix: the policy and WKD server needs %s:443 (root): %w", w.httpsIP, err)
	}
	w.https = &http.Server{Handler: http.HandlerFunc(w.serveHTTPS), ErrorLog: nil,
		TLSConfig: &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) { return w.leaf(h.ServerName) }}}
	go w.https.Serve(tls.NewListener(l, w.https.TLSConfig))
	return nil
}

func (w *mixWorld) serveHTTPS(rw http.ResponseWriter, r *http.Request) {
	host := strings.ToLower(r.Host)
	switch {
	case strings.HasPrefix(host, "mta-sts.") && r.URL.Path == "/.well-known/mta-sts.txt":
		w.stsFetches.Add(1)
		i, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(host, "mta-sts.d"), ".test"))
		k := mixProvider(i, mixProviders(w.domains))
		fmt.Fprintf(rw, "version: STSv1\r\nmode: enforce\r\nmx: *.prov%d.test\r\nmax_age: 604800\r\n", k)
	case strings.HasPrefix(host, "openpgpkey.") && strings.HasSuffix(r.URL.Path, "/policy"):
		// An empty policy file: the directory exists.
	case strings.HasPrefix(host, "openpgpkey.") && strings.Contains(r.URL.Path, "/hu/"):
		w.wkdFetches.Add(1)
		domain := strings.TrimPrefix(host, "openpgpkey.")
		local := r.URL.Query().Get("l")
		if local == "" || wkd.Hash(local) != r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:] {
			http.NotFound(rw, r)
			return
		}
		key, err := w.wkdKey(local + "@" + domain)
		if err != nil {
			http.Error(rw, err.Error(), 500)
			return
		}
		rw.Write(key)
	default:
		http.NotFound(rw, r)
	}
}

// wkdKey is addr's OpenPGP key (EdDSA), made at the first request.
func (w *mixWorld) wkdKey(addr string) ([]byte, error) {
	w.keysMu.Lock()
	defer w.keysMu.Unlock()
	if k, ok := w.keys[addr]; ok {
		return k, nil
	}
	e, err := openpgp.NewEntity("", "", addr, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	if err := e.Serialize(&b); err != nil {
		return nil, err
	}
	w.keys[addr] = []byte(b.String())
	return w.keys[addr], nil
}

// newCA makes the test CA and writes its certificate to dir/ca.pem.
func (w *mixWorld) newCA(dir string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "caliop-bench CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	if w.ca, err = x509.ParseCertificate(der); err != nil {
		return err
	}
	w.caKey = key
	w.caFile = filepath.Join(dir, "ca.pem")
	return os.WriteFile(w.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// leaf is a certificate for name from the CA, made once per name.
func (w *mixWorld) leaf(name string) (*tls.Certificate, error) {
	w.certsMu.Lock()
	defer w.certsMu.Unlock()
	if c, ok := w.certs[name]; ok {
		return c, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, w.ca, &key.PublicKey, w.caKey)
	if err != nil {
		return nil, err
	}
	leaf, _ := x509.ParseCertificate(der)
	c := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	w.certs[name] = c
	return c, nil
}

// sinkTotals adds up every sink's counters.
func (w *mixWorld) sinkTotals() (c sinkCounts, handshakes int64) {
	for _, s := range w.sinks {
		c = add(c, s.Counts())
		handshakes += s.handshakes.Load()
	}
	return c, handshakes
}

func (w *mixWorld) close() {
	if w.https != nil {
		w.https.Close()
	}
	for _, s := range w.sinks {
		s.Close()
	}
	if w.dns != nil {
		w.dns.Close()
	}
}

// freePort is a TCP port free on the loopback addresses the sinks use.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.1.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
