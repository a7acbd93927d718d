package certs_test

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/caliop/relay/certs"
	"github.com/caliop/relay/mtasts"
)

// Wiring ACME certificates for STARTTLS and the MTA-STS policy host, as
// cmd/caliop does. (Not run: it needs a CA that can reach this host.)
func ExampleNewACME() {
	log := zap.NewNop()
	domains := []string{"example.com"}
	a, err := certs.NewACME(certs.ACMEConfig{
		Email:       "postmaster@example.com",
		Directory:   "https://acme-v02.api.letsencrypt.org/directory",
		Hosts:       []string{"mx.example.com", "mta-sts.example.com"},
		DefaultHost: "mx.example.com",
		CacheDir:    filepath.Join("/var/lib/caliop", "acme"),
		Log:         log,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// Port 443: the policy, and the CA's TLS-ALPN-01 validations.
	policy := &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"mx.example.com"}, MaxAge: 7 * 24 * time.Hour}
	https := &http.Server{Handler: mtasts.Handler(domains, policy), TLSConfig: a.TLSConfig()}
	ln, err := net.Listen("tcp", ":443")
	if err != nil {
		fmt.Println(err)
		return
	}
	go https.ServeTLS(ln, "", "")

	// Port 25: the SMTP server upgrades with this configuration.
	_ = certs.STARTTLSConfig(a)

	// caliop records: the TLSA record of the current key.
	if pub, ok := a.CachedKey("mx.example.com"); ok {
		rdata, _ := certs.TLSA311(pub)
		fmt.Println("_25._tcp.mx.example.com. TLSA", rdata)
	}
}
