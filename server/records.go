package server

import (
	"crypto"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.uber.org/zap"

	"github.com/caliop/relay/certs"
	"github.com/caliop/relay/config"
	"github.com/caliop/relay/mtasts"
	"github.com/caliop/relay/store"
)

// Records prints, in zone-file syntax, the DNS records the operator
// publishes for the inbound side: MX, MTA-STS and TLS-RPT per domain, and
// the TLSA record of the current key.
func Records(cfg *config.Config, out io.Writer) error {
	in := cfg.Inbound
	if in.Listen == "" {
		return errors.New("inbound.listen is not set: no inbound side to publish")
	}
	policy := publishedPolicy(in)
	for _, d := range in.Domains {
		fmt.Fprintf(out, "; %s\n%s. MX 10 %s.\n", d, d, in.Hostname)
		for _, line := range mtasts.Records(d, policy, in.TLSRPT.RUA) {
			fmt.Fprintln(out, line)
		}
		fmt.Fprintln(out)
	}
	pub, note, err := currentKey(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "; DANE (RFC 7672) for %s, in a DNSSEC-signed zone\n", in.Hostname)
	if pub == nil {
		fmt.Fprintf(out, "; no certificate yet: %s\n", note)
		return nil
	}
	rec, err := certs.TLSA311(pub)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "_25._tcp.%s. TLSA %s\n", in.Hostname, rec)
	if note != "" {
		fmt.Fprintf(out, "; %s\n", strings.ReplaceAll(note, "\n", "\n; "))
	}
	return nil
}

// currentKey is the public key the inbound listener presents now, and a
// note for the operator.
func currentKey(cfg *config.Config) (crypto.PublicKey, string, error) {
	if cfg.Inbound.TLS.ACME == nil {
		f, err := certs.NewFiles(cfg.Inbound.TLS.Cert, cfg.Inbound.TLS.Key, zap.NewNop())
		if err != nil {
			return nil, "", fmt.Errorf("inbound.tls: %w", err)
		}
		c, err := f.Current()
		if err != nil {
			return nil, "", err
		}
		return c.Leaf.PublicKey, "keep this key when you renew the certificate, or publish the new key's record first", nil
	}
	var st store.Store
	if cfg.Cluster.Enabled() {
		var err error
		if st, err = openStore(cfg); err != nil {
			return nil, "", err
		}
		defer st.Close()
	}
	_, acme, err := certSource(cfg, st, zap.NewNop())
	if err != nil {
		return nil, "", err
	}
	pub, ok := acme.CachedKey(cfg.Inbound.Hostname)
	if !ok {
		return nil, "ACME has not issued one (start caliop serve, then run this again)", nil
	}
	return pub, "WARNING: ACME renewals reuse this key, but a lost cache or an expired certificate makes a new one\n" +
		"and breaks this record: publish the next key's record before such a change, and check after renewals", nil
}
