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
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

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

// ---- Kubernetes ----

type manifest struct {
	file string
	doc  map[string]any
}

func (m manifest) kind() string { return str(m.doc, "kind") }
func (m manifest) name() string { return str(m.doc, "metadata", "name") }
func (m manifest) String() string {
	return fmt.Sprintf("%s: %s/%s", m.file, m.kind(), m.name())
}

func kubernetes(t *testing.T) []manifest {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes: %v", err)
	}
	var ms []manifest
	for _, f := range files {
		for _, d := range documents(t, f) {
			ms = append(ms, manifest{f, d})
		}
	}
	return ms
}

func byKind(ms []manifest, kind string) []manifest {
	var out []manifest
	for _, m := range ms {
		if m.kind() == kind {
			out = append(out, m)
		}
	}
	return out
}

// k8sCaliopConfig returns the caliop.yml of the ConfigMap, loaded.
func k8sCaliopConfig(t *testing.T, ms []manifest) *config.Config {
	t.Helper()
	for _, m := range byKind(ms, "ConfigMap") {
		if text := str(m.doc, "data", "caliop.yml"); text != "" {
			return loadCaliop(t, m.String(), []byte(text))
		}
	}
	t.Fatal("no ConfigMap holds caliop.yml")
	return nil
}

func TestKubernetesManifests(t *testing.T) {
	ms := kubernetes(t)
	names := map[string]bool{}
	for _, m := range ms {
		if str(m.doc, "apiVersion") == "" || m.kind() == "" || m.name() == "" {
			t.Errorf("%s: apiVersion, kind and metadata.name are required", m)
		}
		if names[m.kind()+"/"+m.name()] {
			t.Errorf("%s: defined twice", m)
		}
		names[m.kind()+"/"+m.name()] = true
		if ns := str(m.doc, "metadata", "namespace"); ns != "" {
			t.Errorf("%s: namespace %q hard-coded; apply with kubectl -n", m, ns)
		}
	}
	for _, k := range []string{"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ServiceMonitor"} {
		if len(byKind(ms, k)) == 0 {
			t.Errorf("no %s in deploy/kubernetes", k)
		}
	}
	apis := map[string]string{
		"Deployment": "apps/v1", "Service": "v1", "ConfigMap": "v1",
		"PodDisruptionBudget": "policy/v1", "HorizontalPodAutoscaler": "autoscaling/v2",
		"ServiceMonitor": "monitoring.coreos.com/v1", "NetworkPolicy": "networking.k8s.io/v1",
		"Certificate": "cert-manager.io/v1",
	}
	for _, m := range ms {
		want, ok := apis[m.kind()]
		if !ok {
			t.Errorf("%s: kind not checked by this test; add its checks", m)
		} else if got := str(m.doc, "apiVersion"); got != want {
			t.Errorf("%s: apiVersion %q, want %q", m, got, want)
		}
	}
	if t.Failed() {
		return
	}
	cfg := k8sCaliopConfig(t, ms)
	containerConfig(t, "kubernetes ConfigMap caliop.yml", cfg)
	deps := byKind(ms, "Deployment")
	for _, d := range deps {
		checkDeployment(t, d, ms, cfg)
	}
	for _, s := range byKind(ms, "Service") {
		checkService(t, s, deps)
	}
	for _, p := range byKind(ms, "PodDisruptionBudget") {
		checkPDB(t, p, deps)
	}
	for _, h := range byKind(ms, "HorizontalPodAutoscaler") {
		checkHPA(t, h, deps)
	}
	for _, s := range byKind(ms, "ServiceMonitor") {
		checkServiceMonitor(t, s, byKind(ms, "Service"))
	}
	for _, n := range byKind(ms, "NetworkPolicy") {
		checkNetworkPolicy(t, n, deps, cfg)
	}
	for _, c := range byKind(ms, "Certificate") {
		checkCertificate(t, c, deps, cfg)
	}
}

func templateLabels(d manifest) map[string]string {
	return stringMap(d.doc, "spec", "template", "metadata", "labels")
}

// containerPorts maps each port name of a pod's containers to its number.
func containerPorts(d manifest) map[string]int {
	ports := map[string]int{}
	for _, c := range list(d.doc, "spec", "template", "spec", "containers") {
		for _, p := range list(c, "ports") {
			n, _ := num(p, "containerPort")
			ports[str(p, "name")] = n
		}
	}
	return ports
}

