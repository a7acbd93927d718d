package mtasts

import (
	"io"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caliop/relay/internal/testworld/testpki"
)

func testPolicy() *Policy {
	return &Policy{Mode: ModeEnforce, MX: []string{"mx1.example.test", "*.example.net"}, MaxAge: 7 * 24 * time.Hour}
}

func TestMarshalRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    Policy
		want string
	}{
		{"enforce", Policy{Mode: ModeEnforce, MX: []string{"mx1.example.test", "*.example.net"}, MaxAge: 604800 * time.Second},
			"version: STSv1\r\nmode: enforce\r\nmx: mx1.example.test\r\nmx: *.example.net\r\nmax_age: 604800\r\n"},
		{"testing", Policy{Mode: ModeTesting, MX: []string{"mx.example.test"}, MaxAge: 86400 * time.Second},
			"version: STSv1\r\nmode: testing\r\nmx: mx.example.test\r\nmax_age: 86400\r\n"},
		{"none without mx", Policy{Mode: ModeNone, MaxAge: time.Second},
			"version: STSv1\r\nmode: none\r\nmax_age: 1\r\n"},
		{"none with mx", Policy{Mode: ModeNone, MX: []string{"mx.example.test"}, MaxAge: MaxMaxAge},
			"version: STSv1\r\nmode: none\r\nmx: mx.example.test\r\nmax_age: 31557600\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			text := tt.p.Marshal()
			if text != tt.want {
				t.Fatalf("Marshal = %q, want %q", text, tt.want)
			}
			got, err := ParsePolicy([]byte(text))
			if err != nil {
				t.Fatalf("ParsePolicy(Marshal()): %v", err)
			}
			if got.Mode != tt.p.Mode || !slices.Equal(got.MX, tt.p.MX) || got.MaxAge != tt.p.MaxAge {
				t.Fatalf("round trip gave %+v, want %+v", got, tt.p)
			}
			if again := got.Marshal(); again != text {
				t.Fatalf("Marshal after round trip = %q, want %q", again, text)
			}
		})
	}
}

var idSyntax = regexp.MustCompile(`^[A-Za-z0-9]{1,32}$`)

func TestPolicyID(t *testing.T) {
	t.Parallel()
	base := testPolicy()
	id := base.ID()
	if !idSyntax.MatchString(id) {
		t.Fatalf("ID %q is not 1 to 32 letters and digits (RFC 8461 §3.1)", id)
	}
	if _, err := ParseRecord("v=STSv1; id=" + id); err != nil {
		t.Fatalf("the record with ID %q does not parse: %v", id, err)
	}
	if again := testPolicy().ID(); again != id {
		t.Errorf("ID of an equal policy = %q, want %q", again, id)
	}
	if again := base.ID(); again != id {
		t.Errorf("second ID() = %q, want %q", again, id)
	}
	// Text is not served, so it does not count.
	withText := testPolicy()
	withText.Text = "something else"
	if withText.ID() != id {
		t.Errorf("ID changed with Text, which is not served")
	}
	changes := map[string]func(*Policy){
		"mode testing": func(p *Policy) { p.Mode = ModeTesting },
		"mode none":    func(p *Policy) { p.Mode = ModeNone },
		"mx added":     func(p *Policy) { p.MX = append(p.MX, "mx2.example.test") },
		"mx removed":   func(p *Policy) { p.MX = p.MX[:1] },
		"mx renamed":   func(p *Policy) { p.MX[0] = "mx9.example.test" },
		"mx reordered": func(p *Policy) { slices.Reverse(p.MX) },
		"max_age":      func(p *Policy) { p.MaxAge = 86400 * time.Second },
	}
	seen := map[string]string{id: "base"}
	for name, change := range changes {
		p := testPolicy()
		change(p)
		got := p.ID()
		if !idSyntax.MatchString(got) {
			t.Errorf("%s: ID %q is not 1 to 32 letters and digits", name, got)
		}
		if prev, dup := seen[got]; dup {
			t.Errorf("%s: ID %q equals that of %s", name, got, prev)
		}
		seen[got] = name
	}
}

