package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caliop/relay/learned"
	"github.com/caliop/relay/store"
)

// TestLearnedCommands: list, show and forget read and change the store
// the relay uses (the embedded file is opened per transaction, so they
// work while the relay runs).
func TestLearnedCommands(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(t.TempDir(), "caliop.yml")
	os.WriteFile(cfgFile, []byte("hostname: relay.test\ndata_dir: "+dir+"\ndns:\n  servers: [\"127.0.0.1\"]\n"), 0o600)
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	r := learned.Record{Domain: "example.test", MX: []string{"mx.example.test"}, Sessions: 25, FirstAuth: now.AddDate(0, 0, -20), LastAuth: now,
		Requirement: learned.Verify, Since: now.AddDate(0, 0, -10)}
	if err := st.Put(learned.Bucket, r.Domain, r); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"learned", "show", "--config", cfgFile, "Example.TEST"}, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), "a certificate valid for the MX name") || !strings.Contains(out.String(), "(10 days)") {
		t.Fatalf("show: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	out.Reset()
	if code := run([]string{"learned", "list", "--config", cfgFile, "--json"}, &out, &errOut); code != 0 {
		t.Fatalf("list: exit %d %s", code, errOut.String())
	}
	var rs []learned.Record
	if err := json.Unmarshal(out.Bytes(), &rs); err != nil || len(rs) != 1 || rs[0].Requirement != learned.Verify {
		t.Fatalf("list --json: %v %s", err, out.String())
	}
	out.Reset()
	if code := run([]string{"learned", "forget", "--config", cfgFile, "example.test"}, &out, &errOut); code != 0 {
		t.Fatalf("forget: exit %d %s", code, errOut.String())
	}
	out.Reset()
	if code := run([]string{"learned", "show", "--config", cfgFile, "example.test"}, &out, &errOut); code != 1 || !strings.Contains(out.String(), "nothing learned") {
		t.Errorf("show after forget: exit %d %s", code, out.String())
	}
}
