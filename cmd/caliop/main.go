// Command caliop runs the Caliop relay. It only wires: flags, configuration,
// components, signals.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/caliop/relay/config"
	"github.com/caliop/relay/delivery"
	"github.com/caliop/relay/inbound"
	"github.com/caliop/relay/pgppolicy"
	"github.com/caliop/relay/relay"
	"github.com/caliop/relay/tlsrpt"
)

// version is stamped at build time: -ldflags "-X main.version=1.2.3".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  caliop serve [--config FILE]          run the relay (embedded defaults without --config)
  caliop mta-sts [--config FILE] DOMAIN show DOMAIN's MTA-STS record, policy and MX hosts
  caliop check [--config FILE] [--json] DOMAIN
                                        diagnose DOMAIN as Caliop would deliver to it:
                                        MX, DNSSEC, STARTTLS, certificates, TLSA, MTA-STS,
                                        TLS-RPT and the verdict; exit 0 authenticated,
                                        1 encrypted only, 2 refused
  caliop records [--config FILE]        print the DNS records to publish for the inbound side
                                        (MX, MTA-STS, TLS-RPT, TLSA)
  caliop wkd [--config FILE] ADDRESS    show ADDRESS's WKD lookup, key and encryption decision
  caliop version                        print the version

Exit status 2 also means a usage or configuration error, reported on
standard error ("caliop: ...").
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "version", "--version":
		fmt.Fprintln(stdout, "caliop", version)
		return 0
	case "serve", "mta-sts", "check", "records", "wkd":
		fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
		fs.SetOutput(stderr)
		path := fs.String("config", "", "configuration file (YAML)")
		jsonOut := false
		if args[0] == "check" {
			fs.BoolVar(&jsonOut, "json", false, "print the report as JSON")
		}
		pos, err := parseFlags(fs, args[1:])
		if err != nil {
			return 2
		}
		noArg := args[0] == "serve" || args[0] == "records"
		if noArg && len(pos) != 0 || !noArg && len(pos) != 1 {
			fmt.Fprint(stderr, usage)
			return 2
		}
		load := func() (*config.Config, error) { return config.Parse(nil) }
		if *path != "" {
			load = func() (*config.Config, error) { return config.Load(*path) }
		}
		cfg, err := load()
		if err != nil {
			fmt.Fprintln(stderr, "caliop:", err)
			return 2
		}
		switch args[0] {
		case "check":
			exit, err := runCheck(cfg, pos[0], jsonOut, stdout)
			if err != nil {
				fmt.Fprintln(stderr, "caliop:", err)
			}
			return exit
		case "mta-sts":
			err = showMTASTS(cfg, pos[0], stdout)
		case "records":
			err = showRecords(cfg, stdout)
		case "wkd":
			err = showWKD(cfg, pos[0], stdout)
		default:
			err = serve(cfg)
		}
		if err != nil {
			fmt.Fprintln(stderr, "caliop:", err)
			return 1
		}
		return 0
	}
	fmt.Fprint(stderr, usage)
	return 2
}

// serve builds the components and runs them until SIGTERM or SIGINT.
func serve(cfg *config.Config) error {
	log, err := newLogger(cfg.Log)
	if err != nil {
		return err
	}
	defer log.Sync()
	res, err := newResolver(cfg)
	if err != nil {
		return err
	}
	dialer := &net.Dialer{}
	report := &tlsrpt.Tally{} // read by TLS-RPT reports (to come)
	sts, err := newSTS(cfg, res, dialer.DialContext, report, log.Named("mta-sts"))
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go sts.Run(ctx, time.Minute)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "caliop_build_info", Help: "Always 1; the version label names the build.", ConstLabels: prometheus.Labels{"version": version}}, func() float64 { return 1 }))

	var tlsCfg *tls.Config
	if cfg.Outbound.TLS.Cert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.Outbound.TLS.Cert, cfg.Outbound.TLS.Key)
		if err != nil {
			return fmt.Errorf("outbound.tls: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	pool := &delivery.Pool{Idle: time.Duration(cfg.Outbound.Reuse.Idle), MaxMessages: cfg.Outbound.Reuse.MaxMessages}
	defer pool.Close()
	pgp, _, err := newPGP(ctx, cfg, res, dialer.DialContext, log.Named("wkd"))
	if err != nil {
		return err
	}
	engine := newEngine(cfg, res, sts)
	engine.Report = report
	srv := relay.New(relay.Options{
		Hostname:            cfg.Hostname,
		Trusted:             prefixes(cfg.Outbound.TrustedNetworks),
		Users:               cfg.Outbound.Auth.Users,
		TLS:                 tlsCfg,
		MaxMessageSize:      int64(cfg.Outbound.MaxMessageSize),
		MemoryBuffer:        int64(cfg.Outbound.MemoryBuffer),
		SpoolDir:            "",
		DeliveryTimeout:     time.Duration(cfg.Outbound.DeliveryTimeout),
		Parallel:            cfg.Outbound.Parallel,
		HonourTLSRequiredNo: cfg.Outbound.HonourTLSRequiredNo,
		PGP:                 encrypter(pgp),
		Planner:             engine,
		Deliverer: &delivery.Deliverer{
			Hostname:       cfg.Hostname,
			DNS:            res,
			Dial:           dialer.DialContext,
			Port:           cfg.Outbound.MXPort,
			ConnectTimeout: time.Duration(cfg.Outbound.ConnectTimeout),
			Pool:           pool,
			Log:            log.Named("delivery"),
			Metrics:        delivery.NewMetrics(reg),
			Report:         report,
		},
		Log: log.Named("relay"),
	})
	var services []service
	drain := onceShutdown(srv.Shutdown) // one drain for both listeners
	if cfg.Outbound.SMTP != "" {
		services = append(services, service{"outbound.smtp", cfg.Outbound.SMTP, srv.ServeSMTP, drain})
	}
	if cfg.Outbound.LMTP != "" {
		services = append(services, service{"outbound.lmtp", cfg.Outbound.LMTP, srv.ServeLMTP, drain})
	}
	in, err := inboundServices(ctx, cfg, &inbound.Stats{}, log)
	if err != nil {
		return err
	}
	services = append(services, in...)
	if cfg.Metrics.Listen != "" {
		services = append(services, httpService("metrics.listen", cfg.Metrics.Listen, metricsHandler(reg), nil, log))
	}
	log.Info("started", zap.String("hostname", cfg.Hostname), zap.Strings("dns", cfg.DNS.Servers))
	return runAll(services, time.Duration(cfg.Outbound.DeliveryTimeout)+5*time.Second, log)
}

// encrypter keeps a nil policy a nil interface.
func encrypter(p *pgppolicy.Policy) relay.Encrypter {
	if p == nil {
		return nil
	}
	return p
}
