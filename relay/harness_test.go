package relay

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/caliop/relay/delivery"
	"github.com/caliop/relay/internal/testworld/dnstest"
	"github.com/caliop/relay/internal/testworld/fakeclock"
	"github.com/caliop/relay/internal/testworld/mxtest"
	"github.com/caliop/relay/internal/testworld/testpki"
	"github.com/caliop/relay/learned"
	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/metrics/metricstest"
	"github.com/caliop/relay/mtasts"
	"github.com/caliop/relay/mtasts/stscache"
	"github.com/caliop/relay/policy"
	"github.com/caliop/relay/resolver"
	"github.com/caliop/relay/store"
	"github.com/caliop/relay/tlsrpt"
)

// world is one relay with its fake DNS and fake destination MXs. MX hosts
// get addresses 127.0.1.N in DNS; the dialer maps them to the fake
// servers' real listeners.
type world struct {
	t       testing.TB
	dns     *dnstest.Server
	ca      *testpki.CA
	engine  *policy.Engine
	deliver *delivery.Deliverer
	reg     *prometheus.Registry
	metrics *metrics.Metrics // on reg
	srv     *Server
	smtp    string // relay SMTP listener
	lmtp    string // relay LMTP listener

	// With worldOpts.sts: the MTA-STS cache and what sessions reported.
	sts   *stscache.Cache
	tally *tlsrpt.Tally

	// With worldOpts.learn: the learner, its store and its clock.
	learner    *learned.Learner
	learnStore store.Store
	clock      *fakeclock.Clock

	mu    sync.Mutex
	addrs map[string]string // "127.0.1.N:25", "127.0.2.N:443" → real address
	hosts map[string]string // MX host → "127.0.1.N:25"
	next  int
}

type worldOpts struct {
	users      map[string]string
	untrusted  bool
	trusted    []netip.Prefix // replaces 127.0.0.0/8 when set
	authLimits AuthLimits
	connLimits ConnLimits
	greeting   time.Duration // delivery.Deliverer.GreetingTimeout
	// planner wraps the world's policy engine, when set.
	planner   func(Planner) Planner
	log       *zap.Logger // the server's; nil: the test's
	timeout   time.Duration
	overrides map[string]policy.Requirement
	tls       bool
	sts       bool // enable MTA-STS (policies published with stsPolicy)
	dane      bool // enable DANE; every DNS answer is marked DNSSEC-authentic
	// honourTLSRequiredNo sets Options.HonourTLSRequiredNo.
	honourTLSRequiredNo bool
	pgp                 Encrypter // Options.PGP
	// learn is learn.mode (report or enforce): the world gets a learner
	// on its own store and fake clock (world.learner, world.clock).
	learn string
	// memoryBuffer is Options.MemoryBuffer; 0: 4 KiB, so that tests
	// spill bodies to disk.
	memoryBuffer int64
	// learnStore is the learner's store; nil: a new embedded one.
	learnStore store.Store
	// noPool delivers every message on a new connection (a session per
	// message, as the learner counts them).
	noPool bool
	// dnsCache is the resolver's cache size (dns.cache_size); 0: none, so
	// that a test's DNS change shows at once.
	dnsCache int
	// metrics bound the domain label of the world's metrics (registered
	// on world.reg and given to every component).
	metrics metrics.Options
}

