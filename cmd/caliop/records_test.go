package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caliop/relay/internal/testworld/testpki"
	"github.com/caliop/relay/mtasts"
)

// TestRecordsCommand: `caliop records` prints the MX, MTA-STS, TLS-RPT
// and TLSA records for the configured inbound side, the TLSA of the
// certificate actually configured, and an id that follows the policy.
func TestRecordsCommand(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t)
	cert, key := ca.WriteFiles(t, dir, testpki.LeafOptions{Names: []string{"mx.example.net"}})
	write := func(mode string) string {
		f := filepath.Join(dir, mode+".yml")
		os.WriteFile(f, []byte(`hostname: mx.example.net
data_dir: `+dir+`
dns: {servers: ["127.0.0.1"]}
inbound:
  listen: ":2525"
  domains: [example.net]
  tls: {cert: `+cert+`, key: `+key+`}
  mta_sts: {mode: `+mode+`, max_age: 86400s}
  tls_rpt: {rua: ["mailto:tlsrpt@example.net"]}
`), 0o600)
		return f
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"records", "--config", write("enforce")}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	p := &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"mx.example.net"}, MaxAge: 86400e9}
	for _, want := range []string{
		"example.net. MX 10 mx.example.net.\n",
		`_mta-sts.example.net. TXT "v=STSv1; id=` + p.ID() + `"`,
		`_smtp._tls.example.net. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.net"`,
		"_25._tcp.mx.example.net. TLSA 3 1 1 ",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	// The TLSA digest is the SPKI of the configured certificate.
	c, err := loadLeaf(cert)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	if !strings.Contains(out.String(), hex.EncodeToString(sum[:])) {
		t.Errorf("TLSA is not the configured key's SPKI digest:\n%s", out.String())
	}

	var out2 bytes.Buffer
	run([]string{"records", "--config", write("testing")}, &out2, &errOut)
	if strings.Contains(out2.String(), p.ID()) {
		t.Error("the _mta-sts id did not change with the policy mode")
	}
}

func loadLeaf(name string) (*x509.Certificate, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM")
	}
	return x509.ParseCertificate(blk.Bytes)
}
