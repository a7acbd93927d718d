package config

import (
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/net/idna"
)

// PGP configures opportunistic PGP/MIME encryption to keys found through
// WKD.
type PGP struct {
	// Mode is the default for every destination: off, opportunistic or
	// required.
	Mode string `yaml:"mode"`
	// Destinations override Mode per destination domain or recipient
	// address.
	Destinations map[string]string `yaml:"destinations"`
	// Required says how a recipient without a usable key is refused
	// under mode required: temporary (4xx) or permanent (5xx).
	Required    string `yaml:"required"`
	HideSubject bool   `yaml:"hide_subject"`
	// SkipLists leaves mailing-list mail (List-Id) alone.
	SkipLists bool `yaml:"skip_lists"`
	// EncryptDKIMSigned encrypts DKIM-signed mail even though it breaks
	// the signature.
	EncryptDKIMSigned bool `yaml:"encrypt_dkim_signed"`
	// AcceptKeyChange uses a new WKD key that replaced a pinned one
	// still valid.
	AcceptKeyChange bool `yaml:"accept_key_change"`
	// DKIM signs encrypted mail again, per From domain.
	DKIM     map[string]DKIMKey `yaml:"dkim"`
	KeyTTL   Duration           `yaml:"key_ttl"`
	NoKeyTTL Duration           `yaml:"no_key_ttl"`
}

// DKIMKey is a DKIM selector and its private key file (PEM: RSA or
// Ed25519, PKCS #8 or PKCS #1).
type DKIMKey struct {
	Selector string `yaml:"selector"`
	Key      string `yaml:"key"`
}

func pgpDefaults() PGP {
	return PGP{Mode: "opportunistic", Required: "temporary", SkipLists: true,
		KeyTTL: Duration(24 * time.Hour), NoKeyTTL: Duration(6 * time.Hour)}
}

func validPGPMode(m string) bool { return m == "off" || m == "opportunistic" || m == "required" }

// finishPGP checks the pgp section.
func (c *Config) finishPGP() error {
	p := &c.PGP
	bad := func(key, format string, a ...any) error {
		return fmt.Errorf("%w: pgp.%s: %s", ErrInvalid, key, fmt.Sprintf(format, a...))
	}
	if !validPGPMode(p.Mode) {
		return bad("mode", "%q: off, opportunistic or required", p.Mode)
	}
	if p.Required != "temporary" && p.Required != "permanent" {
		return bad("required", "%q: temporary or permanent", p.Required)
	}
	if p.KeyTTL <= 0 || p.NoKeyTTL <= 0 {
		return bad("key_ttl", "key_ttl and no_key_ttl must be positive")
	}
	out := make(map[string]string, len(p.Destinations))
	for dest, mode := range p.Destinations {
		key := "destinations." + dest
		if !validPGPMode(mode) {
			return bad(key, "%q: off, opportunistic or required", mode)
		}
		local, domain, isAddr := strings.Cut(dest, "@")
		if !isAddr {
			domain, local = dest, ""
		}
		a, err := idna.Lookup.ToASCII(strings.TrimSuffix(domain, "."))
		if err != nil || !isHostname(a) || isAddr && local == "" {
			return bad(key, "not a domain or an address")
		}
		if isAddr {
			a = local + "@" + a
		}
		out[strings.ToLower(a)] = mode
	}
	p.Destinations = out
	dk := make(map[string]DKIMKey, len(p.DKIM))
	for d, k := range p.DKIM {
		a, err := idna.Lookup.ToASCII(strings.TrimSuffix(d, "."))
		if err != nil || !isHostname(a) {
			return bad("dkim."+d, "not a domain")
		}
		if k.Selector == "" || k.Key == "" {
			return bad("dkim."+d, "selector and key are required")
		}
		if _, err := os.Stat(k.Key); err != nil {
			return bad("dkim."+d+".key", "%v", err)
		}
		dk[strings.ToLower(a)] = k
	}
	p.DKIM = dk
	return nil
}