// probePort resolves a probe's port (name or number) to a number.
func probePort(v any, ports map[string]int) int {
	switch p := v.(type) {
	case int:
		return p
	case string:
		return ports[p]
	}
	return 0
}

func listenPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%q: %v", addr, err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

func checkDeployment(t *testing.T, d manifest, ms []manifest, cfg *config.Config) {
	if n, ok := num(d.doc, "spec", "replicas"); !ok || n < 2 {
		t.Errorf("%s: spec.replicas %v, want at least 2", d, get(d.doc, "spec", "replicas"))
	}
	sel := stringMap(d.doc, "spec", "selector", "matchLabels")
	if !subset(sel, templateLabels(d)) {
		t.Errorf("%s: selector %v does not match the template labels %v", d, sel, templateLabels(d))
	}
	pod := get(d.doc, "spec", "template", "spec")
	podSC := get(pod, "securityContext")
	if grace, _ := num(pod, "terminationGracePeriodSeconds"); time.Duration(grace)*time.Second < time.Duration(cfg.Outbound.DeliveryTimeout)+5*time.Second {
		t.Errorf("%s: terminationGracePeriodSeconds %d is shorter than Caliop's shutdown grace (delivery_timeout + 5s)", d, grace)
	}
	ports := containerPorts(d)
	volumes := map[string]any{}
	for _, v := range list(pod, "volumes") {
		volumes[str(v, "name")] = v
	}
	var caliop any
	for _, c := range list(pod, "containers") {
		name := str(c, "name")
		if str(c, "image") == "" {
			t.Errorf("%s: container %s has no image", d, name)
		}
		sc := get(c, "securityContext")
		if get(sc, "runAsNonRoot") != true && get(podSC, "runAsNonRoot") != true {
			t.Errorf("%s: container %s: securityContext.runAsNonRoot is not true", d, name)
		}
		if get(sc, "allowPrivilegeEscalation") != false {
			t.Errorf("%s: container %s: allowPrivilegeEscalation must be false", d, name)
		}
		if !slices.Contains(strList(sc, "capabilities", "drop"), "ALL") {
			t.Errorf("%s: container %s: capabilities.drop must be [ALL]", d, name)
		}
		for _, vm := range list(c, "volumeMounts") {
			if volumes[str(vm, "name")] == nil {
				t.Errorf("%s: container %s mounts undefined volume %q", d, name, str(vm, "name"))
			}
		}
		if slices.Contains(strList(c, "args"), "serve") {
			caliop = c
		}
	}
	if caliop == nil {
		t.Fatalf("%s: no container runs `caliop serve`", d)
	}
	sc := get(caliop, "securityContext")
	if add := strList(sc, "capabilities", "add"); !slices.Equal(add, []string{"NET_BIND_SERVICE"}) {
		t.Errorf("%s: caliop capabilities.add %v, want [NET_BIND_SERVICE]", d, add)
	}
	if len(list(caliop, "ports")) == 0 {
		t.Errorf("%s: caliop container declares no ports", d)
	}
	for port, what := range map[int]string{
		listenPort(t, cfg.Inbound.Listen): "inbound.listen", listenPort(t, cfg.Inbound.HTTPSListen): "inbound.https_listen",
		listenPort(t, cfg.Outbound.LMTP): "outbound.lmtp", listenPort(t, cfg.Outbound.SMTP): "outbound.smtp",
		listenPort(t, cfg.Metrics.Listen): "metrics.listen",
	} {
		if !slices.Contains(mapsValues(ports), port) {
			t.Errorf("%s: no container port %d (%s of the ConfigMap)", d, port, what)
		}
	}
	metrics := listenPort(t, cfg.Metrics.Listen)
	for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
		h := get(caliop, probe, "httpGet")
		if str(h, "path") != path || probePort(get(h, "port"), ports) != metrics {
			t.Errorf("%s: %s is %v, want httpGet %s on the metrics port %d", d, probe, h, path, metrics)
		}
	}
	// --config names the mounted caliop.yml of a ConfigMap that exists.
	args := strList(caliop, "args")
	i := slices.Index(args, "--config")
	if i < 0 || i+1 == len(args) {
		t.Fatalf("%s: caliop args %v have no --config", d, args)
	}
	cfgPath := args[i+1]
	found := false
	for _, vm := range list(caliop, "volumeMounts") {
		v := volumes[str(vm, "name")]
		cm := str(v, "configMap", "name")
		if cm == "" || filepath.Dir(cfgPath) != str(vm, "mountPath") {
			continue
		}
		for _, m := range byKind(ms, "ConfigMap") {
			if m.name() == cm && str(m.doc, "data", filepath.Base(cfgPath)) != "" {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("%s: --config %s is not a key of a mounted ConfigMap", d, cfgPath)
	}
	// Certificate files named in the configuration come from a mounted
	// Secret.
	for _, f := range []string{cfg.Inbound.TLS.Cert, cfg.Inbound.TLS.Key} {
		if f == "" {
			continue
		}
		ok := false
		for _, vm := range list(caliop, "volumeMounts") {
			if str(volumes[str(vm, "name")], "secret", "secretName") != "" && filepath.Dir(f) == str(vm, "mountPath") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("%s: inbound certificate file %s is not in a mounted Secret", d, f)
		}
	}
	// Every ConfigMap volume names a ConfigMap defined here.
	for name, v := range volumes {
		cm := str(v, "configMap", "name")
		if cm == "" {
			continue
		}
		if !slices.ContainsFunc(byKind(ms, "ConfigMap"), func(m manifest) bool { return m.name() == cm }) {
			t.Errorf("%s: volume %s names ConfigMap %q, not defined", d, name, cm)
		}
	}
}

func mapsValues(m map[string]int) []int {
	var out []int
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// selected returns the Deployments whose pods a selector picks.
func selected(sel map[string]string, deps []manifest) []manifest {
	var out []manifest
	for _, d := range deps {
		if subset(sel, templateLabels(d)) {
			out = append(out, d)
		}
	}
	return out
}

func checkService(t *testing.T, s manifest, deps []manifest) {
	sel := stringMap(s.doc, "spec", "selector")
	pods := selected(sel, deps)
	if len(pods) == 0 {
		t.Errorf("%s: selector %v picks no Deployment's pods", s, sel)
		return
	}
	ports := list(s.doc, "spec", "ports")
	if len(ports) == 0 {
		t.Errorf("%s: no ports", s)
	}
	typ := str(s.doc, "spec", "type")
	for _, p := range ports {
		n, _ := num(p, "port")
		if n < 1 || n > 65535 {
			t.Errorf("%s: port %v", s, get(p, "port"))
		}
		if len(ports) > 1 && str(p, "name") == "" {
			t.Errorf("%s: port %d has no name (required with several ports)", s, n)
		}
		target := probePort(get(p, "targetPort"), containerPorts(pods[0]))
		if get(p, "targetPort") == nil {
			target = n
		}
		if !slices.Contains(mapsValues(containerPorts(pods[0])), target) {
			t.Errorf("%s: port %d targets %v, not a container port", s, n, get(p, "targetPort"))
		}
		// The relay listeners are for Postfix only: never outside the
		// cluster.
		if (target == 10024 || target == 10025 || target == 9464) && typ != "" && typ != "ClusterIP" {
			t.Errorf("%s: port %d exposed by a %s Service; only Postfix (ClusterIP) may reach it", s, n, typ)
		}
	}
	if typ == "LoadBalancer" && str(s.doc, "spec", "externalTrafficPolicy") != "Local" {
		t.Errorf("%s: externalTrafficPolicy must be Local to keep the sender's address (XCLIENT, max_per_ip)", s)
	}
}

func checkPDB(t *testing.T, p manifest, deps []manifest) {
	minA, maxU := get(p.doc, "spec", "minAvailable"), get(p.doc, "spec", "maxUnavailable")
	if (minA == nil) == (maxU == nil) {
		t.Errorf("%s: set exactly one of minAvailable and maxUnavailable", p)
	}
	pods := selected(stringMap(p.doc, "spec", "selector", "matchLabels"), deps)
	if len(pods) == 0 {
		t.Errorf("%s: selector picks no Deployment's pods", p)
		return
	}
	replicas, _ := num(pods[0].doc, "spec", "replicas")
	if n, ok := minA.(int); ok && n >= replicas {
		t.Errorf("%s: minAvailable %d with %d replicas blocks every drain", p, n, replicas)
	}
	if n, ok := maxU.(int); ok && n < 1 {
		t.Errorf("%s: maxUnavailable %d blocks every drain", p, n)
	}
}

func checkHPA(t *testing.T, h manifest, deps []manifest) {
	ref := get(h.doc, "spec", "scaleTargetRef")
	if str(ref, "kind") != "Deployment" || str(ref, "apiVersion") != "apps/v1" ||
		!slices.ContainsFunc(deps, func(d manifest) bool { return d.name() == str(ref, "name") }) {
		t.Errorf("%s: scaleTargetRef %v does not name a Deployment defined here", h, ref)
		return
	}
	minR, _ := num(h.doc, "spec", "minReplicas")
	maxR, _ := num(h.doc, "spec", "maxReplicas")
	if minR < 2 || maxR < minR {
		t.Errorf("%s: minReplicas %d, maxReplicas %d: want 2 <= min <= max", h, minR, maxR)
	}
	if len(list(h.doc, "spec", "metrics")) == 0 {
		t.Errorf("%s: no metrics", h)
	}
	// A utilization target needs the resource requested by every
	// container.
	for _, m := range list(h.doc, "spec", "metrics") {
		res := str(m, "resource", "name")
		if str(m, "type") != "Resource" || str(m, "resource", "target", "type") != "Utilization" {
			continue
		}
		for _, d := range deps {
			if d.name() != str(ref, "name") {
				continue
			}
			for _, c := range list(d.doc, "spec", "template", "spec", "containers") {
				if get(c, "resources", "requests", res) == nil {
					t.Errorf("%s: scales on %s utilization but container %s requests no %s", h, res, str(c, "name"), res)
				}
			}
		}
	}
}

func checkServiceMonitor(t *testing.T, sm manifest, services []manifest) {
	sel := stringMap(sm.doc, "spec", "selector", "matchLabels")
	var names []string
	for _, s := range services {
		if subset(sel, stringMap(s.doc, "metadata", "labels")) {
			for _, p := range list(s.doc, "spec", "ports") {
				names = append(names, str(p, "name"))
			}
		}
	}
	if len(names) == 0 {
		t.Errorf("%s: selector %v matches no Service", sm, sel)
	}
	eps := list(sm.doc, "spec", "endpoints")
	if len(eps) == 0 {
		t.Errorf("%s: no endpoints", sm)
	}
	for _, e := range eps {
		if !slices.Contains(names, str(e, "port")) {
			t.Errorf("%s: endpoint port %q is not a port name of the selected Services %v", sm, str(e, "port"), names)
		}
		if p := str(e, "path"); p != "" && p != "/metrics" {
			t.Errorf("%s: path %q, Caliop serves /metrics", sm, p)
		}
	}
}

func checkNetworkPolicy(t *testing.T, n manifest, deps []manifest, cfg *config.Config) {
	if len(selected(stringMap(n.doc, "spec", "podSelector", "matchLabels"), deps)) == 0 {
		t.Errorf("%s: podSelector picks no Deployment's pods", n)
	}
	relay := []int{listenPort(t, cfg.Outbound.LMTP), listenPort(t, cfg.Outbound.SMTP)}
	for _, rule := range list(n.doc, "spec", "ingress") {
		for _, p := range list(rule, "ports") {
			port, _ := num(p, "port")
			if slices.Contains(relay, port) && len(list(rule, "from")) == 0 {
				t.Errorf("%s: relay port %d open to every source", n, port)
			}
		}
	}
}

func checkCertificate(t *testing.T, c manifest, deps []manifest, cfg *config.Config) {
	names := strList(c.doc, "spec", "dnsNames")
	want := []string{cfg.Inbound.Hostname}
	for _, d := range cfg.Inbound.Domains {
		want = append(want, "mta-sts."+d)
	}
	for _, w := range want {
		if !slices.Contains(names, w) {
			t.Errorf("%s: dnsNames %v lack %s (inbound hostname and mta-sts.<domain>)", c, names, w)
		}
	}
	secret := str(c.doc, "spec", "secretName")
	used := false
	for _, d := range deps {
		for _, v := range list(d.doc, "spec", "template", "spec", "volumes") {
			used = used || str(v, "secret", "secretName") == secret
		}
	}
	if !used {
		t.Errorf("%s: Secret %q is mounted by no Deployment", c, secret)
	}
	if str(c.doc, "spec", "privateKey", "rotationPolicy") != "Never" {
		t.Errorf("%s: privateKey.rotationPolicy must be Never to keep the published TLSA 3 1 1 record valid", c)
	}
}

// TestKubernetesUnbound checks that Caliop asks the sidecar resolver on
// loopback (so that its AD bit is believed without trust_ad).
func TestKubernetesUnbound(t *testing.T) {
	ms := kubernetes(t)
	cfg := k8sCaliopConfig(t, ms)
	var conf string
	for _, m := range byKind(ms, "ConfigMap") {
		if s := str(m.doc, "data", "unbound.conf"); s != "" {
			conf = s
		}
	}
	if conf == "" {
		t.Fatal("no ConfigMap holds unbound.conf")
	}
	u := unboundSettings(conf)
	want := net.JoinHostPort(first(u["interface"]), first(u["port"]))
	if len(cfg.DNS.Servers) != 1 || cfg.DNS.Servers[0] != want {
		t.Errorf("dns.servers %v, want the sidecar %s", cfg.DNS.Servers, want)
	}
	if a, err := netip.ParseAddr(first(u["interface"])); err != nil || !a.IsLoopback() {
		t.Errorf("unbound interface %v: want loopback (the pod's own resolver)", u["interface"])
	}
	if cfg.DNS.TrustAD {
		t.Error("dns.trust_ad set although the resolver is on loopback")
	}
}

// unboundSettings reads "key: value" lines of an unbound.conf.
func unboundSettings(text string) map[string][]string {
	out := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, "#"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || v == "" {
			continue
		}
		out[k] = append(out[k], strings.Trim(strings.TrimSpace(v), `"`))
	}
	return out
}

func first(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return l[0]
}

// ---- Compose ----

type composeFile struct {
	Services map[string]struct {
		Image       string
		Build       any
		Command     []string
		Volumes     []string
		Ports       []string
		Networks    any
		Sysctls     map[string]any
		CapDrop     []string `yaml:"cap_drop"`
		ReadOnly    bool     `yaml:"read_only"`
		StopGrace   string   `yaml:"stop_grace_period"`
		Healthcheck struct{ Test []string }
	}
	Networks map[string]struct {
		IPAM struct {
			Config []struct {
				Subnet  string
				IPRange string `yaml:"ip_range"`
			}
		}
	}
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	b := sourceOf(t, filepath.Join("compose", "compose.yaml"))
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// composeMounts maps each bind mount target of a service to its source,
// relative to deploy/.
func composeMounts(c composeFile, service string) map[string]string {
	out := map[string]string{}
	for _, v := range c.Services[service].Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") {
			continue // a named volume
		}
		out[parts[1]] = filepath.Join("compose", parts[0])
	}
	return out
}

