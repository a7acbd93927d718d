package policy

import (
	"crypto/tls"
	"testing"

	"github.com/caliop/relay/dane"
)

func TestLevelsAreOrdered(t *testing.T) {
	if !(None < Encrypt && Encrypt < Verify) {
		t.Fatal("levels must be ordered none < encrypt < verify")
	}
	for _, s := range []string{"none", "encrypt", "verify"} {
		l, err := ParseLevel(s)
		if err != nil || l.String() != s {
			t.Errorf("ParseLevel(%q) = %v, %v", s, l, err)
		}
	}
	if _, err := ParseLevel("plaintext"); err == nil {
		t.Error("unknown level accepted")
	}
	if got := (Requirement{Level: Verify, MinTLS: tls.VersionTLS13}).String(); got != "verify,tls>=1.3" {
		t.Errorf("String() = %q", got)
	}
}

// TestKeyNames: requirements differing only in their reference
// identifiers share a key under DANE-EE, which ignores names, and not
// under DANE-TA, which checks them.
func TestKeyNames(t *testing.T) {
	t.Parallel()
	digest := make([]byte, 32)
	req := func(usage uint8, names ...string) Requirement {
		set := dane.RRSet{Name: "_25._tcp.mx.provider.example", Secure: true,
			Records: []dane.TLSA{{Usage: usage, Selector: dane.SelectorSPKI, MatchingType: dane.MatchSHA256, Data: digest}}}
		return Requirement{Level: Encrypt, MinTLS: tls.VersionTLS12, DANE: &DANE{Set: set, Names: names}}
	}
	a, b := []string{"mx.provider.example", "a.example"}, []string{"mx.provider.example", "b.example"}
	if ka, kb := req(dane.UsageDANEEE, a...).Key(), req(dane.UsageDANEEE, b...).Key(); ka != kb {
		t.Errorf("DANE-EE: keys differ by names:\n%s\n%s", ka, kb)
	}
	if ka, kb := req(dane.UsageDANETA, a...).Key(), req(dane.UsageDANETA, b...).Key(); ka == kb {
		t.Errorf("DANE-TA: one key for different names: %s", ka)
	}
	if req(dane.UsageDANEEE, a...).Key() == req(dane.UsageDANETA, a...).Key() {
		t.Error("DANE-EE and DANE-TA records share a key")
	}
}
