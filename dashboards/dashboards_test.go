package dashboards_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// exported are the series Caliop exports (README "Metrics"), by base
// name; histograms add _bucket, _sum and _count.
var exported = map[string]string{
	"caliop_build_info":                           "gauge",
	"caliop_outbound_sessions_total":              "counter",
	"caliop_delivered_messages_total":             "counter",
	"caliop_delivered_recipients_total":           "counter",
	"caliop_delivery_failures_total":              "counter",
	"caliop_plaintext_deliveries_total":           "counter",
	"caliop_delivery_duration_seconds":            "histogram",
	"caliop_delivery_recipients_total":            "counter",
	"caliop_mtasts_fetches_total":                 "counter",
	"caliop_mtasts_policies":                      "gauge",
	"caliop_dane_verifications_total":             "counter",
	"caliop_wkd_lookups_total":                    "counter",
	"caliop_wkd_lookup_duration_seconds":          "histogram",
	"caliop_wkd_key_changes_total":                "counter",
	"caliop_pgp_messages_total":                   "counter",
	"caliop_inbound_sessions_total":               "counter",
	"caliop_tlsrpt_reports_total":                 "counter",
	"caliop_certificate_expiry_timestamp_seconds": "gauge",
	"caliop_metrics_domain_overflow_total":        "counter",
	"caliop_learned_policies":                     "gauge",
	"caliop_learned_policy_violations_total":      "counter",
	// Proposed for the charter matrix's "TLS-RPT published" column (1
	// when the partner publishes a TLS-RPT record, RFC 8460 §3); not
	// exported yet. See README.md.
	"caliop_partner_tlsrpt_published": "gauge",
}

// builtins are the Grafana variables a target may use besides the
// dashboard's own.
var builtins = []string{"__rate_interval", "__range", "__interval"}

// allowedNames returns every metric name an expression may select:
// exported series (with the histogram suffixes) and the recording rules
// of rules.yaml.
func allowedNames(t *testing.T) map[string]bool {
	t.Helper()
	ok := map[string]bool{}
	for n, typ := range exported {
		ok[n] = true
		if typ == "histogram" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				ok[n+s] = true
			}
		}
	}
	for _, r := range loadRules(t) {
		if r.Record != "" {
			ok[r.Record] = true
		}
	}
	return ok
}

type rule struct {
	Record, Alert, Expr, For string
	Labels, Annotations      map[string]string
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	b, err := os.ReadFile("rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string
			Rules []rule
		}
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("rules.yaml: %v", err)
	}
	var rules []rule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatal("rules.yaml has no rules")
	}
	return rules
}

// dashboard is the part of Grafana's classic dashboard JSON checked here.
type dashboard struct {
	file   string
	raw    map[string]any
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Inputs []any   `json:"__inputs"`
	Panels []panel `json:"panels"`
	Templ  struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int                       `json:"id"`
	Type       string                    `json:"type"`
	Title      string                    `json:"title"`
	Datasource json.RawMessage           `json:"datasource"`
	GridPos    *struct{ H, W, X, Y int } `json:"gridPos"`
	Targets    []target                  `json:"targets"`
	Panels     []panel                   `json:"panels"` // a collapsed row's
}

type target struct {
	RefID      string          `json:"refId"`
	Expr       string          `json:"expr"`
	Instant    bool            `json:"instant"`
	Datasource json.RawMessage `json:"datasource"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"` // a string, or {"query": ...}
	Datasource json.RawMessage `json:"datasource"`
}

// query returns the variable's query text.
func (v variable) query() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct{ Query string }
	json.Unmarshal(v.Query, &o)
	return o.Query
}

func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	files, err := filepath.Glob("*.json")
	if err != nil || len(files) < 2 {
		t.Fatalf("dashboards: %v %v; want the overview and charter JSON", files, err)
	}
	var ds []dashboard
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d := dashboard{file: f}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := json.Unmarshal(b, &d.raw); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		ds = append(ds, d)
	}
	return ds
}

