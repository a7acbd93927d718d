package delivery

import (
	"crypto/tls"
	"time"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"

	"github.com/caliop/relay/internal/tlsname"
	"github.com/caliop/relay/policy"
)

// logAttempt writes the one line per delivery attempt: domain, MX,
// address, TLS version and cipher, level required and proved, the reply
// and the duration. Never the body.
func (d *Deliverer) logAttempt(req Request, mx policy.MX, addr string, c *client, r *smtp.SMTPError, t0 time.Time, reused bool) {
	fields := make([]zap.Field, 0, 13) // all of them: no growth
	fields = append(fields,
		zap.String("domain", req.Plan.Domain),
		zap.String("mx", mx.Host),
		zap.String("addr", addr),
		zap.String("policy", string(req.Plan.Source)),
		zap.String("required", mx.Require.String()),
		zap.Int("rcpts", len(req.To)),
		zap.Bool("reused", reused),
		zap.Duration("duration", d.now().Sub(t0)),
	)
	if c != nil {
		tlsv, cipher := "none", "none"
		if c.tls != nil {
			tlsv, cipher = tls.VersionName(c.tls.Version), tlsname.Cipher(c.tls.CipherSuite)
		}
		fields = append(fields, zap.String("tls", tlsv), zap.String("cipher", cipher), zap.String("proved", c.proved.String()))
	}
	if r != nil {
		fields = append(fields, zap.Int("code", r.Code), zap.String("reply", r.Message))
	}
	d.log().Info("delivery attempt", fields...)
}
