package server

import (
	"crypto/tls"
	"time"

	"go.uber.org/zap"

	"github.com/caliop/relay/config"
	"github.com/caliop/relay/delivery"
	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/pgppolicy"
	"github.com/caliop/relay/policy"
	"github.com/caliop/relay/relay"
	"github.com/caliop/relay/tlsrpt"
)

// newRelay builds the outbound listeners' server; tlsCfg (see
// outboundTLS) offers STARTTLS; report takes the plans' TLS-RPT outcomes.
func newRelay(cfg *config.Config, tlsCfg *tls.Config, engine *policy.Engine, d *delivery.Deliverer, pgp *pgppolicy.Policy, report tlsrpt.Recorder, m *metrics.Metrics, log *zap.Logger) *relay.Server {
	return relay.New(relay.Options{
		Hostname: cfg.Hostname,
		Trusted:  prefixes(cfg.Outbound.TrustedNetworks),
		Users:    cfg.Outbound.Auth.Users,
		AuthLimits: relay.AuthLimits{
			PerAddress: cfg.Outbound.Auth.MaxFailuresPerIP,
			Window:     time.Duration(cfg.Outbound.Auth.FailureWindow),
		},
		ConnLimits: relay.ConnLimits{
			MaxConnections:  cfg.Outbound.Limits.MaxConnections,
			MaxPerTrustedIP: cfg.Outbound.Limits.MaxPerTrustedIP,
			MaxPerIP:        cfg.Outbound.Limits.MaxPerIP,
		},
		TLS:                 tlsCfg,
		MaxMessageSize:      int64(cfg.Outbound.MaxMessageSize),
		MaxLine:             cfg.Outbound.MaxLine,
		MemoryBuffer:        int64(cfg.Outbound.MemoryBuffer),
		DeliveryTimeout:     time.Duration(cfg.Outbound.DeliveryTimeout),
		Parallel:            cfg.Outbound.Parallel,
		HonourTLSRequiredNo: cfg.Outbound.HonourTLSRequiredNo,
		PGP:                 encrypter(pgp),
		Planner:             engine,
		Deliverer:           d,
		Metrics:             m,
		Report:              report,
		Log:                 log,
	})
}

// encrypter keeps a nil policy a nil interface.
func encrypter(p *pgppolicy.Policy) relay.Encrypter {
	if p == nil {
		return nil
	}
	return p
}
