package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
	"github.com/emersion/go-smtp"
	"gopkg.in/yaml.v3"

	"github.com/caliop/relay/internal/testworld/dnstest"
	"github.com/caliop/relay/internal/testworld/mxtest"
	"github.com/caliop/relay/internal/testworld/testpki"
	"github.com/caliop/relay/learned"
	"github.com/caliop/relay/store"
	"github.com/caliop/relay/wkd"
)

// dashboardsDir holds the Grafana dashboards and Prometheus rules.
const dashboardsDir = "../../dashboards"

// TestPrometheusDashboards starts the real Prometheus (Debian package)
// scraping a Caliop that delivered a scripted mix of traffic through
// fakes, with dashboards/rules.yaml loaded, then runs every expression of
// every dashboard panel and every variable query (template variables
// substituted as Grafana would) against Prometheus's HTTP API: each must
// succeed and return at least one sample that is not NaN (what Grafana
// draws). Every recording rule must have data and evaluate without
// error, and the alerts the traffic calls for must be active.
//
// The traffic, sent twice over LMTP so that counters have two samples to
// take a rate from, with a fresh recipient (WKD results are cached per
// address) and fresh MX sessions each time, and one message on the
// inbound listener each time:
//
//   - tls.test: TLS to an MX with a certificate of the test CA (trusted
//     through SSL_CERT_FILE): delivered.
//   - notls.test: the MX offers no STARTTLS: 4xx, starttls-not-supported.
//   - sts.test: MTA-STS enforce, policy from the HTTPS host: delivered,
//     PKIX-authenticated.
//   - dane.test: DNSSEC-authentic TLSA 3 1 1 for a self-signed MX
//     certificate: delivered under DANE.
//   - plain.test: level none override, MX without STARTTLS: delivered in
//     plaintext.
//   - pgp.test: a WKD key for each recipient: PGP/MIME.
//   - verify.test: level verify, the MX certificate names another host:
//     4xx, certificate-host-mismatch.
//   - stsbad.test: an _mta-sts record but no policy host: fetch error,
//     delivered under the default.
//   - missing.test: no DNS records at all.
//
// MX hosts are on 127.0.9.N (one port for all, Caliop's mx_port); the
// MTA-STS policy and WKD host listens on port 443 of a free 127.9.x.y,
// so the test needs root.
func TestPrometheusDashboards(t *testing.T) {
	t.Parallel()
	bins := requireComponents(t, "prometheus", "root")
	start := time.Now()
	bin := buildCaliop(t)
	ca := testpki.NewCA(t)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}

	hosts := []string{"127.0.9.1", "127.0.9.2", "127.0.9.3", "127.0.9.4", "127.0.9.5", "127.0.9.6", "127.0.9.7", "127.0.9.8"}
	p := daneCommonPort(t, hosts)
	listen := func(i int) string { return net.JoinHostPort(hosts[i], strconv.Itoa(p)) }
	daneCert := ca.Leaf(t, testpki.LeafOptions{Names: []string{"not-mx.invalid"}, SelfSigned: true})
	wrongName := ca.Leaf(t, testpki.LeafOptions{Names: []string{"other.invalid"}})
	mxs := map[string]*mxtest.Server{
		"tls.test":    mxtest.Start(t, "mx.tls.test", ca, mxtest.Behavior{Listen: listen(0)}),
		"notls.test":  mxtest.Start(t, "mx.notls.test", ca, mxtest.Behavior{Listen: listen(1), NoSTARTTLS: true}),
		"sts.test":    mxtest.Start(t, "mx.sts.test", ca, mxtest.Behavior{Listen: listen(2)}),
		"dane.test":   mxtest.Start(t, "mx.dane.test", ca, mxtest.Behavior{Listen: listen(3), Cert: &daneCert}),
		"plain.test":  mxtest.Start(t, "mx.plain.test", ca, mxtest.Behavior{Listen: listen(4), NoSTARTTLS: true}),
		"pgp.test":    mxtest.Start(t, "mx.pgp.test", ca, mxtest.Behavior{Listen: listen(5)}),
		"verify.test": mxtest.Start(t, "mx.verify.test", ca, mxtest.Behavior{Listen: listen(6), Cert: &wrongName}),
		// The worst partner: one session ever, not authenticated (a
		// certificate for another name, delivered under encrypt).
		"once.test": mxtest.Start(t, "mx.once.test", ca, mxtest.Behavior{Listen: listen(7), Cert: &wrongName}),
	}
	recipients := func(round int) []string {
		var r []string
		for _, d := range []string{"tls.test", "notls.test", "sts.test", "dane.test", "plain.test", "pgp.test", "verify.test", "stsbad.test", "missing.test"} {
			r = append(r, fmt.Sprintf("r%d@%s", round, d))
		}
		return r
	}
	webIP := promWebHost(t, ca, []string{"r1@pgp.test", "r2@pgp.test"})

	dns := dnstest.Start(t)
	for i, d := range []string{"tls.test", "notls.test", "sts.test", "dane.test", "plain.test", "pgp.test", "verify.test", "once.test"} {
		dns.Add(d+". 60 IN MX 10 mx."+d+".", "mx."+d+". 60 IN A "+hosts[i])
	}
	dns.Add(
		`_mta-sts.sts.test. 60 IN TXT "v=STSv1; id=20250101"`,
		"mta-sts.sts.test. 60 IN A "+webIP,
		"_25._tcp.mx.dane.test. 60 IN TLSA 3 1 1 "+daneSPKI(daneCert),
		"openpgpkey.pgp.test. 60 IN A "+webIP,
		"stsbad.test. 60 IN MX 10 mx.tls.test.",
		`_mta-sts.stsbad.test. 60 IN TXT "v=STSv1; id=20250101"`,
		"mta-sts.stsbad.test. 60 IN A 127.0.9.0", // nothing listens there
	)
	for _, n := range []string{"dane.test", "mx.dane.test", "_25._tcp.mx.dane.test"} {
		dns.SetAuthentic(n, true)
	}

	// The inbound side, relaying to a store that plays the MTA.
	store := mxtest.Start(t, "store.relay.test", nil, mxtest.Behavior{NoSTARTTLS: true, XCLIENT: true})
	certFile, keyFile := ca.WriteFiles(t, dir, testpki.LeafOptions{Names: []string{"mx.relay.test"}})
	lmtp, metrics, inAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	// tls.test learned, in an earlier life, to deliver authenticated
	// from another MX: its sessions to mx.tls.test are learned-policy
	// violations, counted (learn.mode report, the default).
	dataDir := filepath.Join(t.TempDir(), "data")
	seedLearned(t, dataDir, learned.Record{Domain: "tls.test", MX: []string{"mx.elsewhere.test"}, Sessions: 40,
		FirstAuth: time.Now().AddDate(0, 0, -40), LastAuth: time.Now(), Requirement: learned.Verify, Since: time.Now().AddDate(0, 0, -30)})
	promStartCaliop(t, bin, Config{
		DataDir:         dataDir,
		Hostname:        "relay.test",
		DNS:             dns.Addr,
		LMTP:            lmtp,
		Metrics:         metrics,
		MXPort:          p,
		Default:         "encrypt",
		DeliveryTimeout: 20 * time.Second,
		Inbound: Inbound{
			Listen:   inAddr,
			Hostname: "mx.relay.test",
			Domains:  []string{"relay.test"},
			NextHop:  store.Addr,
			Cert:     certFile,
			Key:      keyFile,
		},
	}, "  domains:\n    plain.test: {level: none}\n    verify.test: {level: verify}\n",
		"SSL_CERT_FILE="+caFile)

	prom := startPrometheus(t, bins["prometheus"], metrics)
	prom.waitUp(t, 30*time.Second)
	t.Logf("caliop and prometheus ready after %v", time.Since(start).Round(time.Millisecond))

	// Two rounds with scrapes in between: a counter's first sample is
	// where its rate starts.
	wantClass := map[string]string{"tls.test": "2", "notls.test": "4", "sts.test": "2", "dane.test": "2", "plain.test": "2",
		"pgp.test": "2", "verify.test": "4", "stsbad.test": "2", "missing.test": "45", "once.test": "2"}
	for round := 1; round <= 2; round++ {
		// New sessions in each round, not reused ones: sessions are
		// counted when they start.
		for _, mx := range mxs {
			mx.CloseConnections()
		}
		rcpts := recipients(round)
		if round == 2 {
			// Its counter is born at 1, after Prometheus began scraping.
			rcpts = append(rcpts, "r2@once.test")
		}
		for _, rcpt := range rcpts {
			domain := rcpt[strings.IndexByte(rcpt, '@')+1:]
			r := daneLMTPSend(t, lmtp, "a@sender.test", rcpt, fmt.Sprintf("prometheus-%d-%s", round, randomHex(t)))
			if c := strconv.Itoa(r.Code); !strings.Contains(wantClass[domain], c[:1]) {
				t.Errorf("round %d: reply for %s = %s; want %sxx", round, rcpt, r, wantClass[domain])
			}
		}
		promInbound(t, ca, inAddr, fmt.Sprintf("in%d@relay.test", round))
		prom.waitScrapedAfter(t, time.Now().Add(2*time.Second), 30*time.Second)
	}
	if n := len(mxs["plain.test"].Messages()); n != 2 {
		t.Errorf("plain.test's MX stored %d messages, want 2", n)
	}
	if n := len(store.Messages()); n != 2 {
		t.Errorf("the inbound store holds %d messages, want 2", n)
	}
	for _, d := range []string{"notls.test", "verify.test"} {
		if n := mxs[d].MailCount(); n != 0 {
			t.Errorf("%s's MX saw %d MAIL commands, want none", d, n)
		}
	}
	t.Logf("traffic scraped after %v", time.Since(start).Round(time.Millisecond))

	vars := map[string]string{
		"job":      "caliop",
		"instance": promRegexValue(metrics),
		"domain":   ".+",
	}
	t.Run("panels", func(t *testing.T) {
		var missing []string
		exprs := 0
		for _, q := range dashboardQueries(t) {
			exprs++
			expr := substituteVars(q.expr, vars)
			if q.labelValues != "" {
				vals, err := prom.labelValues(q.labelValues, expr)
				if err != nil {
					t.Errorf("%s: %v", q.where, err)
				} else if len(vals) == 0 {
					missing = append(missing, fmt.Sprintf("%s: label_values(%s, %s): no values", q.where, expr, q.labelValues))
				}
				continue
			}
			res, err := prom.query(expr)
			if err != nil {
				t.Errorf("%s: %v\n\t%s", q.where, err, expr)
				continue
			}
			if why := res.noData(); why != "" {
				missing = append(missing, fmt.Sprintf("%s: %s\n\t%s", q.where, why, expr))
			}
		}
		if len(missing) > 0 {
			t.Errorf("%d of %d dashboard queries returned no data:\n%s\ncaliop's series:\n%s",
				len(missing), exprs, strings.Join(missing, "\n"), caliopSeries(metrics))
		}
	})

	// The partner with one unauthenticated session ever tops "Least
	// authenticated" and has a line in "Authenticated share by partner".
	t.Run("worst partner", func(t *testing.T) {
		for _, q := range dashboardQueries(t) {
			var want float64
			switch {
			case strings.Contains(q.where, `"Least authenticated"`):
				want = 1
			case strings.Contains(q.where, `"Authenticated share by partner"`):
				want = 0
			default:
				continue
			}
			res, err := prom.query(substituteVars(q.expr, vars))
			if err != nil {
				t.Fatalf("%s: %v", q.where, err)
			}
			byDomain, top := res.byLabel("domain")
			if v, ok := byDomain["once.test"]; !ok || v != want || want == 1 && v < top {
				t.Errorf("%s: once.test = %v (present %v), want %v; all: %v", q.where, v, ok, want, byDomain)
			}
		}
	})

	// The scripted mix, as the series should count it: without this a
	// panel of counters that stay at 0 would pass for data.
	t.Run("traffic", func(t *testing.T) {
		for _, q := range []string{
			`caliop_outbound_sessions_total{domain="dane.test", tls_version="1.3", auth="dane", policy="dane"} > 0`,
			`caliop_outbound_sessions_total{domain="sts.test", auth="pkix", policy="mta-sts-enforce"} > 0`,
			`caliop_outbound_sessions_total{domain="plain.test", tls_version="none", auth="none", policy="override"} > 0`,
			`caliop_delivered_messages_total{domain="dane.test", protection="tls-authenticated"} > 0`,
			`caliop_delivered_messages_total{domain="pgp.test", protection="pgp"} > 0`,
			`caliop_delivered_recipients_total{domain="plain.test", protection="plaintext"} > 0`,
			`caliop_plaintext_deliveries_total{domain="plain.test"} > 0`,
			`caliop_delivery_failures_total{domain="notls.test", result_type="starttls-not-supported"} > 0`,
			`caliop_delivery_failures_total{domain="verify.test", result_type="certificate-host-mismatch"} > 0`,
			`caliop_delivery_recipients_total{class="2xx"} > 0`,
			`caliop_delivery_recipients_total{class="4xx"} > 0`,
			`caliop_delivery_duration_seconds_count > 0`,
			`caliop_mtasts_fetches_total{result="ok"} > 0`,
			`caliop_mtasts_fetches_total{result="fetch-error"} > 0`,
			`caliop_mtasts_policies{mode="enforce"} > 0`,
			`caliop_dane_verifications_total{result="match"} > 0`,
			`caliop_wkd_lookups_total{result="key"} > 0`,
			`caliop_wkd_lookups_total{result="no-key"} > 0`,
			`caliop_wkd_lookup_duration_seconds_count > 0`,
			`caliop_pgp_messages_total{decision="encrypted"} > 0`,
			`caliop_inbound_sessions_total{tls_version="1.3"} > 0`,
			`caliop_certificate_expiry_timestamp_seconds{host="mx.relay.test"} > time()`,
		} {
			res, err := prom.query(q)
			if err != nil {
				t.Errorf("%s: %v", q, err)
			} else if why := res.noData(); why != "" {
				t.Errorf("%s: %s", q, why)
			}
		}
	})

	t.Run("rules", func(t *testing.T) {
		records, alerts := ruleNames(t)
		for _, r := range records {
			res, err := prom.query(r + `{job="caliop"}`)
			if err != nil {
				t.Errorf("recording rule %s: %v", r, err)
			} else if why := res.noData(); why != "" {
				t.Errorf("recording rule %s: %s", r, why)
			}
		}
		health, err := prom.ruleHealth()
		if err != nil {
			t.Fatal(err)
		}
		if len(health) != len(records)+len(alerts) {
			t.Errorf("prometheus loaded %d rules, rules.yaml has %d", len(health), len(records)+len(alerts))
		}
		for name, h := range health {
			if h != "ok" {
				t.Errorf("rule %s: health %s", name, h)
			}
		}
		// A plaintext delivery fires at once; the test CA's certificates
		// expire within a day, so that alert is pending (for: 10m).
		for alert, state := range map[string]string{"CaliopPlaintextDelivery": "firing", "CaliopCertificateExpiresSoon": "pending"} {
			q := fmt.Sprintf(`ALERTS{alertname=%q, alertstate=%q, job="caliop"}`, alert, state)
			res, err := prom.query(q)
			if err != nil {
				t.Errorf("%s: %v", q, err)
			} else if why := res.noData(); why != "" {
				t.Errorf("alert %s is not %s: %s", alert, state, why)
			}
		}
	})
}

