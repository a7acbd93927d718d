package main

import (
	"fmt"

	"github.com/caliop/relay/config"
	"github.com/caliop/relay/server"
)

// runConfigCheck checks the configuration as serve would before it
// starts, but binds nothing and writes nothing (like postfix check or
// unbound-checkconf): the file loads and validates, the certificate and
// key files load, data_dir is usable, and no listen address is in use
// (probed by connecting, never by binding). Exit 0, or 2 with one line
// per problem.
func runConfigCheck(c cmdContext) int {
	cfg, err := c.load()
	if err != nil {
		fmt.Fprintln(c.stderr, "caliop:", err)
		return 2
	}
	problems := server.Preflight(cfg)
	for _, p := range problems {
		fmt.Fprintln(c.stderr, "caliop:", p)
	}
	if len(problems) > 0 {
		return 2
	}
	what := c.path
	if what == "" {
		what = "the embedded defaults"
	}
	fmt.Fprintf(c.stdout, "%s: OK\n", what)
	return 0
}

// runConfigShow prints the configuration in force as YAML: the file's
// values with every default filled in (postconf -n and -d in one), or
// with --defaults the embedded defaults alone.
func runConfigShow(c cmdContext) int {
	cfg := c.cfg
	if c.flags.defaults {
		var err error
		if cfg, err = config.Parse(nil); err != nil {
			fmt.Fprintln(c.stderr, "caliop:", err)
			return 2
		}
	}
	b, err := cfg.YAML()
	if err != nil {
		fmt.Fprintln(c.stderr, "caliop:", err)
		return 1
	}
	c.stdout.Write(b)
	return 0
}
