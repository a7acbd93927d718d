package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caliop/relay/config"
	"github.com/caliop/relay/pgppolicy"
	"github.com/caliop/relay/wkd"
	"github.com/caliop/relay/wkd/wkdcache"
)

// ShowWKD looks address up in the Web Key Directory as the relay would
// and prints the lookup, the key chosen, what the cache holds and the
// decision for a message to it.
func ShowWKD(cfg *config.Config, address string, out io.Writer) error {
	res, err := newResolver(cfg)
	if err != nil {
		return err
	}
	var d net.Dialer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	local, domain, ok := strings.Cut(address, "@")
	if !ok {
		return fmt.Errorf("%q is not an address", address)
	}
	fmt.Fprintf(out, "address: %s\nhash:    %s\nurls:    %s\n         %s\n", address, wkd.Hash(local), wkd.AdvancedURL(local, domain), wkd.DirectURL(local, domain))
	client := &wkd.Client{DialContext: res.Dialer(d.DialContext), HasAddress: res.HasAddress}
	l, err := client.Lookup(ctx, address)
	fmt.Fprintf(out, "method:  %s\n", l.Method)
	switch {
	case err != nil:
		fmt.Fprintf(out, "lookup:  %v\n", err)
	default:
		fmt.Fprintf(out, "key:     %s\n", l.Fingerprint)
	}
	for _, r := range l.Rejected {
		fmt.Fprintf(out, "ignored: %s\n", r)
	}
	st, err := openStore(cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	pol, cache, err := newPGP(cfg, st, res, d.DialContext, nil, zap.NewNop())
	if err != nil {
		return err
	}
	if pol == nil {
		fmt.Fprintln(out, "policy:  off (pgp.mode and pgp.destinations)")
		return nil
	}
	mode := pol.ModeFor(address)
	fmt.Fprintf(out, "policy:  %s\n", mode)
	if c, ok := cache.Cached(address); ok {
		fmt.Fprintf(out, "cache:   %s %s until %s\n", c.State, c.Fingerprint, c.Expires.UTC().Format(time.RFC3339))
		if c.State == wkdcache.StateChanged {
			fmt.Fprintf(out, "         %v\n", c.Err)
		}
	}
	if mode == pgppolicy.Off {
		fmt.Fprintln(out, "decision: not encrypted (policy off)")
		return nil
	}
	key, refusal := pol.Decide(ctx, address)
	switch {
	case refusal != nil:
		fmt.Fprintf(out, "decision: refused at RCPT: %d %d.%d.%d %s\n", refusal.Code, refusal.EnhancedCode[0], refusal.EnhancedCode[1], refusal.EnhancedCode[2], refusal.Message)
	case key != nil:
		fmt.Fprintln(out, "decision: encrypted (PGP/MIME), unless the message is already encrypted, an Autocrypt setup, DKIM-signed or list mail by policy")
	default:
		fmt.Fprintln(out, "decision: not encrypted (no usable key)")
	}
	return nil
}
