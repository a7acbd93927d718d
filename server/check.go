package server

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/caliop/relay/check"
	"github.com/caliop/relay/config"
	"github.com/caliop/relay/delivery"
	"github.com/caliop/relay/mtasts"
)

// Check diagnoses domain as the relay would deliver to it (sharing its
// MTA-STS cache in data_dir) and prints the report, as text or indented
// JSON. exit is the report's: 0 authenticated, 1 encrypted, 2 refused.
func Check(cfg *config.Config, domain string, jsonOut bool, stdout io.Writer) (exit int, err error) {
	res, err := newResolver(cfg)
	if err != nil {
		return 2, err
	}
	st, closeStore, err := openStoreToLook(cfg)
	if err != nil {
		return 2, err
	}
	defer closeStore()
	var dialer net.Dialer
	sts, err := newSTS(cfg, st, res, dialer.DialContext, nil, nil, zap.NewNop())
	if err != nil {
		return 2, err
	}
	connect := time.Duration(cfg.Outbound.ConnectTimeout)
	engine := newEngine(cfg, res, sts)
	if cfg.Learn.Mode != "off" {
		// The verdict under the learned policy, as the relay would plan.
		engine.Learned, engine.LearnEnforce = storeLearned{st, learnRules(cfg)}, cfg.Learn.Mode == "enforce"
	}
	c := &check.Checker{
		DNS:    res,
		Engine: engine,
		STS:    sts,
		Prober: &delivery.Deliverer{
			Hostname:       cfg.Hostname,
			DNS:            res,
			Dial:           dialer.DialContext,
			Port:           cfg.Outbound.MXPort,
			ConnectTimeout: connect,
		},
		Port: cfg.Outbound.MXPort,
	}
	// DNS and the policy fetch, then two rounds of probes (4 MX hosts
	// at a time), each bounded by the connect timeout.
	budget := mtasts.FetchTimeout + 8*time.Duration(cfg.DNS.Timeout) + 2*connect
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	r := c.Check(ctx, domain)
	addLearned(cfg, st, &r)
	if !jsonOut {
		r.WriteText(stdout)
		return r.ExitCode(), nil
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return 2, err
	}
	return r.ExitCode(), nil
}
