package check

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caliop/relay/delivery"
	"github.com/caliop/relay/internal/testworld/dnstest"
	"github.com/caliop/relay/internal/testworld/mxtest"
	"github.com/caliop/relay/internal/testworld/testpki"
	"github.com/caliop/relay/mtasts"
	"github.com/caliop/relay/mtasts/stscache"
	"github.com/caliop/relay/policy"
	"github.com/caliop/relay/resolver"
)

// world is fake DNS and fake MXs: MX hosts get addresses 127.0.1.N in
// DNS, and the prober's dialer maps them to the real listeners (as in
// relay/harness_test.go).
type world struct {
	t     *testing.T
	dns   *dnstest.Server
	ca    *testpki.CA
	res   *resolver.Resolver
	mu    sync.Mutex
	addrs map[string]string
}

func newWorld(t *testing.T) *world {
	t.Parallel()
	w := &world{t: t, dns: dnstest.Start(t), ca: testpki.NewCA(t), addrs: map[string]string{}}
	var err error
	if w.res, err = resolver.New(resolver.Config{Servers: []string{w.dns.Addr}, Timeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	w.mu.Lock()
	real, ok := w.addrs[addr]
	w.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("dial %s: connection refused", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, real)
}

// mx starts an MX for host, published at 127.0.1.N, in domain at pref.
func (w *world) mx(domain, host string, pref int, b mxtest.Behavior) *mxtest.Server {
	s := mxtest.Start(w.t, host, w.ca, b)
	w.mu.Lock()
	ip := "127.0.1." + strconv.Itoa(len(w.addrs)+1)
	w.addrs[ip+":25"] = s.Addr
	w.mu.Unlock()
	w.dns.Add(host+". 60 IN A "+ip, fmt.Sprintf("%s. 60 IN MX %d %s.", domain, pref, host))
	return s
}

// check runs a Checker wired like the relay: the engine with TLSA and sts
// (nil: no MTA-STS), default encrypt.
func (w *world) check(domain string, sts *fakeSTS) (Report, map[string]any) {
	w.t.Helper()
	e := &policy.Engine{DNS: w.res, Default: policy.Requirement{Level: policy.Encrypt, MinTLS: tls.VersionTLS12}, TLSA: w.res}
	c := &Checker{DNS: w.res, Engine: e, Port: 25, Prober: &delivery.Deliverer{
		Hostname: "relay.test", Dial: w.dial, Roots: w.ca.Pool, ConnectTimeout: 5 * time.Second,
	}}
	if sts != nil {
		e.STS, c.STS = sts, sts
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := c.Check(ctx, domain)
	b, err := json.Marshal(r)
	if err != nil {
		w.t.Fatal(err)
	}
	var js map[string]any
	if err := json.Unmarshal(b, &js); err != nil {
		w.t.Fatal(err)
	}
	var text bytes.Buffer
	r.WriteText(&text)
	if !strings.Contains(text.String(), "verdict:  "+r.Verdict+" (exit ") {
		w.t.Errorf("text lacks the verdict:\n%s", text.String())
	}
	w.t.Logf("%s", text.String())
	return r, js
}

type fakeSTS struct{ res stscache.Result }

func (f *fakeSTS) Lookup(context.Context, string) stscache.Result { return f.res }
func (f *fakeSTS) Refetch(context.Context, string) bool           { return false }

// get follows a dotted path of JSON field names and array indexes.
func get(js any, path string) any {
	for _, k := range strings.Split(path, ".") {
		switch v := js.(type) {
		case map[string]any:
			js = v[k]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i >= len(v) {
				return nil
			}
			js = v[i]
		default:
			return nil
		}
	}
	return js
}

// expect checks JSON fields: a string want is a substring of a string
// field; anything else must be equal.
func expect(t *testing.T, js map[string]any, want map[string]any) {
	t.Helper()
	for path, w := range want {
		got := get(js, path)
		if s, ok := w.(string); ok {
			if g, ok := got.(string); !ok || !strings.Contains(g, s) {
				t.Errorf("%s = %#v, want it to contain %q", path, got, s)
			}
		} else if got != w {
			t.Errorf("%s = %#v, want %#v", path, got, w)
		}
	}
}

func spki311(c tls.Certificate) string {
	sum := sha256.Sum256(c.Leaf.RawSubjectPublicKeyInfo)
	return fmt.Sprintf("3 1 1 %x", sum)
}

// TestDANEMatch: a self-signed certificate pinned by a DNSSEC-secure
// DANE-EE(3) record authenticates the MX (RFC 7672 §3.1.1).
func TestDANEMatch(t *testing.T) {
	w := newWorld(t)
	cert := w.ca.Leaf(t, testpki.LeafOptions{Names: []string{"mx1.example.test"}, SelfSigned: true})
	w.mx("example.test", "mx1.example.test", 10, mxtest.Behavior{Cert: &cert})
	rec := spki311(cert)
	w.dns.Add("_25._tcp.mx1.example.test. 60 IN TLSA " + rec)
	w.dns.SetAuthenticAll(true)
	r, js := w.check("Example.Test.", nil)
	if r.ExitCode() != 0 {
		t.Errorf("exit %d (%s: %s), want 0", r.ExitCode(), r.Verdict, r.Reason)
	}
	expect(t, js, map[string]any{
		"domain":                     "example.test",
		"verdict":                    "authenticated",
		"reason":                     "mx1.example.test: DANE-EE 3 1 1 matched (TLSA _25._tcp.mx1.example.test)",
		"policy_source":              "dane",
		"mx.0.dnssec":                true,
		"mx.0.requirement":           "dane,tls>=1.2",
		"mx.0.tlsa.secure":           true,
		"mx.0.tlsa.records.0.record": rec,
		"mx.0.tlsa.records.0.usable": true,
		"mx.0.addresses.0.dnssec":    true,
		"mx.0.addresses.0.probe.tlsa_match.0.record":      rec,
		"mx.0.addresses.0.probe.tlsa_match.0.depth":       0.0,
		"mx.0.addresses.0.probe.tlsa_verified":            true,
		"mx.0.addresses.0.probe.certificate.webpki_valid": false,
		"mx.0.addresses.0.probe.certificate.webpki_error": "unknown authority",
	})
	if get(js, "mta_sts") != nil {
		t.Errorf("mta_sts without an STS cache: %v", get(js, "mta_sts"))
	}
}

// TestDANEMismatch: TLSA records that name another key refuse the MX
// (RFC 7672 §9.1), even with a WebPKI-valid certificate.
func TestDANEMismatch(t *testing.T) {
	w := newWorld(t)
	w.mx("example.test", "mx1.example.test", 10, mxtest.Behavior{})
	other := w.ca.Leaf(t, testpki.LeafOptions{Names: []string{"mx1.example.test"}})
	w.dns.Add("_25._tcp.mx1.example.test. 60 IN TLSA " + spki311(other))
	w.dns.SetAuthenticAll(true)
	r, js := w.check("example.test", nil)
	if r.ExitCode() != 2 {
		t.Errorf("exit %d (%s: %s), want 2", r.ExitCode(), r.Verdict, r.Reason)
	}
	expect(t, js, map[string]any{
		"verdict":                              "refused",
		"reason":                               "no tlsa record matched",
		"mx.0.verdict":                         "refused",
		"mx.0.addresses.0.probe.tlsa_verified": false,
		"mx.0.addresses.0.probe.tlsa_error":    "no tlsa record matched",
		"mx.0.addresses.0.probe.certificate.webpki_valid": true,
	})
	if m := get(js, "mx.0.addresses.0.probe.tlsa_match"); m != nil {
		t.Errorf("tlsa_match = %v, want none", m)
	}
}

// TestEncryptedDefault: no DANE, no MTA-STS: the default encrypt level,
// exit 1; the TLS-RPT record is shown (RFC 8460 §3).
func TestEncryptedDefault(t *testing.T) {
	w := newWorld(t)
	w.mx("example.test", "mx.example.test", 10, mxtest.Behavior{})
	w.dns.Add(
		`_smtp._tls.example.test. 60 IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.test"`,
		`_smtp._tls.example.test. 60 IN TXT "v=spf1 -all"`,
	)
	r, js := w.check("example.test", &fakeSTS{res: stscache.Result{RecordErr: mtasts.ErrNoRecord}})
	if r.ExitCode() != 1 {
		t.Errorf("exit %d (%s: %s), want 1", r.ExitCode(), r.Verdict, r.Reason)
	}
	expect(t, js, map[string]any{
		"verdict":                                         "encrypted",
		"reason":                                          "mx.example.test: TLS 1.3, any certificate accepted under local default encrypt",
		"mx.0.dnssec":                                     false,
		"mx.0.usable":                                     true,
		"mx.0.requirement":                                "encrypt,tls>=1.2",
		"mx.0.tlsa.secure":                                false,
		"mx.0.addresses.0.address":                        "127.0.1.1",
		"mx.0.addresses.0.dnssec":                         false,
		"mx.0.addresses.0.probe.starttls":                 true,
		"mx.0.addresses.0.probe.tls_version":              "TLS 1.3",
		"mx.0.addresses.0.probe.cipher":                   "TLS_",
		"mx.0.addresses.0.probe.certificate.names.0":      "mx.example.test",
		"mx.0.addresses.0.probe.certificate.expired":      false,
		"mx.0.addresses.0.probe.certificate.webpki_valid": true,
		"mta_sts.record_error":                            "no record",
		"tls_rpt.record":                                  "v=TLSRPTv1; rua=mailto:tlsrpt@example.test",
	})
	if get(js, "mx.0.sts_admitted") != nil || get(js, "mx.0.addresses.0.probe.tlsa_verified") != nil {
		t.Error("sts_admitted or tlsa_verified present without a policy or records")
	}
}

// TestMTASTSEnforce: an enforced policy admits mx1, whose certificate is
// WebPKI-valid (RFC 8461 §4.2); mx2 is outside the policy, shown and
// probed, never used.
func TestMTASTSEnforce(t *testing.T) {
	w := newWorld(t)
	w.mx("example.test", "mx1.example.test", 10, mxtest.Behavior{})
	w.mx("example.test", "mx2.other.test", 5, mxtest.Behavior{})
	p, err := mtasts.ParsePolicy([]byte("version: STSv1\nmode: enforce\nmx: *.example.test\nmax_age: 86400\n"))
	if err != nil {
		t.Fatal(err)
	}
	sts := &fakeSTS{res: stscache.Result{Domain: "example.test", Policy: p, ID: "2024", Source: stscache.SourceFetched, Record: "v=STSv1; id=2024", Expires: time.Now().Add(24 * time.Hour)}}
	r, js := w.check("example.test", sts)
	if r.ExitCode() != 0 {
		t.Errorf("exit %d (%s: %s), want 0", r.ExitCode(), r.Verdict, r.Reason)
	}
	expect(t, js, map[string]any{
		"verdict":                         "authenticated",
		"reason":                          "mx1.example.test: certificate valid for the MX name under MTA-STS enforce (policy 2024)",
		"policy_source":                   "mta-sts",
		"mx.0.host":                       "mx2.other.test",
		"mx.0.sts_admitted":               false,
		"mx.0.usable":                     false,
		"mx.0.verdict":                    "refused",
		"mx.0.reason":                     "not admitted by MTA-STS policy 2024",
		"mx.0.addresses.0.probe.starttls": true,
		"mx.1.host":                       "mx1.example.test",
		"mx.1.sts_admitted":               true,
		"mx.1.requirement":                "verify,tls>=1.2",
		"mta_sts.mode":                    "enforce",
		"mta_sts.mx.0":                    "*.example.test",
		"mta_sts.max_age":                 86400.0,
		"mta_sts.source":                  "fetched",
		"tls_rpt.error":                   "no record",
	})

	// The same policy without mx1 admits no MX: the plan refuses.
	p2, _ := mtasts.ParsePolicy([]byte("version: STSv1\nmode: enforce\nmx: mx.elsewhere.test\nmax_age: 86400\n"))
	sts.res.Policy = p2
	r, js = w.check("example.test", sts)
	if r.ExitCode() != 2 {
		t.Errorf("no MX admitted: exit %d, want 2", r.ExitCode())
	}
	expect(t, js, map[string]any{"reason": policy.ErrSTSNoMX.Error(), "mx.1.sts_admitted": false})
}

// TestNoSTARTTLS: an MX without STARTTLS is refused (no plaintext
// fallback, DESIGN.md invariant 2).
func TestNoSTARTTLS(t *testing.T) {
	w := newWorld(t)
	w.mx("example.test", "mx.example.test", 10, mxtest.Behavior{NoSTARTTLS: true})
	r, js := w.check("example.test", nil)
	if r.ExitCode() != 2 {
		t.Errorf("exit %d (%s: %s), want 2", r.ExitCode(), r.Verdict, r.Reason)
	}
	expect(t, js, map[string]any{
		"verdict":                         "refused",
		"reason":                          "mx.example.test: 127.0.1.1: STARTTLS not offered",
		"mx.0.addresses.0.probe.starttls": false,
		"mx.0.addresses.0.verdict":        "refused",
	})
	if get(js, "mx.0.addresses.0.probe.certificate") != nil {
		t.Error("certificate reported without TLS")
	}
}
