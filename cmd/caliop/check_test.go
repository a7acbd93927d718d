package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caliop/relay/internal/testworld/dnstest"
	"github.com/caliop/relay/internal/testworld/mxtest"
	"github.com/caliop/relay/internal/testworld/testpki"
)

// TestCheckCommand runs `caliop check` through the real wiring: the MX
// is an mxtest server on 127.0.0.1 reached through outbound.mx_port, its
// certificate from a test CA the system pool does not hold, so the
// default level (encrypt) gives "encrypted", exit 1.
func TestCheckCommand(t *testing.T) {
	ca := testpki.NewCA(t)
	mx := mxtest.Start(t, "mx.example.test", ca, mxtest.Behavior{})
	_, port, _ := net.SplitHostPort(mx.Addr)
	dns := dnstest.Start(t)
	dns.Add(
		"example.test. 60 IN MX 10 mx.example.test.",
		"mx.example.test. 60 IN A 127.0.0.1",
		`_smtp._tls.example.test. 60 IN TXT "v=TLSRPTv1; rua=mailto:r@example.test"`,
	)
	cfgFile := filepath.Join(t.TempDir(), "caliop.yml")
	os.WriteFile(cfgFile, []byte("hostname: relay.test\ndata_dir: "+t.TempDir()+
		"\ndns:\n  servers: [\""+dns.Addr+"\"]\noutbound:\n  mx_port: "+port+"\n  connect_timeout: 5s\n"), 0o600)

	var out, errOut bytes.Buffer
	code := run([]string{"check", "--config", cfgFile, "--json", "example.test"}, &out, &errOut)
	if code != 1 {
		t.Errorf("exit %d, want 1; stderr %s\n%s", code, errOut.String(), out.String())
	}
	var r struct {
		Verdict string `json:"verdict"`
		MX      []struct {
			Host      string `json:"host"`
			Addresses []struct {
				Address string `json:"address"`
				Probe   struct {
					STARTTLS    bool   `json:"starttls"`
					TLSVersion  string `json:"tls_version"`
					Certificate struct {
						Names       []string `json:"names"`
						WebPKIValid bool     `json:"webpki_valid"`
					} `json:"certificate"`
				} `json:"probe"`
			} `json:"addresses"`
		} `json:"mx"`
		TLSRPT struct {
			Record string `json:"record"`
		} `json:"tls_rpt"`
	}
	t.Logf("%s", out.String())
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if r.Verdict != "encrypted" || len(r.MX) != 1 || len(r.MX[0].Addresses) != 1 {
		t.Fatalf("report: %s", out.String())
	}
	p := r.MX[0].Addresses[0].Probe
	if r.MX[0].Addresses[0].Address != "127.0.0.1" || !p.STARTTLS || p.TLSVersion == "" ||
		len(p.Certificate.Names) != 1 || p.Certificate.Names[0] != "mx.example.test" || p.Certificate.WebPKIValid {
		t.Errorf("probe: %+v", p)
	}
	if r.TLSRPT.Record != "v=TLSRPTv1; rua=mailto:r@example.test" {
		t.Errorf("tls_rpt: %q", r.TLSRPT.Record)
	}
	if n := mx.MailCount(); n != 0 {
		t.Errorf("check sent MAIL %d times", n)
	}

	// Text, with the flags after the domain as in the issue.
	out.Reset()
	if code := run([]string{"check", "example.test", "--config", cfgFile}, &out, &errOut); code != 1 ||
		!strings.Contains(out.String(), "verdict:  encrypted (exit 1)\n") {
		t.Errorf("text: exit %d\n%s", code, out.String())
	}
	// Usage and configuration errors exit 2 with a message on stderr.
	errOut.Reset()
	if code := run([]string{"check", "--config", cfgFile}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "usage:") {
		t.Errorf("without a domain: exit %d, stderr %q", code, errOut.String())
	}
	errOut.Reset()
	missing := filepath.Join(t.TempDir(), "missing.yml")
	if code := run([]string{"check", "--config", missing, "example.test"}, &out, &errOut); code != 2 || !strings.HasPrefix(errOut.String(), "caliop: ") {
		t.Errorf("missing config: exit %d, stderr %q", code, errOut.String())
	}
}