func newWorld(t testing.TB, o worldOpts) *world {
	t.Helper()
	w := &world{t: t, dns: dnstest.Start(t), ca: testpki.NewCA(t), addrs: map[string]string{}, hosts: map[string]string{}, reg: prometheus.NewRegistry()}
	w.metrics = metrics.New(w.reg, "test", o.metrics)
	res, err := resolver.New(resolver.Config{Servers: []string{w.dns.Addr}, Timeout: time.Second, CacheSize: o.dnsCache})
	if err != nil {
		t.Fatal(err)
	}
	w.engine = &policy.Engine{
		DNS:       res,
		Default:   policy.Requirement{Level: policy.Encrypt, MinTLS: 0x0303},
		Overrides: o.overrides,
	}
	w.tally = &tlsrpt.Tally{}
	if o.sts {
		st, err := store.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		fetch := &mtasts.Fetcher{DialContext: res.Dialer(w.dial), Roots: w.ca.Pool}
		w.sts, err = stscache.Open(stscache.Config{DNS: res, Fetch: fetch, Store: st, Report: w.tally, Log: zaptest.NewLogger(t), Metrics: w.metrics})
		if err != nil {
			t.Fatal(err)
		}
		w.engine.STS = w.sts
	}
	if o.dane {
		w.engine.TLSA = res
		w.dns.SetAuthenticAll(true)
	}
	pool := &delivery.Pool{Idle: 5 * time.Second, MaxMessages: 100}
	t.Cleanup(pool.Close)
	w.deliver = &delivery.Deliverer{
		Hostname:        "relay.test",
		DNS:             res,
		Dial:            w.dial,
		Port:            25,
		Roots:           w.ca.Pool,
		ConnectTimeout:  2 * time.Second,
		GreetingTimeout: o.greeting,
		Pool:            pool,
		Log:             zaptest.NewLogger(t),
		Metrics:         w.metrics,
		Report:          w.tally,
	}
	if o.noPool {
		w.deliver.Pool = nil
	}
	if o.learn != "" {
		w.clock = fakeclock.New(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
		st := o.learnStore
		if st == nil {
			var err error
			if st, err = store.Open(t.TempDir()); err != nil {
				t.Fatal(err)
			}
		}
		w.learnStore = st
		w.learner = learned.New(learned.Config{Store: st, Now: w.clock.Now})
		w.engine.Learned, w.engine.LearnEnforce, w.engine.Now = w.learner, o.learn == "enforce", w.clock.Now
		w.deliver.Learn = w.learner
	}
	if o.timeout == 0 {
		o.timeout = 10 * time.Second
	}
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	if o.untrusted {
		trusted = nil
	}
	if o.trusted != nil {
		trusted = o.trusted
	}
	opts := Options{
		Hostname:            "relay.test",
		Trusted:             trusted,
		Users:               o.users,
		AuthLimits:          o.authLimits,
		ConnLimits:          o.connLimits,
		MaxMessageSize:      1 << 20,
		MemoryBuffer:        cmp.Or(o.memoryBuffer, 4<<10),
		SpoolDir:            t.TempDir(),
		DeliveryTimeout:     o.timeout,
		Parallel:            4,
		HonourTLSRequiredNo: o.honourTLSRequiredNo,
		PGP:                 o.pgp,
		Planner:             Planner(w.engine),
		Deliverer:           w.deliver,
		Metrics:             w.metrics,
		Report:              w.tally,
		Log:                 zaptest.NewLogger(t),
	}
	if o.planner != nil {
		opts.Planner = o.planner(w.engine)
	}
	if o.log != nil {
		opts.Log = o.log
		w.deliver.Log = o.log
	}
	if o.tls {
		cert := w.ca.Leaf(t, testpki.LeafOptions{Names: []string{"relay.test"}})
		opts.TLS = tlsServerConfig(cert)
	}
	w.srv = New(opts)
	w.smtp, w.lmtp = w.listen(w.srv.ServeSMTP), w.listen(w.srv.ServeLMTP)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		w.srv.Shutdown(ctx)
	})
	return w
}

// metric is the value of the series name with exactly labels (name,
// value pairs) on the world's registry; 0 when it does not exist.
func (w *world) metric(name string, labels ...string) float64 {
	w.t.Helper()
	return metricstest.Value(w.t, w.reg, name, labels...)
}

// dial maps the fake addresses published in DNS to the real listeners.
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

// stsServer serves one domain's MTA-STS policy over HTTPS.
type stsServer struct {
	body     atomic.Value // string
	requests atomic.Int32
}

// Set changes the policy served, keeping the TXT record's id.
func (s *stsServer) Set(body string) { s.body.Store(body) }

// stsPolicy publishes an MTA-STS policy for domain (RFC 8461 §3): the TXT
// record with id, and body served over HTTPS at mta-sts.<domain> with a
// certificate from the test CA.
func (w *world) stsPolicy(domain, id, body string) *stsServer {
	ps := &stsServer{}
	ps.Set(body)
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		ps.requests.Add(1)
		if r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(rw, r)
			return
		}
		rw.Header().Set("Content-Type", "text/plain")
		io.WriteString(rw, ps.body.Load().(string))
	}))
	cert := w.ca.Leaf(w.t, testpki.LeafOptions{Names: []string{"mta-sts." + domain}})
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	hs.StartTLS()
	w.t.Cleanup(hs.Close)
	w.mu.Lock()
	w.next++
	ip := fmt.Sprintf("127.0.2.%d", w.next)
	w.addrs[ip+":443"] = hs.Listener.Addr().String()
	w.mu.Unlock()
	w.dns.Add(
		fmt.Sprintf("_mta-sts.%s. 60 IN TXT \"v=STSv1; id=%s\"", domain, id),
		fmt.Sprintf("mta-sts.%s. 60 IN A %s", domain, ip),
	)
	return ps
}

