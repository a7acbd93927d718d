package server

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/caliop/relay/config"
	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/mtasts"
	"github.com/caliop/relay/mtasts/stscache"
	"github.com/caliop/relay/resolver"
	"github.com/caliop/relay/store"
	"github.com/caliop/relay/tlsrpt"
)

// resolvConf lists the resolvers used when dns.servers lists none.
const resolvConf = "/etc/resolv.conf"

// dnsServers are the resolvers every lookup goes to: dns.servers, or
// those of resolvConf.
func dnsServers(cfg *config.Config) ([]string, error) {
	if len(cfg.DNS.Servers) > 0 {
		return cfg.DNS.Servers, nil
	}
	s, err := resolver.ServersFromResolvConf(resolvConf)
	if err != nil {
		return nil, fmt.Errorf("dns.servers: not set and %w", err)
	}
	return s, nil
}

func newResolver(cfg *config.Config) (*resolver.Resolver, error) {
	servers, err := dnsServers(cfg)
	if err != nil {
		return nil, err
	}
	res, err := resolver.New(resolver.Config{Servers: servers, TrustAD: cfg.DNS.TrustAD, Timeout: time.Duration(cfg.DNS.Timeout), CacheSize: cfg.DNS.CacheSize})
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	return res, nil
}

// newSTS opens the MTA-STS cache on st; policy hosts are resolved through
// the configured DNS servers.
func newSTS(cfg *config.Config, st store.Store, res *resolver.Resolver, dial resolver.DialFunc, report tlsrpt.Recorder, m *metrics.Metrics, log *zap.Logger) (*stscache.Cache, error) {
	return stscache.Open(stscache.Config{
		DNS:     res,
		Fetch:   &mtasts.Fetcher{DialContext: res.Dialer(dial)},
		Store:   st,
		Shared:  cfg.Cluster.Enabled(),
		Report:  report,
		Metrics: m,
		Log:     log,
	})
}

// ShowMTASTS looks domain up as the relay would (sharing its cache) and
// prints the result.
func ShowMTASTS(cfg *config.Config, domain string, out, errOut io.Writer) int {
	res, err := newResolver(cfg)
	if err != nil {
		fmt.Fprintln(errOut, "caliop:", err)
		return 2
	}
	st, closeStore, err := openStoreToLook(cfg)
	if err != nil {
		fmt.Fprintln(errOut, "caliop:", err)
		return 1
	}
	defer closeStore()
	var d net.Dialer
	sts, err := newSTS(cfg, st, res, d.DialContext, nil, nil, zap.NewNop())
	if err != nil {
		fmt.Fprintln(errOut, "caliop:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), mtasts.FetchTimeout+time.Duration(cfg.DNS.Timeout)*4)
	defer cancel()
	r := sts.Lookup(ctx, domain)
	mxs, _, mxErr := res.LookupMX(ctx, r.Domain)
	stscache.WriteReport(out, r, mxs, mxErr, time.Now())
	// A policy is published but could not be had: the operator must know.
	if r.StoreErr != nil || r.Record != "" && r.FetchErr != nil {
		fmt.Fprintf(errOut, "caliop: mta-sts: %s publishes a policy that could not be fetched: %v\n", r.Domain, cmp.Or(r.StoreErr, r.FetchErr))
		return 1
	}
	return 0
}
