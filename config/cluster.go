package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"
)

// Cluster makes the replicas of a cluster share their state (MTA-STS
// cache, WKD keys and pins, TLS-RPT counts and send state, ACME
// certificates) through one Redis instead of each keeping its own file
// in data_dir.
type Cluster struct {
	// Redis is the shared store's URL: redis://[user:password@]host:port[/db]
	// or rediss:// for TLS. Empty keeps the embedded store.
	Redis string `yaml:"redis"`
	// Prefix starts every key, so that several clusters can share one
	// Redis.
	Prefix string `yaml:"prefix"`
	// Timeout bounds each store operation: a Redis that is down must fail
	// a lookup quickly, not hold deliveries.
	Timeout Duration `yaml:"timeout"`
}

// Enabled reports whether the state is shared through Redis.
func (c Cluster) Enabled() bool { return c.Redis != "" }

func clusterDefaults() Cluster {
	return Cluster{Prefix: "caliop", Timeout: Duration(time.Second)}
}

// finishCluster checks the cluster section.
func (c *Config) finishCluster() error {
	cl := &c.Cluster
	bad := func(key, format string, a ...any) error {
		return fmt.Errorf("%w: cluster.%s: %s", ErrInvalid, key, fmt.Sprintf(format, a...))
	}
	if cl.Redis != "" {
		if _, err := redis.ParseURL(cl.Redis); err != nil {
			// Not the URL itself: it may hold a password.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return bad("redis", "%v (write redis://host:6379/0 or rediss://host:6380/0)", err)
		}
	}
	if cl.Prefix == "" || strings.ContainsFunc(cl.Prefix, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return bad("prefix", "%q: must be a non-empty word without spaces", cl.Prefix)
	}
	if cl.Timeout <= 0 {
		return bad("timeout", "must be positive")
	}
	return nil
}
