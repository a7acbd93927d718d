package e2e

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caliop/relay/internal/testworld/dnstest"
	"github.com/caliop/relay/internal/testworld/mxtest"
	"github.com/caliop/relay/internal/testworld/redistest"
	"github.com/caliop/relay/internal/testworld/testpki"
)

// cluster is two Caliop replicas sharing a real redis-server, the fake
// DNS, policy host and MXs of two MTA-STS domains, and a third Caliop on
// its embedded store as the control.
//
// Each domain D has two MXs: bad.D (preference 10), which its enforced
// policy does not list, and mx.D (20), which it does. Under the policy
// mail goes to mx.D; without it, to bad.D. So which MX got MAIL tells
// whether a replica enforced the policy.
type cluster struct {
	redis    string // host:port
	kill     func() // kills redis-server
	dns      *dnstest.Server
	policy   *http.Server // mta-sts.<domain> for both domains
	mx, bad  map[string]*mxtest.Server
	a, b     clusterNode
	control  clusterNode
	bin      string
	confDir  string
	redisDir string
}

// clusterNode is one running Caliop.
type clusterNode struct {
	lmtp, metrics, config string
}

const clusterPolicyIP = "127.0.6.10"

var clusterDomains = []string{"one.cluster.test", "two.cluster.test"}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	requireComponents(t, "redis-server", "root") // root: the policy host is on port 443
	c := &cluster{bin: buildCaliop(t), mx: map[string]*mxtest.Server{}, bad: map[string]*mxtest.Server{}}
	c.redisDir = t.TempDir()
	c.redis, c.kill = redistest.StartIn(t, c.redisDir)
	ca := testpki.NewCA(t)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}

	c.dns = dnstest.Start(t)
	c.dns.Add(". 60 IN NS ns.cluster.test.") // /readyz asks it
	_, port, _ := net.SplitHostPort(freeAddrOn(t, "127.0.6.1"))
	for i, d := range clusterDomains {
		goodIP, badIP := fmt.Sprintf("127.0.6.%d", 2*i+1), fmt.Sprintf("127.0.6.%d", 2*i+2)
		c.mx[d] = mxtest.Start(t, "mx."+d, ca, mxtest.Behavior{Listen: net.JoinHostPort(goodIP, port)})
		c.bad[d] = mxtest.Start(t, "bad."+d, ca, mxtest.Behavior{Listen: net.JoinHostPort(badIP, port)})
		c.dns.Add(
			d+". 60 IN MX 10 bad."+d+".",
			d+". 60 IN MX 20 mx."+d+".",
			"bad."+d+". 60 IN A "+badIP,
			"mx."+d+". 60 IN A "+goodIP,
			`_mta-sts.`+d+`. 60 IN TXT "v=STSv1; id=20261122"`,
			"mta-sts."+d+". 60 IN A "+clusterPolicyIP,
		)
	}
	c.policy = clusterPolicyHost(t, ca)

	var portNum int
	fmt.Sscan(port, &portNum)
	clusterYAML := fmt.Sprintf("cluster: {redis: \"redis://%s/0\"}\n", c.redis)
	start := func(extra string) clusterNode {
		n := clusterNode{lmtp: freeAddr(t), metrics: freeAddr(t)}
		cfg := Config{DNS: c.dns.Addr, LMTP: n.lmtp, Metrics: n.metrics, MXPort: portNum, DeliveryTimeout: 20 * time.Second}
		_, n.config = promStartCaliop(t, c.bin, cfg, extra, "SSL_CERT_FILE="+caFile)
		return n
	}
	c.a, c.b = start(clusterYAML), start(clusterYAML)
	c.control = start("")
	return c
}

// clusterPolicyHost serves both domains' policy (enforce, mx.D only) on
// port 443 of clusterPolicyIP.
func clusterPolicyHost(t *testing.T, ca *testpki.CA) *http.Server {
	t.Helper()
	mux := http.NewServeMux()
	var names []string
	for _, d := range clusterDomains {
		names = append(names, "mta-sts."+d)
		mux.HandleFunc("mta-sts."+d+"/.well-known/mta-sts.txt", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "version: STSv1\r\nmode: enforce\r\nmx: mx."+d+"\r\nmax_age: 86400\r\n")
		})
	}
	l, err := net.Listen("tcp", clusterPolicyIP+":443")
	if err != nil {
		t.Fatalf("policy host: %v", err)
	}
	cert := ca.Leaf(t, testpki.LeafOptions{Names: names})
	srv := &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ReadHeaderTimeout: 10 * time.Second}
	go srv.ServeTLS(l, "", "")
	t.Cleanup(func() { srv.Close() })
	return srv
}

// send relays one message to rcpt through node and returns the reply.
func (n clusterNode) send(t *testing.T, rcpt string) daneReply {
	t.Helper()
	return daneLMTPSend(t, n.lmtp, "sender@cluster.example", rcpt, "cluster-"+randomHex(t))
}

