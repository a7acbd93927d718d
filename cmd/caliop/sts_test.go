package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/caliop/relay/internal/testworld/dnstest"
	"github.com/caliop/relay/mtasts"
	"github.com/caliop/relay/mtasts/stscache"
	"github.com/caliop/relay/resolver"
	"github.com/caliop/relay/store"
)

type fixedFetch struct{ p *mtasts.Policy }

func (f fixedFetch) Fetch(context.Context, string) (*mtasts.Policy, error) { return f.p, nil }

// TestMTASTSCommand: `caliop mta-sts` shows a policy cached by the relay
// (same data_dir) when discovery now fails, and which MX it admits.
func TestMTASTSCommand(t *testing.T) {
	dns := dnstest.Start(t)
	dns.Add(
		"example.test. 60 IN MX 10 mx1.example.test.",
		"example.test. 60 IN MX 20 mx.elsewhere.test.",
		"_mta-sts.example.test. 60 IN TXT \"v=STSv1; id=42\"",
	)
	dir := t.TempDir()
	// The relay fetched the policy earlier.
	res, err := resolver.New(resolver.Config{Servers: []string{dns.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := store.Open(dir)
	p, _ := mtasts.ParsePolicy([]byte("version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 604800\n"))
	c, err := stscache.Open(stscache.Config{DNS: res, Fetch: fixedFetch{p}, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Lookup(context.Background(), "example.test"); r.Policy == nil {
		t.Fatalf("setup: %+v", r)
	}
	// Now the TXT record is gone (an attacker drops it).
	dns.SetRcode("_mta-sts.example.test", mdns.TypeTXT, mdns.RcodeNameError)

	cfgFile := filepath.Join(t.TempDir(), "caliop.yml")
	os.WriteFile(cfgFile, []byte("data_dir: "+dir+"\ndns:\n  servers: [\""+dns.Addr+"\"]\n"), 0o600)
	var out, errOut bytes.Buffer
	if code := run([]string{"mta-sts", "--config", cfgFile, "Example.Test"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{
		"domain:  example.test\n",
		"record:  none (",
		"policy:  id 42, mode enforce, max_age 604800 s\n",
		"source:  cached, fetched ",
		"mx1.example.test                         admitted\n",
		"mx.elsewhere.test                        NOT admitted\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	if code := run([]string{"mta-sts", "--config", cfgFile}, &out, &errOut); code != 2 {
		t.Errorf("without a domain: exit %d, want 2", code)
	}
}

// TestMTASTSCommandFetchFails: a domain publishes a policy that cannot be
// fetched: the report says why, and the exit status is 1; data_dir is not
// created.
func TestMTASTSCommandFetchFails(t *testing.T) {
	dns := dnstest.Start(t)
	dns.Add(
		"broken.test. 60 IN MX 10 mx.broken.test.",
		"_mta-sts.broken.test. 60 IN TXT \"v=STSv1; id=7\"",
	)
	dns.SetRcode("mta-sts.broken.test", mdns.TypeA, mdns.RcodeNameError)
	dns.SetRcode("mta-sts.broken.test", mdns.TypeAAAA, mdns.RcodeNameError)
	dataDir := filepath.Join(t.TempDir(), "data")
	cfgFile := filepath.Join(t.TempDir(), "caliop.yml")
	os.WriteFile(cfgFile, []byte("data_dir: "+dataDir+"\ndns:\n  servers: [\""+dns.Addr+"\"]\n"), 0o600)
	var out, errOut bytes.Buffer
	if code := run([]string{"mta-sts", "--config", cfgFile, "broken.test"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "caliop: mta-sts: broken.test publishes a policy that could not be fetched") {
		t.Errorf("exit %d, stderr %q; want 1 and the reason", code, errOut.String())
	}
	if _, err := os.Stat(dataDir); err == nil {
		t.Error("caliop mta-sts created data_dir")
	}
}
