package relay

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/caliop/relay/delivery"
	"github.com/caliop/relay/internal/dnstest"
	"github.com/caliop/relay/internal/mxtest"
	"github.com/caliop/relay/internal/testpki"
	"github.com/caliop/relay/policy"
	"github.com/caliop/relay/resolver"
)

// world is one relay with its fake DNS and fake destination MXs. MX hosts
// get addresses 127.0.1.N in DNS; the dialer maps them to the fake
// servers' real listeners.
type world struct {
	t       *testing.T
	dns     *dnstest.Server
	ca      *testpki.CA
	engine  *policy.Engine
	deliver *delivery.Deliverer
	reg     *prometheus.Registry
	srv     *Server
	smtp    string // relay SMTP listener
	lmtp    string // relay LMTP listener

	mu    sync.Mutex
	addrs map[string]string // "127.0.1.N:25" → real address
	next  int
}

type worldOpts struct {
	users     map[string]string
	untrusted bool
	timeout   time.Duration
	overrides map[string]policy.Requirement
	tls       bool
}

func newWorld(t *testing.T, o worldOpts) *world {
	t.Helper()
	w := &world{t: t, dns: dnstest.Start(t), ca: testpki.NewCA(t), addrs: map[string]string{}, reg: prometheus.NewRegistry()}
	res, err := resolver.New(resolver.Config{Servers: []string{w.dns.Addr}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	w.engine = &policy.Engine{
		DNS:       res,
		Default:   policy.Requirement{Level: policy.Encrypt, MinTLS: 0x0303},
		Overrides: o.overrides,
	}
	pool := &delivery.Pool{Idle: 5 * time.Second, MaxMessages: 100}
	t.Cleanup(pool.Close)
	var d net.Dialer
	w.deliver = &delivery.Deliverer{
		Hostname: "relay.test",
		DNS:      res,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			w.mu.Lock()
			real, ok := w.addrs[addr]
			w.mu.Unlock()
			if !ok {
				return nil, fmt.Errorf("dial %s: connection refused", addr)
			}
			return d.DialContext(ctx, network, real)
		},
		Port:           25,
		Roots:          w.ca.Pool,
		ConnectTimeout: 2 * time.Second,
		Pool:           pool,
		Log:            zaptest.NewLogger(t),
		Metrics:        delivery.NewMetrics(w.reg),
	}
	if o.timeout == 0 {
		o.timeout = 10 * time.Second
	}
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	if o.untrusted {
		trusted = nil
	}
	opts := Options{
		Hostname:        "relay.test",
		Trusted:         trusted,
		Users:           o.users,
		MaxMessageSize:  1 << 20,
		MemoryBuffer:    4 << 10,
		SpoolDir:        t.TempDir(),
		DeliveryTimeout: o.timeout,
		Parallel:        4,
		Planner:         w.engine,
		Deliverer:       w.deliver,
		Log:             zaptest.NewLogger(t),
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
	w.mu.Unlock()
	w.dns.Add(host + ". 60 IN A " + ip)
	return s
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
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawClient {
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
func smtpClient(t *testing.T, addr string, lmtp bool) *smtp.Client {
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