func (w *world) listen(serve func(net.Listener) error) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	go serve(l)
	return l.Addr().String()
}

// mx starts a destination MX for host with behaviour b, publishes its
// address in DNS and returns it.
func (w *world) mx(host string, b mxtest.Behavior) *mxtest.Server {
	s := mxtest.Start(w.t, host, w.ca, b)
	w.mu.Lock()
	w.next++
	ip := fmt.Sprintf("127.0.1.%d", w.next)
	w.addrs[ip+":25"] = s.Addr
	w.hosts[host] = ip + ":25"
	w.mu.Unlock()
	w.dns.Add(host + ". 60 IN A " + ip)
	return s
}

// hijack puts another MX with behaviour b at host's address, as an
// attacker on the path would: connections to host reach it from now on.
func (w *world) hijack(host string, b mxtest.Behavior) *mxtest.Server {
	s := mxtest.Start(w.t, host, w.ca, b)
	w.mu.Lock()
	w.addrs[w.hosts[host]] = s.Addr
	w.mu.Unlock()
	return s
}

// tarpit publishes host as an MX that accepts connections and never
// says a word.
func (w *world) tarpit(host string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	done := make(chan struct{})
	w.t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { <-done; c.Close() }()
		}
	}()
	w.mu.Lock()
	w.next++
	ip := fmt.Sprintf("127.0.1.%d", w.next)
	w.addrs[ip+":25"] = ln.Addr().String()
	w.mu.Unlock()
	w.dns.Add(host + ". 60 IN A " + ip)
}

// domain publishes MX records for domain, in preference order.
func (w *world) domain(domain string, hosts ...string) {
	for i, h := range hosts {
		w.dns.Add(fmt.Sprintf("%s. 60 IN MX %d %s.", domain, 10*(i+1), h))
	}
}

// rawClient speaks SMTP/LMTP line by line so tests see exact replies and
// can send bytes no library would.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.Close() })
	rc := &rawClient{t: t, conn: c, r: bufio.NewReader(c)}
	rc.expect("220")
	return rc
}

// reply reads one reply, multi-line replies joined by "\n".
func (c *rawClient) reply() string {
	c.t.Helper()
	var lines []string
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading reply: %v (so far %q)", err, lines)
		}
		l = strings.TrimRight(l, "\r\n")
		lines = append(lines, l)
		if len(l) < 4 || l[3] != '-' {
			return strings.Join(lines, "\n")
		}
	}
}

func (c *rawClient) send(line string) string {
	c.t.Helper()
	fmt.Fprintf(c.conn, "%s\r\n", line)
	return c.reply()
}

func (c *rawClient) expect(prefix string) string {
	c.t.Helper()
	r := c.reply()
	if !strings.HasPrefix(r, prefix) {
		c.t.Fatalf("reply %q, want %s", r, prefix)
	}
	return r
}

func (c *rawClient) must(line, prefix string) string {
	c.t.Helper()
	r := c.send(line)
	if !strings.HasPrefix(r, prefix) {
		c.t.Fatalf("%s → %q, want %s", line, r, prefix)
	}
	return r
}

// data sends DATA, the raw body bytes and the terminator.
func (c *rawClient) data(body string) {
	c.t.Helper()
	c.must("DATA", "354")
	if strings.HasSuffix(body, "\r\n") {
		fmt.Fprintf(c.conn, "%s.\r\n", body)
	} else {
		fmt.Fprintf(c.conn, "%s\r\n.\r\n", body)
	}
}

// smtpClient is go-smtp's client on addr; lmtp selects LHLO.
func smtpClient(t testing.TB, addr string, lmtp bool) *smtp.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var c *smtp.Client
	if lmtp {
		c = smtp.NewClientLMTP(conn)
	} else {
		c = smtp.NewClient(conn)
	}
	c.CommandTimeout, c.SubmissionTimeout = 30*time.Second, 30*time.Second
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("mta.test"); err != nil {
		t.Fatal(err)
	}
	return c
}

func code(err error) int {
	if err == nil {
		return 250
	}
	if se, ok := err.(*smtp.SMTPError); ok {
		return se.Code
	}
	return -1
}
