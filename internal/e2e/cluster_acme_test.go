package e2e

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/caliop/relay/internal/testworld/dnstest"
	"github.com/caliop/relay/internal/testworld/redistest"
)

// TestClusterACMEOnce: two replicas on one Redis, both asking pebble for
// the same certificates at start, serve the same certificate: one ordered
// it, the other waited for it in the shared cache. The HTTP-01 challenge
// is validated at replica A's address whichever replica ordered: the
// token goes through Redis.
func TestClusterACMEOnce(t *testing.T) {
	bin := requireComponents(t, "pebble", "redis-server")
	caliop := buildCaliop(t)
	const (
		ipA, ipB = "127.0.7.1", "127.0.7.2"
		mxHost   = "mx.acme-cluster.test"
		domain   = "acme-cluster.test"
		stsHost  = "mta-sts." + domain
	)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	redisAddr, _ := redistest.StartIn(t, t.TempDir())
	dns := dnstest.Start(t)
	dns.Add(mxHost+". 60 IN A "+ipA, stsHost+". 60 IN A "+ipA)

	// Pebble validates HTTP-01 on one port of the address DNS gives: A's.
	httpPort := port(t, freeAddrOn(t, ipA))
	peb := acmeStartPebble(t, ctx, bin["pebble"], dns.Addr, port(t, freeAddr(t)), httpPort)
	root := acmePebbleRoot(t, ctx, peb)
	directoryCA := filepath.Join(t.TempDir(), "pebble-https.pem")
	write(t, directoryCA, pebbleServerCert(t, peb))

	replica := func(ip string) (inAddr, httpsAddr string) {
		inAddr, httpsAddr = freeAddrOn(t, ip), freeAddrOn(t, ip)
		startInbound(t, caliop, Config{
			Hostname: "relay.acme-cluster.test",
			DNS:      dns.Addr,
			MXPort:   25,
			Redis:    redisAddr,
			Inbound: Inbound{
				Listen: inAddr, Hostname: mxHost, Domains: []string{domain},
				NextHop: freeAddr(t), HTTPSListen: httpsAddr,
				ACME: &InboundACME{
					Directory: peb.directory, Challenge: "http-01", DirectoryCA: directoryCA,
					HTTPListen: net.JoinHostPort(ip, strconv.Itoa(httpPort)),
				},
			},
		})
		return inAddr, httpsAddr
	}
	inA, httpsA := replica(ipA)
	inB, httpsB := replica(ipB)

	leafA := pollSTARTTLSCert(t, ctx, inA, mxHost, mxHost, root)
	leafB := pollSTARTTLSCert(t, ctx, inB, mxHost, mxHost, root)
	if !leafA.Equal(leafB) {
		t.Errorf("%s: replica A serves serial %s, B serial %s: ordered twice", mxHost, leafA.SerialNumber, leafB.SerialNumber)
	}
	stsA, _ := pollPolicy(t, ctx, httpsA, stsHost, root)
	stsB, _ := pollPolicy(t, ctx, httpsB, stsHost, root)
	if !stsA.Equal(stsB) {
		t.Errorf("%s: replica A serves serial %s, B serial %s: ordered twice", stsHost, stsA.SerialNumber, stsB.SerialNumber)
	}
}