// promStartCaliop starts Caliop like daneStartCaliop, with extraOutbound
// (indented YAML) appended to the outbound section, or unindented YAML
// added as top-level sections, and env added to the process's
// environment, and waits for the inbound listener too. It returns the
// output and the configuration file.
// seedLearned writes r into the store in dataDir, before Caliop starts.
func seedLearned(t *testing.T, dataDir string, r learned.Record) {
	t.Helper()
	st, err := store.Open(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(learned.Bucket, r.Domain, r); err != nil {
		t.Fatal(err)
	}
}

func promStartCaliop(t *testing.T, bin string, cfg Config, extraOutbound string, env ...string) (out *LockedBuffer, configPath string) {
	t.Helper()
	dir := t.TempDir()
	if cfg.DataDir == "" {
		cfg.DataDir = filepath.Join(dir, "data")
	}
	text := cfg.YAML()
	// metrics: follows the outbound section.
	i := strings.Index(text, "\nmetrics: ")
	if i < 0 {
		t.Fatalf("no metrics: line in the configuration:\n%s", text)
	}
	text = text[:i+1] + extraOutbound + text[i+1:]
	p := &Process{Config: cfg, ConfigPath: filepath.Join(dir, "caliop.yaml"), done: make(chan struct{})}
	if err := os.WriteFile(p.ConfigPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out = &LockedBuffer{Max: 1 << 20}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("caliop config:\n%s\ncaliop output:\n%s", text, out.String())
		}
	})
	p.cmd = exec.Command(bin, "serve", "--config", p.ConfigPath)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start caliop: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if err := p.Stop(15 * time.Second); err != nil {
			t.Error(err)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for _, addr := range []string{cfg.LMTP, cfg.Metrics, cfg.Inbound.Listen} {
		if addr == "" {
			continue
		}
		if err := p.waitListening(addr, deadline); err != nil {
			t.Fatal(err)
		}
	}
	return out, p.ConfigPath
}