// flatten returns every panel, rows' nested ones included.
func flatten(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flatten(p.Panels)...)
	}
	return out
}

// usesDatasourceVar reports whether a datasource reference is the
// $datasource variable, as a string or as {"type", "uid"}.
func usesDatasourceVar(raw json.RawMessage) bool {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s == "$datasource" || s == "${datasource}"
	}
	var o struct{ Type, UID string }
	if json.Unmarshal(raw, &o) != nil {
		return false
	}
	return o.Type == "prometheus" && (o.UID == "$datasource" || o.UID == "${datasource}")
}

// TestDashboards checks each dashboard's structure: the datasource, job
// and instance variables, $datasource everywhere (no datasource UID of
// one Grafana), panels with unique ids and a place, and targets whose
// expressions select only exported series or recording rules, with
// every range [$__rate_interval] ([$__range] in instant queries).
func TestDashboards(t *testing.T) {
	allowed := allowedNames(t)
	uids := map[string]string{}
	for _, d := range loadDashboards(t) {
		t.Run(d.file, func(t *testing.T) {
			if d.UID == "" || d.Title == "" {
				t.Errorf("uid %q, title %q: both required (provisioning keys on uid)", d.UID, d.Title)
			}
			if other, dup := uids[d.UID]; dup {
				t.Errorf("uid %q also used by %s", d.UID, other)
			}
			uids[d.UID] = d.file
			if d.Inputs != nil {
				t.Error("__inputs present: that is the export-for-sharing format; file provisioning needs classic JSON with $datasource")
			}
			vars := checkVariables(t, d, allowed)
			checkDatasourceRefs(t, "", d.raw)

			ids := map[int]string{}
			exprs := 0
			for _, p := range flatten(d.Panels) {
				if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
					t.Errorf("panel %q: no gridPos", p.Title)
				}
				if prev, dup := ids[p.ID]; dup || p.ID == 0 {
					t.Errorf("panel %q: id %d missing or also used by %q", p.Title, p.ID, prev)
				}
				ids[p.ID] = p.Title
				if p.Type == "row" {
					continue
				}
				if p.Title == "" {
					t.Errorf("panel %d has no title", p.ID)
				}
				if !usesDatasourceVar(p.Datasource) {
					t.Errorf("panel %q: datasource %s, want {\"type\": \"prometheus\", \"uid\": \"${datasource}\"}", p.Title, p.Datasource)
				}
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no targets", p.Title)
				}
				refs := map[string]bool{}
				for _, tg := range p.Targets {
					if tg.RefID == "" || refs[tg.RefID] {
						t.Errorf("panel %q: refId %q empty or repeated", p.Title, tg.RefID)
					}
					refs[tg.RefID] = true
					if !usesDatasourceVar(tg.Datasource) {
						t.Errorf("panel %q target %s: datasource %s, want ${datasource}", p.Title, tg.RefID, tg.Datasource)
					}
					where := fmt.Sprintf("panel %q target %s", p.Title, tg.RefID)
					for _, err := range checkExpr(tg.Expr, tg.Instant, allowed, vars) {
						t.Errorf("%s: %v\n\t%s", where, err, tg.Expr)
					}
					exprs++
				}
			}
			if exprs == 0 {
				t.Error("no panel expressions")
			}
		})
	}
}

