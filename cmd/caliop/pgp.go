package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/caliop/relay/config"
	"github.com/caliop/relay/pgpmime"
	"github.com/caliop/relay/pgppolicy"
	"github.com/caliop/relay/resolver"
	"github.com/caliop/relay/store"
	"github.com/caliop/relay/wkd"
	"github.com/caliop/relay/wkdcache"
)

// newPGP builds opportunistic PGP/MIME from the pgp section: WKD lookups
// through the configured DNS servers, the key cache in data_dir, and the
// policy. It returns nil when encryption is off everywhere.
func newPGP(ctx context.Context, cfg *config.Config, res *resolver.Resolver, dial resolver.DialFunc, log *zap.Logger) (*pgppolicy.Policy, *wkdcache.Cache, error) {
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
	st, err := store.Open(cfg.DataDir)
	if err != nil {
		return nil, nil, fmt.Errorf("data_dir: %w", err)
	}
	client := &wkd.Client{DialContext: res.Dialer(dial), HasAddress: hasAddress(res)}
	cache, err := wkdcache.Open(wkdcache.Config{
		WKD: client, Store: st, Log: log,
		KeyTTL: time.Duration(p.KeyTTL), NoKeyTTL: time.Duration(p.NoKeyTTL),
		AcceptKeyChange: p.AcceptKeyChange,
	})
	if err != nil {
		return nil, nil, err
	}
	go cache.Run(ctx, 10*time.Minute)
	return &pgppolicy.Policy{
		Keys: cache, Default: pgppolicy.Mode(p.Mode), Destinations: dests,
		Permanent: p.Required == "permanent", EncryptDKIMSigned: p.EncryptDKIMSigned,
		Options: pgpmime.Options{HideSubject: p.HideSubject, SkipLists: p.SkipLists},
	}, cache, nil
}

// hasAddress tells WKD whether a host has an address: NXDOMAIN and
// NODATA are "no", a failed lookup is an error (draft §3.1: only a host
// without address sends the lookup to the direct method).
func hasAddress(res *resolver.Resolver) func(ctx context.Context, host string) (bool, error) {
	return func(ctx context.Context, host string) (bool, error) {
		addrs, _, err := res.LookupIP(ctx, host)
		if errors.Is(err, resolver.ErrNXDomain) {
			return false, nil
		}
		return len(addrs) > 0, err
	}
}