// address returns a service's fixed address on a network.
func address(t *testing.T, c composeFile, service string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(str(c.Services[service].Networks, "mail", "ipv4_address"))
	if err != nil {
		t.Fatalf("compose service %s: no fixed ipv4_address on network mail: %v", service, err)
	}
	return a
}

func TestComposeFile(t *testing.T) {
	c := loadCompose(t)
	for _, s := range []string{"caliop", "postfix", "unbound", "prometheus", "grafana"} {
		if _, ok := c.Services[s]; !ok {
			t.Errorf("compose.yaml: no service %s", s)
		}
	}
	// Every bind mount and build context exists.
	for name, s := range c.Services {
		for target, src := range composeMounts(c, name) {
			if _, err := os.Stat(src); err != nil {
				t.Errorf("compose service %s: mount of %s: %v", name, target, err)
			}
		}
		ctx := ""
		switch b := s.Build.(type) {
		case string:
			ctx = b
		case map[string]any:
			ctx = str(b, "context")
		}
		if ctx != "" {
			df := "Dockerfile"
			if m, ok := s.Build.(map[string]any); ok && str(m, "dockerfile") != "" {
				df = str(m, "dockerfile")
			}
			if _, err := os.Stat(filepath.Join("compose", ctx, df)); err != nil {
				t.Errorf("compose service %s: build: %v", name, err)
			}
		}
	}

	// Caliop: its configuration is the mounted file it is started with.
	cal := c.Services["caliop"]
	i := slices.Index(cal.Command, "--config")
	if i < 0 || i+1 == len(cal.Command) {
		t.Fatalf("compose caliop command %v has no --config", cal.Command)
	}
	src := composeMounts(c, "caliop")[cal.Command[i+1]]
	if src == "" {
		t.Fatalf("compose caliop: --config %s is not a mounted file", cal.Command[i+1])
	}
	cfg, err := config.Load(src)
	if err != nil {
		t.Fatalf("config.Load(%s): %v", src, err)
	}
	containerConfig(t, src, cfg)
	if cfg.Inbound.TLS.ACME == nil || cfg.Inbound.TLS.ACME.Email == "" {
		t.Errorf("%s: inbound certificates should come from ACME with a contact address", src)
	}
	// Only the inbound ports are published.
	want := []string{fmt.Sprint(listenPort(t, cfg.Inbound.Listen)), fmt.Sprint(listenPort(t, cfg.Inbound.HTTPSListen))}
	var published []string
	for _, p := range cal.Ports {
		parts := strings.Split(p, ":")
		published = append(published, parts[len(parts)-1])
	}
	slices.Sort(published)
	slices.Sort(want)
	if !slices.Equal(published, want) {
		t.Errorf("compose caliop publishes %v, want only the inbound ports %v", published, want)
	}
	if !slices.Contains(cal.CapDrop, "ALL") || !cal.ReadOnly {
		t.Errorf("compose caliop: want cap_drop [ALL] and read_only")
	}
	if fmt.Sprint(cal.Sysctls["net.ipv4.ip_unprivileged_port_start"]) != "0" {
		t.Errorf("compose caliop: the nonroot image needs net.ipv4.ip_unprivileged_port_start: 0 to bind port 25")
	}
	if g, err := time.ParseDuration(cal.StopGrace); err != nil || g < time.Duration(cfg.Outbound.DeliveryTimeout)+5*time.Second {
		t.Errorf("compose caliop: stop_grace_period %q shorter than delivery_timeout + 5s", cal.StopGrace)
	}
	if !slices.Contains(cal.Healthcheck.Test, "healthcheck") {
		t.Errorf("compose caliop: health check %v does not run `caliop healthcheck` (/readyz)", cal.Healthcheck.Test)
	}

	// Fixed addresses: in the subnet, outside the dynamic range, and the
	// same in every file that names them.
	ipam := c.Networks["mail"].IPAM.Config
	if len(ipam) != 1 {
		t.Fatalf("compose network mail: want one ipam config, got %v", ipam)
	}
	subnet, err1 := netip.ParsePrefix(ipam[0].Subnet)
	dyn, err2 := netip.ParsePrefix(ipam[0].IPRange)
	if err1 != nil || err2 != nil {
		t.Fatalf("compose network mail: subnet %q, ip_range %q", ipam[0].Subnet, ipam[0].IPRange)
	}
	caliopIP, postfixIP, unboundIP := address(t, c, "caliop"), address(t, c, "postfix"), address(t, c, "unbound")
	for _, a := range []netip.Addr{caliopIP, postfixIP, unboundIP} {
		if !subnet.Contains(a) || dyn.Contains(a) {
			t.Errorf("fixed address %v: want it in %v and outside ip_range %v", a, subnet, dyn)
		}
	}
	if !slices.ContainsFunc(cfg.Outbound.TrustedNetworks, func(p config.Prefix) bool { return p.Contains(postfixIP) }) {
		t.Errorf("%s: outbound.trusted_networks %v lack postfix %v", src, cfg.Outbound.TrustedNetworks, postfixIP)
	}
	if len(cfg.Outbound.TrustedNetworks) != 1 || cfg.Outbound.TrustedNetworks[0].Bits() != 32 {
		t.Errorf("%s: outbound.trusted_networks %v: want only Postfix's address", src, cfg.Outbound.TrustedNetworks)
	}
	mainCF := postfixMain(t, filepath.Join("compose", "postfix", "main.cf"))
	if got, want := mainCF["default_transport"], fmt.Sprintf("lmtp:inet:%v:%d", caliopIP, listenPort(t, cfg.Outbound.LMTP)); got != want {
		t.Errorf("postfix main.cf default_transport %q, want %q (Caliop's LMTP listener)", got, want)
	}
	svc := postfixService(t, filepath.Join("compose", "postfix", "master.cf"), cfg.Inbound.NextHop)
	if svc == nil {
		t.Fatalf("postfix master.cf has no smtpd for inbound.next_hop %s", cfg.Inbound.NextHop)
	}
	if got := svc["smtpd_authorized_xclient_hosts"]; got != caliopIP.String() {
		t.Errorf("postfix master.cf: smtpd_authorized_xclient_hosts %q, want Caliop's address %v", got, caliopIP)
	}
	if host, _, _ := strings.Cut(cfg.Inbound.NextHop, ":"); host != postfixIP.String() {
		t.Errorf("%s: inbound.next_hop %s, want postfix %v", src, cfg.Inbound.NextHop, postfixIP)
	}
	if len(cfg.DNS.Servers) != 1 || cfg.DNS.Servers[0] != addrPort(unboundIP, 53) || !cfg.DNS.TrustAD {
		t.Errorf("%s: dns.servers %v (trust_ad %v): want unbound %v with trust_ad", src, cfg.DNS.Servers, cfg.DNS.TrustAD, addrPort(unboundIP, 53))
	}
	u := unboundSettings(string(sourceOf(t, filepath.Join("compose", "unbound", "unbound.conf"))))
	allowed := false
	for _, ac := range u["access-control"] {
		p, action, _ := strings.Cut(ac, " ")
		if pp, err := netip.ParsePrefix(p); err == nil && pp.Contains(caliopIP) && strings.TrimSpace(action) == "allow" {
			allowed = true
		}
	}
	if !allowed {
		t.Errorf("unbound.conf access-control %v does not allow Caliop %v", u["access-control"], caliopIP)
	}
	// The postfix smtpd Caliop hands mail to must not listen on 25.
	if postfixService(t, filepath.Join("compose", "postfix", "master.cf"), "smtp") != nil {
		t.Error("postfix master.cf has an smtpd on port 25: Caliop listens there")
	}

	// Prometheus scrapes Caliop's metrics port and loads the rules.
	prom := documents(t, filepath.Join("compose", "prometheus.yml"))[0]
	var targets []string
	for _, sc := range list(prom, "scrape_configs") {
		for _, st := range list(sc, "static_configs") {
			targets = append(targets, strList(st, "targets")...)
		}
	}
	if want := hostPort("caliop", listenPort(t, cfg.Metrics.Listen)); !slices.Contains(targets, want) {
		t.Errorf("prometheus.yml targets %v lack %s", targets, want)
	}
	pm := composeMounts(c, "prometheus")
	for _, r := range strList(prom, "rule_files") {
		if !filepath.IsAbs(r) {
			r = filepath.Join("/etc/prometheus", r)
		}
		if pm[r] != filepath.Join("..", "dashboards", "rules.yaml") {
			t.Errorf("prometheus rule file %s is mounted from %q, want dashboards/rules.yaml", r, pm[r])
		}
	}
	if len(strList(prom, "rule_files")) == 0 {
		t.Error("prometheus.yml loads no rule file")
	}
}