// checkVariables requires the datasource, job and instance variables and
// checks the label_values queries; it returns every variable name.
func checkVariables(t *testing.T, d dashboard, allowed map[string]bool) []string {
	t.Helper()
	byName := map[string]variable{}
	var names []string
	for _, v := range d.Templ.List {
		byName[v.Name] = v
		names = append(names, v.Name)
	}
	if v, ok := byName["datasource"]; !ok || v.Type != "datasource" || v.query() != "prometheus" {
		t.Errorf("templating: want a datasource variable named datasource with query prometheus; have %+v", v)
	}
	for _, n := range []string{"job", "instance"} {
		if v, ok := byName[n]; !ok || v.Type != "query" {
			t.Errorf("templating: want a query variable %q", n)
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_]\w*)\)$`)
	for _, v := range d.Templ.List {
		if v.Type != "query" {
			continue
		}
		if !usesDatasourceVar(v.Datasource) {
			t.Errorf("variable %s: datasource %s, want ${datasource}", v.Name, v.Datasource)
		}
		m := labelValues.FindStringSubmatch(v.query())
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, v.query())
			continue
		}
		for _, err := range checkExpr(m[1], false, allowed, names) {
			t.Errorf("variable %s: %v", v.Name, err)
		}
	}
	return names
}

// checkDatasourceRefs walks the whole JSON: every "datasource" value
// must be the variable (the datasource variable itself has none).
func checkDatasourceRefs(t *testing.T, path string, v any) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if k == "datasource" {
				b, _ := json.Marshal(e)
				if !usesDatasourceVar(b) {
					t.Errorf("%s.datasource = %s: hard-coded; use ${datasource}", path, b)
				}
				continue
			}
			checkDatasourceRefs(t, path+"."+k, e)
		}
	case []any:
		for i, e := range v {
			checkDatasourceRefs(t, fmt.Sprintf("%s[%d]", path, i), e)
		}
	}
}

var (
	promString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	matchers   = regexp.MustCompile(`\{[^{}]*\}`)
	ranges     = regexp.MustCompile(`\[([^\]]*)\]`)
	labelList  = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	token      = regexp.MustCompile(`[0-9][0-9a-zA-Z_.]*|[a-zA-Z_:][a-zA-Z0-9_:]*`)
	grafanaVar = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]`)
	keywords   = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan", "atan2"}
)

// checkExpr checks a PromQL expression lexically: strings, matchers and
// label lists removed, every identifier not followed by "(" and not a
// keyword is a metric name and must be allowed; every range is
// [$__rate_interval], or [$__range] when instant; every Grafana variable
// is defined.
func checkExpr(expr string, instant bool, allowed map[string]bool, vars []string) []error {
	var errs []error
	if strings.TrimSpace(expr) == "" {
		return []error{fmt.Errorf("empty expression")}
	}
	for _, m := range grafanaVar.FindAllStringSubmatch(expr, -1) {
		name := m[1] + m[2] + m[3]
		if !slices.Contains(vars, name) && !slices.Contains(builtins, name) {
			errs = append(errs, fmt.Errorf("variable $%s is not defined", name))
		}
	}
	s := promString.ReplaceAllString(expr, `""`)
	s = matchers.ReplaceAllString(s, " ")
	for _, m := range ranges.FindAllStringSubmatch(s, -1) {
		switch {
		case m[1] == "$__rate_interval":
		case m[1] == "$__range" && instant:
		default:
			errs = append(errs, fmt.Errorf("range [%s]: want [$__rate_interval] (or [$__range] in an instant query)", m[1]))
		}
	}
	s = ranges.ReplaceAllString(s, " ")
	// "offset $__range" (the instant queries' range) is no series.
	if instant {
		s = strings.ReplaceAll(s, "offset $__range", " ")
	}
	s = labelList.ReplaceAllString(s, " ")
	if strings.ContainsAny(s, "{}[]") {
		errs = append(errs, fmt.Errorf("unbalanced braces or brackets"))
	}
	names := 0
	for _, loc := range token.FindAllStringIndex(s, -1) {
		w := s[loc[0]:loc[1]]
		if w[0] >= '0' && w[0] <= '9' || slices.Contains(keywords, strings.ToLower(w)) {
			continue
		}
		if rest := strings.TrimLeft(s[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			continue // a function or an aggregation
		}
		if isAggregation(w) {
			continue // sum by (...) (...)
		}
		names++
		if !allowed[w] {
			errs = append(errs, fmt.Errorf("%s is neither an exported series nor a recording rule of rules.yaml", w))
		}
	}
	if names == 0 && !strings.Contains(expr, "time()") {
		errs = append(errs, fmt.Errorf("selects no series"))
	}
	return errs
}

func isAggregation(w string) bool {
	return slices.Contains([]string{"sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group"}, w)
}

// TestRules checks rules.yaml without promtool: every expression selects
// exported series or earlier recording rules, recording rules follow
// level:metric:operations, alerts carry severity and a summary.
func TestRules(t *testing.T) {
	rules := loadRules(t)
	ok := allowedNames(t)
	for n := range ok {
		if strings.Contains(n, ":") {
			delete(ok, n) // added back in file order below
		}
	}
	var alerts []string
	for _, r := range rules {
		name := r.Record + r.Alert
		for _, err := range checkRuleExpr(r.Expr, ok) {
			t.Errorf("rule %s: %v", name, err)
		}
		if r.Record != "" {
			if strings.Count(r.Record, ":") != 2 || !strings.HasPrefix(r.Record, "caliop:") {
				t.Errorf("recording rule %s: want caliop:<what>:<operation>", r.Record)
			}
			ok[r.Record] = true
			continue
		}
		alerts = append(alerts, r.Alert)
		if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("alert %s: want a severity label, a summary and a description", r.Alert)
		}
	}
	for _, want := range []string{"CaliopPlaintextDelivery", "CaliopCertificateExpiresSoon", "CaliopTLSFailuresSpike", "CaliopMTASTSFetchErrors"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("rules.yaml has no alert %s", want)
		}
	}
	// The tests in rules_test.yaml cover every alert.
	b, err := os.ReadFile("rules_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		if !strings.Contains(string(b), "alertname: "+a+"\n") {
			t.Errorf("rules_test.yaml does not test %s", a)
		}
	}
}

