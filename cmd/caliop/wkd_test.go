package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caliop/relay/internal/testworld/dnstest"
)

// TestWKDCommand: without a directory the command says so, shows the
// hash and both URLs, and the decision under the configured policy.
func TestWKDCommand(t *testing.T) {
	dns := dnstest.Start(t)
	cfgFile := filepath.Join(t.TempDir(), "caliop.yml")
	os.WriteFile(cfgFile, []byte("data_dir: "+t.TempDir()+"\ndns:\n  servers: [\""+dns.Addr+"\"]\npgp:\n  destinations: {example.org: required}\n"), 0o600)
	var out, errOut bytes.Buffer
	if code := run([]string{"wkd", "--config", cfgFile, "Joe.Doe@Example.ORG"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{
		"hash:    iy9q119eutrkn8s1mk4r39qejnbu3n5q\n",
		"https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe\n",
		"method:  direct\n",
		"policy:  required\n",
		"decision: refused at RCPT: 450 4.7.1",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