// promWebHost serves the MTA-STS policy of sts.test and the WKD keys of
// the given addresses of pgp.test over HTTPS, with a certificate of ca
// for both host names, on port 443 of a 127.9.x.y address free a moment
// ago (another test process may run this test), which it returns.
func promWebHost(t *testing.T, ca *testpki.CA, keyAddrs []string) string {
	t.Helper()
	keys := map[string][]byte{} // advanced-method path → binary key
	for _, a := range keyAddrs {
		e, err := openpgp.NewEntity("U", "", a, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := e.Serialize(&b); err != nil {
			t.Fatal(err)
		}
		local, domain, _ := strings.Cut(a, "@")
		u, err := url.Parse(wkd.AdvancedURL(local, domain))
		if err != nil {
			t.Fatal(err)
		}
		keys[u.Path] = b.Bytes()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("mta-sts.sts.test/.well-known/mta-sts.txt", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "version: STSv1\r\nmode: enforce\r\nmx: mx.sts.test\r\nmax_age: 86400\r\n")
	})
	mux.HandleFunc("openpgpkey.pgp.test/", func(w http.ResponseWriter, r *http.Request) {
		k, ok := keys[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(k)
	})
	var l net.Listener
	var err error
	for range 20 {
		b := make([]byte, 2)
		rand.Read(b)
		l, err = net.Listen("tcp", fmt.Sprintf("127.9.%d.%d:443", b[0], 1+b[1]%254))
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("policy and WKD host: %v", err)
	}
	cert := ca.Leaf(t, testpki.LeafOptions{Names: []string{"mta-sts.sts.test", "openpgpkey.pgp.test"}})
	srv := &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ReadHeaderTimeout: 10 * time.Second}
	go srv.ServeTLS(l, "", "")
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).IP.String()
}

