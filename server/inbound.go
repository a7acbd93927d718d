package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/acme/autocert"

	"github.com/caliop/relay/certs"
	"github.com/caliop/relay/config"
	"github.com/caliop/relay/inbound"
	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/mtasts"
	"github.com/caliop/relay/store"
)

// certSource builds where inbound certificates come from: files, or ACME
// for the inbound hostname and mta-sts.<domain> of each domain. acme is
// nil for files.
func certSource(cfg *config.Config, st store.Store, log *zap.Logger) (src certs.Source, acme *certs.ACME, err error) {
	in := cfg.Inbound
	if in.TLS.ACME == nil {
		f, err := certs.NewFiles(in.TLS.Cert, in.TLS.Key, log)
		if err != nil {
			return nil, nil, fmt.Errorf("inbound.tls: %w", err)
		}
		return f, nil, nil
	}
	a := in.TLS.ACME
	client := http.DefaultClient
	if a.DirectoryCA != "" {
		pem, err := os.ReadFile(a.DirectoryCA)
		if err != nil {
			return nil, nil, fmt.Errorf("inbound.tls.acme.directory_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("inbound.tls.acme.directory_ca: %s holds no PEM certificate", a.DirectoryCA)
		}
		client = &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	}
	hosts := []string{in.Hostname}
	for _, d := range in.Domains {
		hosts = append(hosts, "mta-sts."+d)
	}
	acme, err = certs.NewACME(certs.ACMEConfig{
		Email: a.Email, Directory: a.Directory, Hosts: hosts, DefaultHost: in.Hostname,
		CacheDir: filepath.Join(cfg.DataDir, "acme"), Cache: acmeCache(cfg, st), HTTPClient: client, Log: log,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("inbound.tls.acme: %w", err)
	}
	return acme, acme, nil
}

// acmeCache is the ACME cache shared by the replicas in cluster mode, nil
// (the directory data_dir/acme) otherwise.
func acmeCache(cfg *config.Config, st store.Store) autocert.Cache {
	if !cfg.Cluster.Enabled() {
		return nil
	}
	return &certs.SharedCache{Store: st}
}

// publishedPolicy is the MTA-STS policy served for every inbound domain.
func publishedPolicy(in config.Inbound) *mtasts.Policy {
	return &mtasts.Policy{Mode: mtasts.Mode(in.MTASTS.Mode), MX: in.MTASTS.MX, MaxAge: time.Duration(in.MTASTS.MaxAge)}
}

// inboundServices builds the port-25 listener, the HTTPS policy host
// (which also answers TLS-ALPN-01) and, for HTTP-01, the HTTP listener,
// with certificates from src (acme when they come from ACME, see
// certSource), and the background jobs that go with them.
func inboundServices(cfg *config.Config, src certs.Source, acme *certs.ACME, st store.Store, m *metrics.Metrics, log *zap.Logger) ([]service, []func(context.Context)) {
	in := cfg.Inbound
	requireAll := in.RequireTLS == "all"
	source, _ := netip.ParseAddr(in.NextHopSource) // checked by config
	if !in.NextHopXCLIENT {
		log.Warn("inbound.next_hop_xclient is false: the next hop sees every client as Caliop and must not relay for Caliop's address",
			zap.String("next_hop", in.NextHop), zap.String("source", in.NextHopSource))
	}
	srv := inbound.New(inbound.Options{
		Hostname: in.Hostname, Domains: in.Domains, NextHop: in.NextHop,
		NextHopSource: source, AllowNoXCLIENT: !in.NextHopXCLIENT,
		NextHopTimeout: time.Duration(in.NextHopTimeout),
		TLS:            certs.STARTTLSConfig(src),
		RequireTLSFrom: in.RequireTLSFrom, RequireTLSAll: requireAll,
		MaxMessageSize: int64(in.MaxMessageSize), MemoryBuffer: int64(cfg.Outbound.MemoryBuffer),
		Limits: inbound.Limits{
			MaxConnections: in.Limits.MaxConnections, MaxPerIP: in.Limits.MaxPerIP, MaxLine: in.Limits.MaxLine,
			MaxErrors: in.Limits.MaxErrors, CommandTimeout: time.Duration(in.Limits.CommandTimeout), MinDataRate: int64(in.Limits.MinDataRate),
		},
		Stats:   &inbound.Stats{},
		Metrics: m,
		Log:     log.Named("inbound"),
	})
	services := []service{{key: "inbound.listen", addr: in.Listen, serve: srv.Serve, shutdown: srv.Shutdown, sessions: srv.Sessions}}
	var jobs []func(context.Context)
	// The policy host also takes TLS-RPT reports about the inbound
	// domains (POST /tlsrpt).
	policy := tlsrptReceiver(cfg, st, receivedMetrics{m}).Wrap(mtasts.Handler(in.Domains, publishedPolicy(in)))
	if w, ok := src.(interface{ Expiry() map[string]time.Time }); ok {
		jobs = append(jobs, func(context.Context) { m.WatchCertificates(w.Expiry) })
	}
	if in.HTTPSListen != "" {
		httpsCfg := certs.STARTTLSConfig(src)
		if acme != nil {
			httpsCfg = acme.TLSConfig()
		}
		services = append(services, httpService("inbound.https_listen", in.HTTPSListen, policy, httpsCfg, log))
	}
	if acme != nil && cfg.Inbound.TLS.ACME.Challenge == "http-01" {
		services = append(services, httpService("inbound.tls.acme.http_listen", cfg.Inbound.TLS.ACME.HTTPListen, acme.HTTPHandler(http.NotFoundHandler()), nil, log))
	}
	if acme != nil {
		hosts := []string{in.Hostname}
		for _, d := range in.Domains {
			hosts = append(hosts, "mta-sts."+d)
		}
		jobs = append(jobs, func(ctx context.Context) {
			// After the listeners are up: TLS-ALPN-01 needs them.
			select {
			case <-time.After(time.Second):
				warmCertificates(ctx, acme, hosts, log.Named("certs"))
			case <-ctx.Done():
			}
		})
	}
	return services, jobs
}

// warmCertificates asks for every ACME certificate once at start, so the
// first sender does not wait for the CA.
func warmCertificates(ctx context.Context, acme *certs.ACME, hosts []string, log *zap.Logger) {
	for _, h := range hosts {
		if ctx.Err() != nil {
			return
		}
		// An ECDSA-capable hello, so that autocert picks ECDSA P-256.
		hello := &tls.ClientHelloInfo{
			ServerName:        h,
			SupportedCurves:   []tls.CurveID{tls.CurveP256},
			SignatureSchemes:  []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
			CipherSuites:      []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
			SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12},
		}
		if _, err := acme.GetCertificate(hello); err != nil {
			log.Warn("certificate not obtained yet", zap.String("host", h), zap.Error(err))
		}
	}
}
