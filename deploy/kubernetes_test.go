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
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caliop/relay/config"
)

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
		"Certificate": "cert-manager.io/v1", "StatefulSet": "apps/v1",
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
	// Workloads: Caliop's Deployment and the Redis it shares.
	workloads := append(byKind(ms, "StatefulSet"), deps...)
	for _, s := range byKind(ms, "Service") {
		checkService(t, s, workloads)
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
		checkNetworkPolicy(t, n, workloads, cfg)
	}
	checkRedis(t, byKind(ms, "StatefulSet"), cfg)
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

// checkRedis: the replicas share a Redis of the manifests, which keeps
// its data (an append-only file on a claimed volume).
func checkRedis(t *testing.T, sets []manifest, cfg *config.Config) {
	if !cfg.Cluster.Enabled() {
		t.Error("caliop.yml: cluster.redis unset: the replicas would not share policies and pins")
		return
	}
	if len(sets) != 1 || sets[0].name() != "caliop-redis" || !strings.Contains(cfg.Cluster.Redis, "//caliop-redis:") {
		t.Errorf("cluster.redis %q: want the StatefulSet caliop-redis of redis.yaml", cfg.Cluster.Redis)
		return
	}
	containers := list(sets[0].doc, "spec", "template", "spec", "containers")
	if len(containers) != 1 || !slices.Contains(strList(containers[0], "args"), "--appendonly") {
		t.Errorf("%s: Redis without --appendonly yes would restart empty", sets[0])
	}
	if len(list(sets[0].doc, "spec", "volumeClaimTemplates")) == 0 {
		t.Errorf("%s: no volume claim: the append-only file would go with the pod", sets[0])
	}
}