// ready returns the status and body of node's /readyz.
func (n clusterNode) ready(t *testing.T) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + n.metrics + "/readyz")
	if err != nil {
		t.Fatalf("readyz: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}

// waitReady polls /readyz (which keeps a verdict 5 s) until it answers
// want, for at most 20 s.
func (n clusterNode) waitReady(t *testing.T, want int) string {
	t.Helper()
	var code int
	var body string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if code, body = n.ready(t); code == want {
			return body
		}
	}
	t.Fatalf("readyz answered %d %q, want %d", code, body, want)
	return ""
}

// TestClusterPolicySharedAndRedisLoss: a policy fetched by one replica is
// enforced by the other with the policy host down; with Redis killed, the
// replica that cannot read the policy defers (4xx) instead of delivering
// without it, and /readyz says so; Redis back, it delivers under the
// policy without a restart. The control, a Caliop on its own store,
// delivers to the MX the policy excludes, which shows what the replicas
// were kept from.
func TestClusterPolicySharedAndRedisLoss(t *testing.T) {
	c := startCluster(t)
	one, two := clusterDomains[0], clusterDomains[1]

	// Replica A fetches both policies and delivers under them.
	for _, d := range clusterDomains {
		if r := c.a.send(t, "a@"+d); r.Code != 250 {
			t.Fatalf("A to %s: %s", d, r)
		}
		if n := c.mx[d].MailCount(); n != 1 {
			t.Fatalf("A to %s: mx.%s got %d MAIL, want 1", d, d, n)
		}
	}
	c.policy.Close() // the policy host goes down

	// B has never seen one.cluster.test: it takes A's policy from Redis.
	if r := c.b.send(t, "b@"+one); r.Code != 250 {
		t.Fatalf("B to %s with the policy host down: %s", one, r)
	}
	if n, m := c.mx[one].MailCount(), c.bad[one].MailCount(); n != 2 || m != 0 {
		t.Errorf("B to %s: mx got %d MAIL (want 2), bad.%s got %d (want 0): the policy was not enforced", one, n, one, m)
	}
	// The control has no policy (its fetch fails): it uses bad.D.
	if r := c.control.send(t, "c@"+one); r.Code != 250 || c.bad[one].MailCount() != 1 {
		t.Errorf("control to %s: %s, bad.%s got %d MAIL; want 250 and 1", one, r, one, c.bad[one].MailCount())
	}

	// Both replicas' TLS-RPT counts land in one report (flushed every 5 s).
	clusterWaitCounts(t, c, one, 2)

	// Redis dies. B has not seen two.cluster.test: it must not deliver.
	c.kill()
	r := c.b.send(t, "b@"+two)
	if r.Code/100 != 4 || r.Enhanced != "4.3.0" {
		t.Errorf("B to %s with Redis down: %s, want 451 4.3.0", two, r)
	}
	if n, m := c.mx[two].MailCount(), c.bad[two].MailCount(); n != 1 || m != 0 {
		t.Errorf("B to %s with Redis down: mx got %d MAIL (want 1, A's), bad got %d (want 0)", two, n, m)
	}
	// What B holds in memory still applies.
	if r := c.b.send(t, "b2@"+one); r.Code != 250 || c.mx[one].MailCount() != 3 {
		t.Errorf("B to %s (in memory) with Redis down: %s, mx got %d MAIL (want 3)", one, r, c.mx[one].MailCount())
	}
	if body := c.b.waitReady(t, http.StatusServiceUnavailable); !strings.Contains(body, "redis") {
		t.Errorf("readyz with Redis down: %q, want it to name redis", body)
	}

	// Redis back, with its data: B recovers without a restart.
	redistest.RestartIn(t, c.redis, c.redisDir)
	c.b.waitReady(t, http.StatusOK)
	if r := c.b.send(t, "b3@"+two); r.Code != 250 {
		t.Errorf("B to %s with Redis back: %s", two, r)
	}
	if n, m := c.mx[two].MailCount(), c.bad[two].MailCount(); n != 2 || m != 0 {
		t.Errorf("B to %s with Redis back: mx got %d MAIL (want 2), bad got %d (want 0)", two, n, m)
	}
}

// clusterWaitCounts waits (at most 20 s) until `caliop tlsrpt`, run on
// replica A's configuration, reports want successful sessions for domain.
func clusterWaitCounts(t *testing.T, c *cluster, domain string, want int) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		out, err := exec.Command(c.bin, "tlsrpt", "--config", c.a.config, domain).CombinedOutput()
		last = string(out)
		if err != nil {
			continue
		}
		var rep struct {
			Policies []struct {
				Summary struct {
					Success int `json:"total-successful-session-count"`
				} `json:"summary"`
			} `json:"policies"`
		}
		if json.Unmarshal(out, &rep) != nil {
			continue
		}
		n := 0
		for _, p := range rep.Policies {
			n += p.Summary.Success
		}
		if n == want {
			return
		}
	}
	t.Errorf("TLS-RPT report of %s never counted %d successful sessions; last output:\n%s", domain, want, last)
}