func addrPort(a netip.Addr, port int) string { return netip.AddrPortFrom(a, uint16(port)).String() }
func hostPort(host string, port int) string  { return net.JoinHostPort(host, strconv.Itoa(port)) }

// TestComposeGrafanaProvisioning checks that the compose file mounts the
// repository's dashboards and their file provider where the provider
// looks for them.
func TestComposeGrafanaProvisioning(t *testing.T) {
	c := loadCompose(t)
	m := composeMounts(c, "grafana")
	const provisioning = "/etc/grafana/provisioning/dashboards/"
	var provider string
	for target, src := range m {
		if strings.HasPrefix(target, provisioning) {
			if src != filepath.Join("..", "dashboards", "provisioning", "dashboards.yaml") {
				t.Errorf("grafana %s is mounted from %s, want dashboards/provisioning/dashboards.yaml", target, src)
			}
			provider = src
		}
	}
	if provider == "" {
		t.Fatal("compose grafana does not mount dashboards/provisioning/dashboards.yaml")
	}
	for _, p := range list(documents(t, provider)[0], "providers") {
		path := str(p, "options", "path")
		src, ok := m[path]
		if !ok {
			t.Errorf("provider %s reads %s, which no volume mounts", str(p, "name"), path)
			continue
		}
		if src != filepath.Join("..", "dashboards") {
			t.Errorf("provider path %s is mounted from %s, want dashboards/", path, src)
		}
		json, _ := filepath.Glob(filepath.Join(src, "*.json"))
		if len(json) == 0 {
			t.Errorf("no dashboard JSON in %s", src)
		}
	}
	var ds bool
	for target := range m {
		ds = ds || strings.HasPrefix(target, "/etc/grafana/provisioning/datasources/")
	}
	if !ds {
		t.Error("compose grafana provisions no datasource")
	}
}