func TestHandler(t *testing.T) {
	t.Parallel()
	p := testPolicy()
	h := Handler([]string{"example.test", "Other.Example."}, p)
	tests := []struct {
		name, method, url, host string
		status                  int
		body                    string
	}{
		{"policy", "GET", "/.well-known/mta-sts.txt", "mta-sts.example.test", 200, p.Marshal()},
		{"second domain, mixed case, port, trailing dot", "GET", "/.well-known/mta-sts.txt", "MTA-STS.other.example.:443", 200, p.Marshal()},
		{"query ignored", "GET", "/.well-known/mta-sts.txt?x=1", "mta-sts.example.test", 200, p.Marshal()},
		{"HEAD", "HEAD", "/.well-known/mta-sts.txt", "mta-sts.example.test", 200, ""},
		{"domain itself", "GET", "/.well-known/mta-sts.txt", "example.test", 404, ""},
		{"unknown domain", "GET", "/.well-known/mta-sts.txt", "mta-sts.evil.test", 404, ""},
		{"subdomain of policy host", "GET", "/.well-known/mta-sts.txt", "x.mta-sts.example.test", 404, ""},
		{"wrong path", "GET", "/.well-known/mta-sts.txt/", "mta-sts.example.test", 404, ""},
		{"root", "GET", "/", "mta-sts.example.test", 404, ""},
		{"POST", "POST", "/.well-known/mta-sts.txt", "mta-sts.example.test", 405, ""},
		{"PUT", "PUT", "/.well-known/mta-sts.txt", "mta-sts.example.test", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(tt.method, "https://"+tt.host+tt.url, nil)
			req.Host = tt.host
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			resp := rec.Result()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tt.status, body)
			}
			switch tt.status {
			case 200:
				if ct := resp.Header.Get("Content-Type"); ct != "text/plain" {
					t.Errorf("Content-Type %q, want text/plain", ct)
				}
				if cl := resp.Header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(p.Marshal())) {
					t.Errorf("Content-Length %s, want %d", cl, len(p.Marshal()))
				}
				if !strings.HasPrefix(resp.Header.Get("Cache-Control"), "max-age=") {
					t.Errorf("Cache-Control %q, want a max-age", resp.Header.Get("Cache-Control"))
				}
				if string(body) != tt.body {
					t.Errorf("body %q, want %q", body, tt.body)
				}
			case 405:
				if allow := resp.Header.Get("Allow"); allow != "GET, HEAD" {
					t.Errorf("Allow %q, want GET, HEAD", allow)
				}
			}
		})
	}
}

// TestHandlerFetch: Caliop's own Fetcher accepts what the handler serves
// over HTTPS.
func TestHandlerFetch(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	p := testPolicy()
	h := Handler([]string{"example.test"}, p)
	s := newPolicyServer(t, ca.Leaf(t, testpki.LeafOptions{Names: []string{"mta-sts.example.test"}}), h.ServeHTTP)
	got, err := s.fetcher(ca.Pool).Fetch(t.Context(), "example.test")
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if got.Mode != p.Mode || !slices.Equal(got.MX, p.MX) || got.MaxAge != p.MaxAge || got.Text != strings.ReplaceAll(p.Marshal(), "\r\n", "\n") {
		t.Fatalf("fetched %+v, want %+v", got, p)
	}
}

func TestRecords(t *testing.T) {
	t.Parallel()
	p := testPolicy()
	id := p.ID()
	got := Records("Example.Test.", p, []string{"mailto:tlsrpt@example.test", "https://report.example.test/v1,a!b;c"})
	want := []string{
		`_mta-sts.example.test. TXT "v=STSv1; id=` + id + `"`,
		`_smtp._tls.example.test. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.test,https://report.example.test/v1%2Ca%21b%3Bc"`,
	}
	if len(got) != 3 || !slices.Equal(got[:2], want) {
		t.Fatalf("Records =\n%s\nwant first\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.HasPrefix(got[2], "; mta-sts.example.test. ") {
		t.Errorf("third line %q, want a comment about mta-sts.example.test.", got[2])
	}
	// The published record parses, and its id is the served policy's.
	txt := strings.TrimSuffix(strings.TrimPrefix(got[0], `_mta-sts.example.test. TXT "`), `"`)
	if rec, err := ParseRecord(txt); err != nil || rec.ID != id {
		t.Errorf("ParseRecord(%q) = %+v, %v; want id %s", txt, rec, err, id)
	}

	noRUA := Records("example.test", p, nil)
	if len(noRUA) != 2 || noRUA[0] != want[0] || !strings.HasPrefix(noRUA[1], ";") {
		t.Errorf("Records without rua = %q, want the STS record and the comment", noRUA)
	}

	long := Records("example.test", p, []string{"mailto:" + strings.Repeat("a", 300) + "@example.test"})[1]
	if !strings.Contains(long, `" "`) {
		t.Errorf("a TLS-RPT record over 255 octets is not split into strings: %s", long)
	}
	for _, s := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(long, -1) {
		if len(s[1]) > 255 {
			t.Errorf("a TXT string of %d octets, want at most 255", len(s[1]))
		}
	}
}
