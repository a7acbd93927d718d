package relay

import (
	"crypto/tls"
	"net"

	"github.com/emersion/go-smtp"
)

type tlsCert = tls.Certificate

func tlsServerConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

func smtpClientTLS(conn net.Conn, cfg *tls.Config) (*smtp.Client, error) {
	c, err := smtp.NewClientStartTLS(conn, cfg)
	if err != nil {
		return nil, err
	}
	return c, c.Hello("mta.test")
}