// postfixMain reads main.cf "name = value" lines (with continuation
// lines) into a map.
func postfixMain(t *testing.T, path string) map[string]string {
	t.Helper()
	out := map[string]string{}
	var last string
	for _, line := range strings.Split(string(sourceOf(t, path)), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") || strings.TrimSpace(line) == "" {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if last != "" {
				out[last] += " " + strings.TrimSpace(line)
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not name = value", path, line)
		}
		last = strings.TrimSpace(k)
		out[last] = strings.TrimSpace(v)
	}
	return out
}

// postfixService returns the -o overrides of the smtpd inet service of
// master.cf whose service name is name or whose port is that of the
// host:port name; nil when there is none.
func postfixService(t *testing.T, path, name string) map[string]string {
	t.Helper()
	_, port, err := net.SplitHostPort(name)
	if err != nil {
		port = name
	}
	var cur map[string]string
	var found map[string]string
	for _, line := range strings.Split(string(sourceOf(t, path)), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || trimmed == "" {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			f := strings.Fields(line)
			cur = nil
			if len(f) >= 8 && f[1] == "inet" && f[7] == "smtpd" {
				svc := f[0]
				if i := strings.LastIndex(svc, ":"); i >= 0 {
					svc = svc[i+1:]
				}
				if svc == port || svc == name {
					cur = map[string]string{}
					found = cur
				}
			}
			continue
		}
		if cur != nil {
			f := strings.Fields(trimmed)
			if len(f) == 2 && f[0] == "-o" {
				k, v, _ := strings.Cut(f[1], "=")
				cur[k] = v
			}
		}
	}
	return found
}

