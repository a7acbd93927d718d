package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// DialFunc opens a network connection, as net.Dialer.DialContext does.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Dialer returns a DialFunc that resolves the host of "host:port" through
// r (never the system resolver) and dials its addresses in turn with dial,
// IPv4 first, until one answers. An address literal is dialled as is.
// HTTPS fetches (MTA-STS policies, WKD keys) use it so that every name
// Caliop looks up goes to the configured servers.
func (r *Resolver) Dialer(dial DialFunc) DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if _, err := netip.ParseAddr(host); err == nil {
			return dial(ctx, network, addr)
		}
		addrs, _, err := r.LookupIP(ctx, host)
		if err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("%s: no address (A or AAAA)", host)
		}
		var errs []error
		for _, ip := range addrs {
			c, err := dial(ctx, network, net.JoinHostPort(ip.String(), port))
			if err == nil {
				return c, nil
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		return nil, fmt.Errorf("%s port %s: %w", host, strconv.Quote(port), errors.Join(errs...))
	}
}