// promInbound sends one message to rcpt on Caliop's inbound listener
// over STARTTLS.
func promInbound(t *testing.T, ca *testpki.CA, addr, rcpt string) {
	t.Helper()
	c, err := smtp.DialStartTLS(addr, &tls.Config{ServerName: "mx.relay.test", RootCAs: ca.Pool})
	if err != nil {
		t.Errorf("inbound %s: %v", addr, err)
		return
	}
	defer c.Close()
	msg := "From: <a@sender.test>\r\nTo: <" + rcpt + ">\r\nSubject: inbound\r\n\r\nhello\r\n"
	if err := c.SendMail("a@sender.test", []string{rcpt}, strings.NewReader(msg)); err != nil {
		t.Errorf("inbound message to %s: %v", rcpt, err)
	}
	c.Quit()
}

// caliopSeries returns the caliop_ lines of Caliop's /metrics at addr,
// histogram buckets left out, for a failure message.
func caliopSeries(addr string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err.Error()
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "caliop_") && !strings.Contains(l, "_bucket{") {
			lines = append(lines, "\t"+l)
		}
	}
	return strings.Join(lines, "\n")
}

// prometheus is a running Prometheus server.
type prometheus struct {
	base string // http://127.0.0.1:port
}

// startPrometheus runs bin scraping target every second as job caliop,
// with dashboards/rules.yaml evaluated every second, and stops it when
// the test ends.
func startPrometheus(t *testing.T, bin, target string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs(filepath.Join(dashboardsDir, "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: caliop
    static_configs:
      - targets: [%q]
`, rules, target)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	web := freeAddr(t)
	out := &LockedBuffer{Max: 1 << 20}
	cmd := exec.Command(bin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+web, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("prometheus still running 10s after SIGTERM; killed")
		}
		if t.Failed() {
			t.Logf("prometheus config:\n%s\nprometheus output:\n%s", cfg, out.String())
		}
	})
	p := &prometheus{base: "http://" + web}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-done:
			t.Fatalf("prometheus exited:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 30s (%v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitUp waits until the caliop target is up and scraped at least three
// times.
func (p *prometheus) waitUp(t *testing.T, timeout time.Duration) {
	t.Helper()
	p.waitFor(t, timeout, "caliop scraped 3 times and up", func() bool {
		res, err := p.query(`count_over_time(up{job="caliop"}[1m]) >= 3 and up{job="caliop"} == 1`)
		return err == nil && res.noData() == ""
	})
}

// waitScrapedAfter waits until Prometheus holds a scrape of caliop taken
// after at, and has evaluated the rules on it (the next second).
func (p *prometheus) waitScrapedAfter(t *testing.T, at time.Time, timeout time.Duration) {
	t.Helper()
	p.waitFor(t, timeout, "a scrape after "+at.Format(time.TimeOnly), func() bool {
		res, err := p.query(fmt.Sprintf(`timestamp(up{job="caliop"}) > %d`, at.Unix()))
		return err == nil && res.noData() == ""
	})
	time.Sleep(1500 * time.Millisecond)
}

func (p *prometheus) waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("prometheus: no %s after %v", what, timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// promResult is the data of an instant query.
type promResult struct {
	Type   string          `json:"resultType"`
	Result json.RawMessage `json:"result"`
}

// byLabel returns an instant vector's values by the value of label, and
// the largest value.
func (r promResult) byLabel(label string) (map[string]float64, float64) {
	var v []struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	}
	json.Unmarshal(r.Result, &v)
	out, top := map[string]float64{}, math.Inf(-1)
	for _, s := range v {
		str, _ := s.Value[1].(string)
		f, err := strconv.ParseFloat(str, 64)
		if err != nil {
			continue
		}
		out[s.Metric[label]] = f
		top = max(top, f)
	}
	return out, top
}

// noData says why r has nothing Grafana would draw: no series, or only
// NaN; "" when some sample is a number.
func (r promResult) noData() string {
	var values [][2]any // [time, "value"] pairs
	switch r.Type {
	case "vector":
		var v []struct {
			Value [2]any `json:"value"`
		}
		json.Unmarshal(r.Result, &v)
		for _, s := range v {
			values = append(values, s.Value)
		}
	case "scalar":
		var s [2]any
		json.Unmarshal(r.Result, &s)
		values = append(values, s)
	default:
		return "result type " + r.Type
	}
	if len(values) == 0 {
		return "empty result"
	}
	for _, v := range values {
		s, _ := v[1].(string)
		if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) {
			return ""
		}
	}
	return fmt.Sprintf("%d samples, all NaN", len(values))
}

// query runs an instant query now.
func (p *prometheus) query(expr string) (promResult, error) {
	var r promResult
	err := p.get("/api/v1/query?query="+url.QueryEscape(expr), &r)
	return r, err
}

// labelValues is Grafana's label_values(match, label).
func (p *prometheus) labelValues(label, match string) ([]string, error) {
	var v []string
	err := p.get("/api/v1/label/"+url.PathEscape(label)+"/values?match[]="+url.QueryEscape(match), &v)
	return v, err
}

// ruleHealth returns the health of every loaded rule, by name.
func (p *prometheus) ruleHealth() (map[string]string, error) {
	var d struct {
		Groups []struct {
			Rules []struct {
				Name, Health, LastError string
			}
		}
	}
	if err := p.get("/api/v1/rules", &d); err != nil {
		return nil, err
	}
	h := map[string]string{}
	for _, g := range d.Groups {
		for _, r := range g.Rules {
			h[r.Name] = r.Health
			if r.LastError != "" {
				h[r.Name] += ": " + r.LastError
			}
		}
	}
	return h, nil
}

// get decodes the data of a successful API answer into data.
func (p *prometheus) get(path string, data any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("%s: HTTP %d: %w", path, resp.StatusCode, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("status %q: %s: %s", body.Status, body.ErrorType, body.Error)
	}
	return json.Unmarshal(body.Data, data)
}

// dashQuery is one query a dashboard makes: a panel target's expression,
// or a variable's label_values selector (labelValues set).
type dashQuery struct {
	where       string // dashboard, panel and refId, or variable
	expr        string
	labelValues string
}

// dashboardQueries reads every panel target and query variable of the
// dashboards.
func dashboardQueries(t *testing.T) []dashQuery {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dashboardsDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in %s: %v", dashboardsDir, err)
	}
	type panel struct {
		Title   string
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		}
		Panels json.RawMessage // a collapsed row's
	}
	var qs []dashQuery
	var walk func(file string, raw json.RawMessage)
	walk = func(file string, raw json.RawMessage) {
		var ps []panel
		if len(raw) == 0 {
			return
		}
		if err := json.Unmarshal(raw, &ps); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, p := range ps {
			for _, tg := range p.Targets {
				qs = append(qs, dashQuery{where: fmt.Sprintf("%s %q %s", file, p.Title, tg.RefID), expr: tg.Expr})
			}
			walk(file, p.Panels)
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels     json.RawMessage
			Templating struct {
				List []struct {
					Name, Type string
					Query      json.RawMessage
				}
			}
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		name := filepath.Base(f)
		walk(name, d.Panels)
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			var q string
			if json.Unmarshal(v.Query, &q) != nil {
				var o struct{ Query string }
				json.Unmarshal(v.Query, &o)
				q = o.Query
			}
			m := labelValues.FindStringSubmatch(q)
			if m == nil {
				t.Errorf("%s: variable %s: query %q is not label_values(selector, label)", name, v.Name, q)
				continue
			}
			qs = append(qs, dashQuery{where: fmt.Sprintf("%s variable %s", name, v.Name), expr: m[1], labelValues: m[2]})
		}
	}
	return qs
}

// substituteVars replaces Grafana's variables: the dashboard's from vars
// and the interval ones; $__rate_interval is what Grafana computes for a
// 15s scrape interval at most.
func substituteVars(expr string, vars map[string]string) string {
	pairs := []string{"$__rate_interval", "1m", "$__range", "1h", "$__interval", "15s"}
	for k, v := range vars {
		pairs = append(pairs, "${"+k+"}", v, "$"+k, v)
	}
	return strings.NewReplacer(pairs...).Replace(expr)
}

// promRegexValue is a single variable value as Grafana puts it into a
// =~ matcher: regexp metacharacters escaped, backslashes doubled for the
// PromQL string.
func promRegexValue(v string) string {
	return strings.ReplaceAll(regexp.QuoteMeta(v), `\`, `\\`)
}

// ruleNames returns the recording rules and the alerts of rules.yaml.
func ruleNames(t *testing.T) (records, alerts []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dashboardsDir, "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct{ Record, Alert string }
		}
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				records = append(records, r.Record)
			} else if r.Alert != "" {
				alerts = append(alerts, r.Alert)
			}
		}
	}
	if len(records) == 0 || len(alerts) == 0 {
		t.Fatal("rules.yaml: no recording rules or no alerts")
	}
	return records, alerts
}