// checkRuleExpr is checkExpr for rules: fixed ranges are fine there.
func checkRuleExpr(expr string, allowed map[string]bool) []error {
	return checkExpr(ranges.ReplaceAllLiteralString(expr, "[$__rate_interval]"), false, allowed, nil)
}

// requireTool returns the path of a command, skipping the test when it
// is missing unless CALIOP_E2E is set (CI must not skip silently).
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if e := os.Getenv("CALIOP_E2E"); e != "" && e != "0" {
		t.Fatalf("CALIOP_E2E is set but %s is not available (install the prometheus package)", name)
	}
	t.Skipf("%s not installed; set CALIOP_E2E=1 to require it", name)
	return ""
}

// TestPromtool runs promtool on rules.yaml and rules_test.yaml, and checks
// the syntax of every dashboard expression by giving them to promtool
// check rules as recording rules (template variables substituted).
func TestPromtool(t *testing.T) {
	promtool := requireTool(t, "promtool")
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("check", "rules", "rules.yaml")
	run("test", "rules", "rules_test.yaml")

	type rec struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var recs []rec
	for _, d := range loadDashboards(t) {
		for _, p := range flatten(d.Panels) {
			for _, tg := range p.Targets {
				recs = append(recs, rec{fmt.Sprintf("dashboard:%s_%d:%s", strings.TrimSuffix(d.file, ".json"), p.ID, tg.RefID), substitute(tg.Expr)})
			}
		}
		for _, v := range d.Templ.List {
			if v.Type == "query" {
				if m := regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`).FindStringSubmatch(v.query()); m != nil {
					recs = append(recs, rec{fmt.Sprintf("dashboard:%s_var:%s", strings.TrimSuffix(d.file, ".json"), v.Name), substitute(m[1])})
				}
			}
		}
	}
	for i := range recs {
		recs[i].Record = strings.ReplaceAll(recs[i].Record, "-", "_")
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboards", "rules": recs}}})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "dashboard-exprs.yaml")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	run("check", "rules", f)
}

// substitute replaces the Grafana variables by values a query would get.
func substitute(expr string) string {
	return strings.NewReplacer(
		"$__rate_interval", "1m", "$__range", "1h", "$__interval", "15s",
		"${datasource}", "prometheus", "$datasource", "prometheus",
		"$job", "caliop", "$instance", ".+", "$domain", ".+",
	).Replace(expr)
}
