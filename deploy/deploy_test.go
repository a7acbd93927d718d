// Package deploy_test checks the deployment material under deploy/
// without running anything: every YAML file parses, every Caliop
// configuration loads with Caliop's own loader, the Kubernetes manifests
// have what each kind needs and agree with each other, the compose files
// agree with each other (addresses, ports, mounts), and the systemd unit
// has its hardening. The real-component checks (postconf, postfix check,
// promtool, unbound-checkconf, systemd-analyze) are in
// internal/e2e/deploy_test.go.
package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/caliop/relay/config"
)

// yamlFiles returns every .yml and .yaml file under deploy/.
func yamlFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ext := filepath.Ext(path); !d.IsDir() && (ext == ".yml" || ext == ".yaml") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no YAML file under deploy/")
	}
	return files
}

// documents decodes every YAML document of a file.
func documents(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, len(docs)+1, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	return docs
}

func TestEveryYAMLFileParses(t *testing.T) {
	for _, f := range yamlFiles(t) {
		if len(documents(t, f)) == 0 {
			t.Errorf("%s: no YAML document", f)
		}
	}
}

// get walks nested maps by key; nil when a step is missing.
func get(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func str(v any, keys ...string) string {
	s, _ := get(v, keys...).(string)
	return s
}

func list(v any, keys ...string) []any {
	l, _ := get(v, keys...).([]any)
	return l
}

func num(v any, keys ...string) (int, bool) {
	n, ok := get(v, keys...).(int)
	return n, ok
}

func strList(v any, keys ...string) []string {
	var out []string
	for _, e := range list(v, keys...) {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func stringMap(v any, keys ...string) map[string]string {
	out := map[string]string{}
	m, _ := get(v, keys...).(map[string]any)
	for k, e := range m {
		out[k] = fmt.Sprint(e)
	}
	return out
}

// subset reports whether every label of sel is in labels (and sel is
// not empty: an empty selector selects everything, never what we mean).
func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// loadCaliop checks a Caliop configuration with config.Parse. Inbound
// certificate files named in it are pointed at placeholder files the
// test creates (config checks that they exist; their content is read
// only when Caliop starts).
func loadCaliop(t *testing.T, name string, text []byte) *config.Config {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal(text, &root); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	orig := map[string]string{}
	if tls := mapping(mapping(docRoot(&root), "inbound"), "tls"); tls != nil {
		for _, k := range []string{"cert", "key"} {
			if v := mapping(tls, k); v != nil && v.Kind == yaml.ScalarNode {
				orig[k] = v.Value
				f := filepath.Join(t.TempDir(), filepath.Base(v.Value))
				if err := os.WriteFile(f, []byte("placeholder for "+v.Value+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				v.Value = f
			}
		}
		var err error
		if text, err = yaml.Marshal(&root); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Parse(text)
	if err != nil {
		t.Fatalf("%s: config.Parse: %v", name, err)
	}
	// Report the paths the pod will use, not the placeholders.
	if p, ok := orig["cert"]; ok {
		cfg.Inbound.TLS.Cert = p
	}
	if p, ok := orig["key"]; ok {
		cfg.Inbound.TLS.Key = p
	}
	return cfg
}

func docRoot(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return n.Content[0]
	}
	return n
}

// mapping returns the value of key in a YAML mapping node, or nil.
func mapping(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// TestCaliopConfigFilesLoad loads every caliop.yml under deploy/ with
// config.Load, as `caliop serve --config` would.
func TestCaliopConfigFilesLoad(t *testing.T) {
	var n int
	for _, f := range yamlFiles(t) {
		if filepath.Base(f) != "caliop.yml" {
			continue
		}
		n++
		if _, err := config.Load(f); err != nil {
			t.Errorf("config.Load(%s): %v", f, err)
		}
	}
	if n < 2 {
		t.Errorf("found %d caliop.yml files, want deploy/caliop.yml and deploy/compose/caliop.yml", n)
	}
}

// containerConfig checks what every configuration run in a container or
// pod needs: listeners others can reach.
func containerConfig(t *testing.T, name string, cfg *config.Config) {
	t.Helper()
	host, port, err := net.SplitHostPort(cfg.Metrics.Listen)
	if err != nil || host != "0.0.0.0" || port != "9464" {
		t.Errorf("%s: metrics.listen %q, want 0.0.0.0:9464 (scraped and probed from outside the container)", name, cfg.Metrics.Listen)
	}
	if cfg.Outbound.LMTP == "" || strings.HasPrefix(cfg.Outbound.LMTP, "127.") {
		t.Errorf("%s: outbound.lmtp %q: Postfix in another container could not reach it", name, cfg.Outbound.LMTP)
	}
	if cfg.Inbound.Listen == "" {
		t.Errorf("%s: the example has no inbound listener", name)
	}
	if cfg.DataDir != "/var/lib/caliop" {
		t.Errorf("%s: data_dir %q, want /var/lib/caliop (the image's nonroot-owned directory)", name, cfg.DataDir)
	}
	for _, p := range cfg.Outbound.TrustedNetworks {
		if p.Bits() == 0 {
			t.Errorf("%s: outbound.trusted_networks has %v: an open relay", name, p)
		}
	}
}

func sourceOf(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
