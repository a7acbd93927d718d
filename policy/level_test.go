package policy

import (
	"crypto/tls"
	"testing"
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
