package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	// The binary's inbound side: importing it ties cached results of
	// these tests to its sources (see cache_test.go).
	_ "github.com/caliop/relay/inbound"
	"github.com/caliop/relay/internal/testworld/mxtest"
	"github.com/caliop/relay/internal/testworld/testpki"
	"github.com/caliop/relay/mtasts"
)

// TestInboundPostfixXCLIENT runs the inbound side as deploy/postfix
// describes it: Caliop on "port 25" (listening on 127.0.0.9, not
// 127.0.0.1) in front of a real Postfix smtpd with the documented
// master.cf options, authorizing the listener's address for XCLIENT,
// which is where Caliop connects from. A message sent with swaks over STARTTLS from
// 127.0.6.7 must be accepted with Postfix's own 250, queued by Postfix
// under the original client address (XCLIENT), relayed by Postfix to its
// store (an mxtest server), and carry Caliop's Received header naming the
// TLS session. A recipient outside inbound.domains gets 550 5.7.1 without
// Postfix hearing of it (the message goes on for the other recipient
// alone), as does each routing form (x%other@, "x@other"@, x!other@ ...),
// and with Postfix stopped MAIL gets 451 4.3.0.
func TestInboundPostfixXCLIENT(t *testing.T) {
	t.Parallel()
	bin := requireComponents(t, "root", "postfix", "postconf", "postqueue", "swaks")
	caliop := buildCaliop(t)
	const (
		client   = "127.0.6.7"
		mxName   = "mx.example.test"
		rcpt     = "user@example.test"
		sender   = "a@sender.test"
		clientEH = "client.sender.test"
	)

	// Where Postfix delivers example.test: plaintext, so that its smtp
	// client needs no TLS settings.
	store := mxtest.Start(t, "store.example.test", nil, mxtest.Behavior{NoSTARTTLS: true})
	const listenIP = "127.0.0.9"
	pf := startPostfix(t, bin, postfixOptions{
		Main: []string{
			"relay_domains = example.test",
			"relay_transport = smtp:[127.0.0.1]:" + strconv.Itoa(port(t, store.Addr)),
			"smtp_tls_security_level = none",
		},
		Smtpd: documentedSmtpd(t, listenIP),
	})

	ca := testpki.NewCA(t)
	certFile, keyFile := ca.WriteFiles(t, t.TempDir(), testpki.LeafOptions{Names: []string{mxName}})
	inAddr := freeAddrOn(t, listenIP)
	startInbound(t, caliop, Config{
		Hostname: "relay.test",
		DNS:      freeAddr(t), // not used by the inbound side
		MXPort:   25,
		Inbound: Inbound{
			Listen:   inAddr,
			Hostname: mxName,
			Domains:  []string{"example.test"},
			NextHop:  pf.Smtpd,
			Cert:     certFile,
			Key:      keyFile,
		},
	})

	start := time.Now()
	marker := "caliop-inbound-" + randomHex(t)
	out, err := runCmd(30*time.Second, bin["swaks"],
		"--server", inAddr,
		"--tls",
		"--local-interface", client,
		"--helo", clientEH,
		"--from", sender,
		"--to", rcpt,
		"--header", "Subject: "+marker,
		"--body", "body of "+marker,
		"--timeout", "20",
	)
	if err != nil {
		t.Fatalf("swaks through Caliop: %v\n%s", err, out)
	}
	// With CHUNKING (Caliop sends BDAT), Postfix says "Ok: N bytes
	// queued as ID".
	m := regexp.MustCompile(`<~  250 2\.0\.0 Ok: (?:\d+ bytes )?queued as ([0-9A-Za-z]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("swaks: no final 250 from Postfix (relayed by Caliop):\n%s", out)
	}
	queueID := m[1]
	t.Logf("swaks: Postfix queued %s, in %v", queueID, time.Since(start).Round(time.Millisecond))
	if !strings.Contains(out, "-> STARTTLS") || !strings.Contains(out, "~> EHLO "+clientEH) {
		t.Errorf("swaks did not run the session over STARTTLS:\n%s", out)
	}

	// XCLIENT: Postfix saw the client, not Caliop.
	if line := pf.WaitLog(10*time.Second, queueID+": client=unknown["+client+"]"); line == "" {
		t.Errorf("postfix log has no %q line for %s: XCLIENT did not pass the client on", "client=unknown["+client+"]", queueID)
	}
	if line := pf.WaitLog(0, queueID+": client=localhost[127.0.0.1]"); line != "" {
		t.Errorf("postfix recorded Caliop as the client: %s", line)
	}
	sent := pf.WaitLog(30*time.Second, queueID+": to=<"+rcpt+">", "status=sent")
	if sent == "" {
		t.Fatalf("postfix did not deliver %s (no status=sent)", queueID)
	}

	msgs := store.WaitMessages(t, 1, 10*time.Second)
	if len(msgs) != 1 {
		t.Fatalf("store holds %d messages, want 1", len(msgs))
	}
	got := msgs[0]
	if got.From != sender || !slices.Equal(got.To, []string{rcpt}) {
		t.Errorf("stored envelope %s -> %v, want %s -> [%s]", got.From, got.To, sender, rcpt)
	}
	header, body, ok := strings.Cut(string(got.Data), "\r\n\r\n")
	if !ok || !strings.Contains(header, "\r\nSubject: "+marker+"\r\n") || !strings.Contains(body, "body of "+marker) {
		t.Fatalf("stored message is not the one sent (marker %s):\n%s", marker, got.Data)
	}
	received := headerFields(header, "Received")
	if len(received) < 2 {
		t.Fatalf("want Postfix's and Caliop's Received headers, got %d:\n%s", len(received), header)
	}
	// RFC 5321 §4.4: Postfix (the last hop) first, Caliop's below it.
	pfRecv, calRecv := received[0], received[1]
	if !strings.Contains(pfRecv, "by origin.test (Postfix)") || !strings.Contains(pfRecv, "from "+clientEH+" (unknown ["+client+"])") {
		t.Errorf("Postfix's Received does not name the original client %s [%s]:\n%s", clientEH, client, pfRecv)
	}
	if !strings.Contains(calRecv, "by "+mxName+" (Caliop) with ESMTPS") || !strings.Contains(calRecv, "from "+clientEH+" (["+client+"])") {
		t.Errorf("second Received is not Caliop's, naming the client and ESMTPS:\n%s", calRecv)
	}
	if !regexp.MustCompile(`\(using TLSv1\.[23] with cipher \S+\)`).MatchString(calRecv) {
		t.Errorf("Caliop's Received does not say the session used TLS 1.2 or 1.3:\n%s", calRecv)
	}
	t.Logf("Caliop's Received: %s", calRecv)

	// A recipient outside inbound.domains: refused by Caliop, never
	// shown to Postfix.
	c := smtpClient(t, inAddr, client)
	if err := c.Mail(sender, nil); err != nil {
		t.Fatalf("MAIL FROM:<%s>: %v", sender, err)
	}
	const foreign = "victim@elsewhere.test"
	wantReply(t, "RCPT TO:<"+foreign+">", c.Rcpt(foreign, nil), 550, smtp.EnhancedCode{5, 7, 1})
	if err := c.Rcpt(rcpt, nil); err != nil {
		t.Fatalf("RCPT TO:<%s> after the refused one: %v", rcpt, err)
	}
	marker2 := "caliop-inbound-" + randomHex(t)
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	fmt.Fprintf(w, "Subject: %s\r\n\r\nbody of %s\r\n", marker2, marker2)
	if err := w.Close(); err != nil {
		t.Fatalf("end of DATA: %v", err)
	}
	c.Quit()
	// Postfix got the message for the local recipient only.
	msgs = store.WaitMessages(t, 2, 30*time.Second)
	if len(msgs) != 2 || !strings.Contains(string(msgs[1].Data), "Subject: "+marker2) || !slices.Equal(msgs[1].To, []string{rcpt}) {
		t.Errorf("second message at the store: %d messages, last to %v; want %s to [%s]", len(msgs), msgs[len(msgs)-1].To, marker2, rcpt)
	}
	if strings.Contains(pf.LogText(), "elsewhere.test") {
		t.Errorf("the foreign recipient reached Postfix:\n%s", pf.LogText())
	}

	// Routing operators in the local part: Postfix trusts Caliop and
	// would relay them to other.test; Caliop refuses them.
	c = smtpClient(t, inAddr, client)
	if err := c.Mail(sender, nil); err != nil {
		t.Fatalf("MAIL FROM:<%s>: %v", sender, err)
	}
	for _, r := range []string{"x%other.test@example.test", "x@other.test@example.test", "x!other.test@example.test", "other.test!x@example.test"} {
		wantReply(t, "RCPT TO:<"+r+">", c.Rcpt(r, nil), 550, smtp.EnhancedCode{5, 7, 1})
	}
	c.Quit()
	if strings.Contains(pf.LogText(), "other.test") {
		t.Errorf("a routed recipient reached Postfix:\n%s", pf.LogText())
	}

	// Postfix down: MAIL gets 451 4.3.0, the client may retry.
	pf.stop(t)
	c = smtpClient(t, inAddr, client)
	wantReply(t, "MAIL with Postfix stopped", c.Mail(sender, nil), 451, smtp.EnhancedCode{4, 3, 0})
	c.Quit()
	// Started again, so that the cleanup's stop finds it running.
	if out, err := pf.cmd(60*time.Second, "postfix", "start"); err != nil {
		t.Errorf("postfix start again: %v\n%s", err, out)
	}
}

// documentedSmtpd returns the "-o" options of the next hop's smtpd in
// deploy/postfix/master.cf, with smtpd_authorized_xclient_hosts set to
// source, the address Caliop connects from.
func documentedSmtpd(t *testing.T, source string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, "postfix", "master.cf"))
	if err != nil {
		t.Fatal(err)
	}
	var opts []string
	found := false
	for _, l := range strings.Split(string(b), "\n") {
		o, ok := strings.CutPrefix(strings.TrimSpace(l), "-o ")
		if !ok {
			continue
		}
		if name, _, _ := strings.Cut(o, "="); name == "smtpd_authorized_xclient_hosts" {
			o, found = name+"="+source, true
		}
		opts = append(opts, o)
	}
	if !found {
		t.Fatalf("deploy/postfix/master.cf does not authorise Caliop for XCLIENT:\n%s", b)
	}
	return opts
}

// TestInboundPostfixWithoutXCLIENT: a Postfix that does not authorise
// Caliop for XCLIENT gets no transaction (MAIL 451 4.3.0, the error
// logged naming smtpd_authorized_xclient_hosts); with
// inbound.next_hop_xclient: false mail flows under Caliop's address and
// a warning is logged at start.
func TestInboundPostfixWithoutXCLIENT(t *testing.T) {
	t.Parallel()
	bin := requireComponents(t, "root", "postfix", "postconf", "postqueue")
	caliop := buildCaliop(t)
	const (
		client = "127.0.6.8"
		mxName = "mx.example.test"
		rcpt   = "user@example.test"
		sender = "a@sender.test"
	)
	store := mxtest.Start(t, "store.example.test", nil, mxtest.Behavior{NoSTARTTLS: true})
	pf := startPostfix(t, bin, postfixOptions{Main: []string{
		"relay_domains = example.test",
		"relay_transport = smtp:[127.0.0.1]:" + strconv.Itoa(port(t, store.Addr)),
		"smtp_tls_security_level = none",
	}})
	ca := testpki.NewCA(t)
	certFile, keyFile := ca.WriteFiles(t, t.TempDir(), testpki.LeafOptions{Names: []string{mxName}})
	in := Inbound{Hostname: mxName, Domains: []string{"example.test"}, NextHop: pf.Smtpd, Cert: certFile, Key: keyFile}

	in.Listen = freeAddr(t)
	strict := startInbound(t, caliop, Config{Hostname: "relay.test", DNS: freeAddr(t), MXPort: 25, Inbound: in})
	c := smtpClient(t, in.Listen, client)
	wantReply(t, "MAIL without XCLIENT", c.Mail(sender, nil), 451, smtp.EnhancedCode{4, 3, 0})
	c.Quit()
	if !waitOutput(strict, "smtpd_authorized_xclient_hosts", 5*time.Second) {
		t.Errorf("the refusal is not logged with its fix:\n%s", strict.Output.String())
	}
	if strings.Contains(pf.LogText(), sender) {
		t.Errorf("MAIL reached Postfix without XCLIENT:\n%s", pf.LogText())
	}

	in.Listen, in.NoXCLIENT = freeAddr(t), true
	lax := startInbound(t, caliop, Config{Hostname: "relay.test", DNS: freeAddr(t), MXPort: 25, Inbound: in})
	if !waitOutput(lax, "next_hop_xclient is false", 5*time.Second) {
		t.Errorf("no warning at start with next_hop_xclient: false:\n%s", lax.Output.String())
	}
	c = smtpClient(t, in.Listen, client)
	if err := c.SendMail(sender, []string{rcpt}, strings.NewReader("Subject: no xclient\r\n\r\nhi\r\n")); err != nil {
		t.Fatalf("with next_hop_xclient: false: %v", err)
	}
	store.WaitMessages(t, 1, 30*time.Second)
	if line := pf.WaitLog(5*time.Second, "client=localhost[127.0.0.1]"); line == "" {
		t.Errorf("Postfix did not see Caliop's address as the client:\n%s", pf.LogText())
	}
}

// TestInboundTLSVersions checks the TLS versions the inbound listener
// speaks after STARTTLS: posttls-finger (Postfix's TLS probe, OpenSSL)
// verifies the certificate for the inbound hostname and reports TLS 1.2 or
// 1.3; Go's client forced to TLS 1.1 (or 1.0) fails the handshake while
// TLS 1.2 works, and so does openssl s_client -tls1_1 when present. When
// testssl.sh is installed, it must report SSLv2 to TLS 1.1 as not offered
// and TLS 1.2 and 1.3 as offered.
func TestInboundTLSVersions(t *testing.T) {
	t.Parallel()
	bin := requireComponents(t, "posttls-finger")
	caliop := buildCaliop(t)
	const mxName = "mx.example.test"
	dir := t.TempDir()
	ca := testpki.NewCA(t)
	certFile, keyFile := ca.WriteFiles(t, dir, testpki.LeafOptions{Names: []string{mxName}})
	caFile := filepath.Join(dir, "ca.pem")
	write(t, caFile, string(ca.PEM))
	inAddr := freeAddr(t)
	startInbound(t, caliop, Config{
		Hostname: "relay.test",
		DNS:      freeAddr(t),
		MXPort:   25,
		Inbound: Inbound{
			Listen:   inAddr,
			Hostname: mxName,
			Domains:  []string{"example.test"},
			NextHop:  freeAddr(t), // nothing there: no MAIL is sent
			Cert:     certFile,
			Key:      keyFile,
		},
	})
	host, p, _ := net.SplitHostPort(inAddr)

	// posttls-finger, at the secure level: the chain must verify against
	// the test CA and the certificate match the MX name.
	// Its own (empty) configuration directory: the Debian package's "No
	// configuration" install has no /etc/postfix/main.cf.
	etc := filepath.Join(dir, "postfix-etc")
	if err := os.Mkdir(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(etc, "main.cf"), "compatibility_level = 3.6\n")
	out, err := runCmdEnv(30*time.Second, []string{"MAIL_CONFIG=" + etc}, bin["posttls-finger"], "-c", "-t", "10", "-T", "10",
		"-l", "secure", "-F", caFile, "["+host+"]:"+p, mxName)
	t.Logf("posttls-finger:\n%s", out)
	if err != nil {
		t.Errorf("posttls-finger: %v", err)
	}
	if !regexp.MustCompile(`Verified TLS connection established to \S+: TLSv1\.[23] with cipher`).MatchString(out) {
		t.Errorf("posttls-finger did not report a verified TLS 1.2 or 1.3 session")
	}

	// Go's client, by version.
	for _, tc := range []struct {
		name     string
		min, max uint16
		ok       bool
	}{
		{"TLS 1.0", tls.VersionTLS10, tls.VersionTLS10, false},
		{"TLS 1.1", tls.VersionTLS10, tls.VersionTLS11, false},
		{"TLS 1.2", tls.VersionTLS12, tls.VersionTLS12, true},
		{"TLS 1.3", tls.VersionTLS13, tls.VersionTLS13, true},
	} {
		conn, err := smtpStartTLS(inAddr, "", &tls.Config{
			ServerName: mxName, RootCAs: ca.Pool, MinVersion: tc.min, MaxVersion: tc.max,
		}, 10*time.Second)
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.ok:
			if v := conn.ConnectionState().Version; v != tc.max {
				t.Errorf("%s: negotiated %s", tc.name, tls.VersionName(v))
			}
			conn.Close()
		case err == nil:
			t.Errorf("%s: handshake succeeded with %s, want a failure", tc.name, tls.VersionName(conn.ConnectionState().Version))
			conn.Close()
		case !errors.Is(err, errHandshake):
			t.Errorf("%s: failed before the handshake: %v", tc.name, err)
		default:
			t.Logf("%s: %v", tc.name, err)
		}
	}

	// OpenSSL, when installed. Its default security level refuses TLS
	// 1.1 on the client side; SECLEVEL=0 makes the refusal the server's.
	if openssl, err := lookPath("openssl"); err == nil {
		sClient := func(version string) (string, error) {
			return runCmd(20*time.Second, "/bin/sh", "-c", fmt.Sprintf(
				"%s s_client -connect %s -starttls smtp -name client.sender.test -servername %s -%s -cipher DEFAULT@SECLEVEL=0 </dev/null",
				openssl, inAddr, mxName, version))
		}
		// "New, <version>, Cipher is <suite>" only for an established
		// session ("Protocol  :" names the version tried, even failed).
		if out, err := sClient("tls1_2"); err != nil || !strings.Contains(out, "New, TLSv1.2, Cipher is ") {
			t.Errorf("openssl s_client -tls1_2: %v, want a TLS 1.2 session:\n%s", err, out)
		}
		out, err := sClient("tls1_1")
		switch {
		case err == nil || strings.Contains(out, "New, TLSv1"):
			t.Errorf("openssl s_client -tls1_1: a TLS 1.1 session was established:\n%s", out)
		case strings.Contains(out, "no protocols available"):
			t.Logf("openssl s_client -tls1_1: refused by OpenSSL itself, not conclusive:\n%s", out)
		case !strings.Contains(out, "alert protocol version"):
			t.Errorf("openssl s_client -tls1_1 failed without the server's protocol_version alert:\n%s", out)
		default:
			t.Logf("openssl s_client -tls1_1: refused with the server's protocol_version alert")
		}
	}

	// testssl.sh, when installed (Debian package testssl.sh).
	for _, name := range []string{"testssl", "testssl.sh"} {
		path, err := lookPath(name)
		if err != nil {
			continue
		}
		out, err := runCmd(50*time.Second, path, "--quiet", "--color", "0", "--warnings", "off", "--ip", "one",
			"--starttls", "smtp", "--protocols", inAddr)
		t.Logf("%s --protocols:\n%s", name, out)
		if err != nil && !strings.Contains(out, "TLS 1.2") {
			t.Errorf("%s: %v", name, err)
			break
		}
		for _, v := range []string{"SSLv2 ", "SSLv3 ", "TLS 1 ", "TLS 1.1 "} {
			if line := testsslLine(out, v); !strings.Contains(line, "not offered") {
				t.Errorf("%s: %q line %q, want not offered", name, strings.TrimSpace(v), line)
			}
		}
		for _, v := range []string{"TLS 1.2 ", "TLS 1.3 "} {
			if line := testsslLine(out, v); !strings.Contains(line, "offered") || strings.Contains(line, "not offered") {
				t.Errorf("%s: %q line %q, want offered", name, strings.TrimSpace(v), line)
			}
		}
		break
	}
}

// testsslLine returns the line of testssl.sh's protocol section starting
// with prefix (after spaces), "" if none.
func testsslLine(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l)+" ", prefix) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// TestInboundACMEPebble runs the Caliop binary with inbound certificates
// from a real ACME CA: pebble, resolving names through a DNSSEC-validating
// unbound, validates TLS-ALPN-01 on Caliop's HTTPS policy host. Caliop
// obtains at start (warm-up) a certificate for its inbound hostname and
// one for mta-sts.<domain>. STARTTLS on the inbound listener (with and
// without SNI) must present the first, verified against pebble's root; the
// policy host must serve the second and the published MTA-STS policy
// (200, text/plain, mode enforce, mx the inbound hostname). After Caliop
// stopped, data_dir/acme holds the account and both certificates, and a
// Caliop restarted on the same data_dir with an unreachable CA serves the
// same certificates.
func TestInboundACMEPebble(t *testing.T) {
	t.Parallel()
	bin := requireComponents(t, "pebble", "knotd", "unbound")
	caliop := buildCaliop(t)
	const (
		mxHost  = "mx.acme.test"
		domain  = "example.acme.test"
		stsHost = "mta-sts." + domain
	)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	dnsSrv := StartDNSSEC(t, "acme.test", []string{
		mxHost + ". 300 IN A " + acmeAddr,
		stsHost + ". 300 IN A " + acmeAddr,
	}, DNSSECOptions{Knotd: bin["knotd"], Unbound: bin["unbound"]})

	// Pebble validates TLS-ALPN-01 on its tlsPort of the address DNS
	// gives: Caliop's https_listen must be that port on acmeAddr.
	httpsAddr, inAddr := freeAddrOn(t, acmeAddr), freeAddrOn(t, acmeAddr)
	peb := acmeStartPebble(t, ctx, bin["pebble"], dnsSrv.Resolver, port(t, httpsAddr), 0)
	root := acmePebbleRoot(t, ctx, peb)
	dir := t.TempDir()
	directoryCA := filepath.Join(dir, "pebble-https.pem")
	write(t, directoryCA, pebbleServerCert(t, peb))

	dataDir := filepath.Join(dir, "data")
	cfg := Config{
		Hostname: "relay.acme.test",
		DataDir:  dataDir,
		DNS:      dnsSrv.Resolver,
		MXPort:   25,
		Inbound: Inbound{
			Listen:      inAddr,
			Hostname:    mxHost,
			Domains:     []string{domain},
			NextHop:     freeAddr(t), // no mail in this test
			HTTPSListen: httpsAddr,
			ACME: &InboundACME{
				Email:       "postmaster@" + domain,
				Directory:   peb.directory,
				Challenge:   "tls-alpn-01",
				DirectoryCA: directoryCA,
			},
		},
	}
	start := time.Now()
	proc := startInbound(t, caliop, cfg)

	// STARTTLS, with SNI and without: the inbound hostname's certificate,
	// issued by pebble. The first handshakes may wait for the issuance.
	mxLeaf := pollSTARTTLSCert(t, ctx, inAddr, mxHost, mxHost, root)
	t.Logf("STARTTLS certificate for %s after %v, issuer %q", mxHost, time.Since(start).Round(time.Millisecond), mxLeaf.Issuer.CommonName)
	if noSNI := pollSTARTTLSCert(t, ctx, inAddr, "", mxHost, root); !noSNI.Equal(mxLeaf) {
		t.Errorf("STARTTLS without SNI: certificate for %v, want the one for %s", noSNI.DNSNames, mxHost)
	}

	// The policy host: pebble's certificate for mta-sts.<domain> and the
	// published policy.
	stsLeaf, body := pollPolicy(t, ctx, httpsAddr, stsHost, root)
	t.Logf("policy host certificate for %s after %v", stsHost, time.Since(start).Round(time.Millisecond))
	p, err := mtasts.ParsePolicy(body)
	if err != nil {
		t.Fatalf("published policy %q: %v", body, err)
	}
	if p.Mode != mtasts.ModeEnforce || !slices.Equal(p.MX, []string{mxHost}) {
		t.Errorf("published policy: mode %s, mx %v; want enforce, [%s]", p.Mode, p.MX, mxHost)
	}
	// Byte for byte, Caliop's default max_age included, and with Caliop's
	// own fetcher.
	acmeCheckPolicy(t, ctx, httpsAddr, root, stsHost, &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{mxHost}, MaxAge: 7 * 24 * time.Hour})

	if err := proc.Stop(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(dataDir, "acme"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	t.Logf("%s/acme: %v", dataDir, names)
	for _, want := range []string{"acme_account+key", mxHost, stsHost} {
		if !slices.Contains(names, want) {
			t.Errorf("%s/acme holds %v, want %s among them", dataDir, names, want)
		}
	}

	// A restart needs no CA: the same certificates, from the cache.
	acme := *cfg.Inbound.ACME // a copy: the first run's config is logged on failure
	acme.Directory = "https://127.0.0.1:1/dir"
	cfg.Inbound.ACME = &acme
	startInbound(t, caliop, cfg)
	if again := pollSTARTTLSCert(t, ctx, inAddr, mxHost, mxHost, root); !again.Equal(mxLeaf) {
		t.Errorf("after restart, STARTTLS: another certificate (serial %v) than the one obtained (%v)", again.SerialNumber, mxLeaf.SerialNumber)
	}
	if again, _ := pollPolicy(t, ctx, httpsAddr, stsHost, root); !again.Equal(stsLeaf) {
		t.Errorf("after restart, policy host: another certificate (serial %v) than the one obtained (%v)", again.SerialNumber, stsLeaf.SerialNumber)
	}
}

// freeAddrOn returns ip:port with a port that was free on ip a moment ago.
func freeAddrOn(t *testing.T, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// pebbleServerCert returns, in PEM, the certificate pebble's ACME API
// presents: trusted as inbound.tls.acme.directory_ca, it is the only
// certificate Caliop accepts for the directory.
func pebbleServerCert(t *testing.T, p *pebble) string {
	t.Helper()
	u, err := url.Parse(p.directory)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", u.Host, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("pebble's HTTPS certificate: %v", err)
	}
	defer conn.Close()
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: conn.ConnectionState().PeerCertificates[0].Raw}))
}

// pollSTARTTLSCert runs STARTTLS on addr with SNI sni (none when empty)
// until the certificate presented verifies against root for host, for at
// most 60s (and ctx), and returns its leaf.
func pollSTARTTLSCert(t *testing.T, ctx context.Context, addr, sni, host string, root *x509.CertPool) *x509.Certificate {
	t.Helper()
	var last error
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		conn, err := smtpStartTLS(addr, "", &tls.Config{ServerName: sni, InsecureSkipVerify: true}, 30*time.Second)
		if err == nil {
			chain := conn.ConnectionState().PeerCertificates
			conn.Close()
			if err = verifyChain(chain, host, root); err == nil {
				return chain[0]
			}
		}
		last = err
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("STARTTLS on %s (SNI %q): no certificate for %s from pebble within 60s; last: %v", addr, sni, host, last)
	return nil
}

// pollPolicy fetches https://<stsHost>/.well-known/mta-sts.txt through
// addr, trusting only root, until it gets 200 text/plain, for at most 60s
// (and ctx), and returns the certificate and the body.
func pollPolicy(t *testing.T, ctx context.Context, addr, stsHost string, root *x509.CertPool) (*x509.Certificate, []byte) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: root, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
	}}
	var last error
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		leaf, body, err := func() (*x509.Certificate, []byte, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+stsHost+"/.well-known/mta-sts.txt", nil)
			if err != nil {
				return nil, nil, err
			}
			resp, err := c.Do(req)
			if err != nil {
				return nil, nil, err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			if err != nil {
				return nil, nil, err
			}
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/plain" {
				return nil, nil, fmt.Errorf("%s, Content-Type %q, body %q", resp.Status, resp.Header.Get("Content-Type"), body)
			}
			return resp.TLS.PeerCertificates[0], body, nil
		}()
		if err == nil {
			if !slices.Equal(leaf.DNSNames, []string{stsHost}) {
				t.Errorf("policy host certificate for %v, want [%s]", leaf.DNSNames, stsHost)
			}
			return leaf, body
		}
		last = err
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("policy from %s via %s: not served with pebble's certificate within 60s; last: %v", stsHost, addr, last)
	return nil, nil
}

// verifyChain checks chain's leaf for host under root, with the
// intermediates the server sent.
func verifyChain(chain []*x509.Certificate, host string, root *x509.CertPool) error {
	if len(chain) == 0 {
		return errors.New("no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{DNSName: host, Roots: root, Intermediates: inter}); err != nil {
		return fmt.Errorf("certificate for %v (issuer %q): %w", chain[0].DNSNames, chain[0].Issuer.CommonName, err)
	}
	return nil
}
