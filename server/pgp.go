package server

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/caliop/relay/config"
	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/pgpmime"
	"github.com/caliop/relay/pgppolicy"
	"github.com/caliop/relay/resolver"
	"github.com/caliop/relay/store"
	"github.com/caliop/relay/wkd"
	"github.com/caliop/relay/wkd/wkdcache"
)

// newPGP builds opportunistic PGP/MIME from the pgp section: WKD lookups
// through the configured DNS servers, the key cache on st (run its
// refresh with go cache.Run), and the policy. It returns nil when
// encryption is off everywhere.
func newPGP(cfg *config.Config, st store.Store, res *resolver.Resolver, dial resolver.DialFunc, m *metrics.Metrics, log *zap.Logger) (*pgppolicy.Policy, *wkdcache.Cache, error) {
	p := cfg.PGP
	dests := map[string]pgppolicy.Mode{}
	on := p.Mode != "off"
	for d, m := range p.Destinations {
		dests[d] = pgppolicy.Mode(m)
		on = on || m != "off"
	}
	if !on {
		return nil, nil, nil
	}
	signers, err := dkimKeys(p.DKIM)
	if err != nil {
		return nil, nil, err
	}
	client := &wkd.Client{DialContext: res.Dialer(dial), HasAddress: res.HasAddress}
	cache, err := wkdcache.Open(wkdcache.Config{
		WKD: client, Store: st, Log: log,
		KeyTTL: time.Duration(p.KeyTTL), NoKeyTTL: time.Duration(p.NoKeyTTL),
		AcceptKeyChange: p.AcceptKeyChange,
		Shared:          cfg.Cluster.Enabled(),
		Metrics:         m,
	})
	if err != nil {
		return nil, nil, err
	}
	return &pgppolicy.Policy{
		DKIM: signers,
		Keys: cache, Default: pgppolicy.Mode(p.Mode), Destinations: dests,
		Permanent: p.Required == "permanent", EncryptDKIMSigned: p.EncryptDKIMSigned,
		Options: pgpmime.Options{HideSubject: p.HideSubject, SkipLists: p.SkipLists},
	}, cache, nil
}

// dkimKeys loads the DKIM signing keys of the pgp section.
func dkimKeys(in map[string]config.DKIMKey) (map[string]pgppolicy.DKIMKey, error) {
	out := make(map[string]pgppolicy.DKIMKey, len(in))
	for d, k := range in {
		b, err := os.ReadFile(k.Key)
		if err != nil {
			return nil, fmt.Errorf("pgp.dkim.%s.key: %w", d, err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("pgp.dkim.%s.key: %s holds no PEM block", d, k.Key)
		}
		key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		}
		signer, ok := key.(crypto.Signer)
		if err != nil || !ok {
			return nil, fmt.Errorf("pgp.dkim.%s.key: %s is not an RSA or Ed25519 private key", d, k.Key)
		}
		out[d] = pgppolicy.DKIMKey{Selector: k.Selector, Signer: signer}
	}
	return out, nil
}