// ---- systemd ----

// unit reads a systemd unit into section → key → values.
func unit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	out := map[string]map[string][]string{}
	var section string
	for n, line := range strings.Split(string(sourceOf(t, path)), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: %q", path, n+1, line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	return out
}

func TestSystemdUnit(t *testing.T) {
	path := filepath.Join("systemd", "caliop.service")
	u := unit(t, path)
	s := u["Service"]
	want := map[string]string{
		"ProtectSystem":           "strict",
		"NoNewPrivileges":         "yes",
		"AmbientCapabilities":     "CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet":   "CAP_NET_BIND_SERVICE",
		"StateDirectory":          "caliop",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"RestrictSUIDSGID":        "yes",
		"RestrictNamespaces":      "yes",
		"LockPersonality":         "yes",
		"SystemCallArchitectures": "native",
		"ProtectKernelTunables":   "yes",
		"ProtectControlGroups":    "yes",
	}
	for k, v := range want {
		if got := s[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s: %s=%v, want %s", path, k, got, v)
		}
	}
	if u := s["User"]; len(u) != 1 || u[0] == "" || u[0] == "root" {
		t.Errorf("%s: User=%v: want a dedicated user", path, u)
	}
	if _, ok := s["ExecReload"]; ok {
		t.Errorf("%s: ExecReload set, but Caliop does not reload its configuration", path)
	}
	exec := s["ExecStart"]
	if len(exec) != 1 {
		t.Fatalf("%s: ExecStart=%v", path, exec)
	}
	args := strings.Fields(exec[0])
	i := slices.Index(args, "--config")
	if len(args) < 4 || args[1] != "serve" || i < 0 || i+1 == len(args) {
		t.Fatalf("%s: ExecStart=%s: want caliop serve --config FILE", path, exec[0])
	}
	if args[i+1] != "/etc/caliop/caliop.yml" {
		t.Errorf("%s: --config %s; the documented place is /etc/caliop/caliop.yml", path, args[i+1])
	}
	// The unit runs deploy/caliop.yml: its data_dir is the StateDirectory
	// (the only writable place under ProtectSystem=strict).
	cfg, err := config.Load("caliop.yml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/var/lib/caliop" {
		t.Errorf("deploy/caliop.yml data_dir %s is not the unit's StateDirectory /var/lib/caliop", cfg.DataDir)
	}
	stop := s["TimeoutStopSec"]
	if len(stop) != 1 {
		t.Fatalf("%s: TimeoutStopSec=%v", path, stop)
	}
	d, err := time.ParseDuration(stop[0])
	if err != nil || d < time.Duration(cfg.Outbound.DeliveryTimeout)+5*time.Second {
		t.Errorf("%s: TimeoutStopSec=%s shorter than delivery_timeout + 5s", path, stop[0])
	}
	if u["Install"]["WantedBy"] == nil {
		t.Errorf("%s: no [Install] WantedBy", path)
	}
}
