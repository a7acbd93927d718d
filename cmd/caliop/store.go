package main

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/caliop/relay/config"
	"github.com/caliop/relay/store"
)

// openStore opens the store the configuration names: Redis in cluster
// mode (cluster.redis), else the embedded file in data_dir. `caliop
// serve` opens it once and keeps it across reloads; the other commands
// open it for their run.
func openStore(cfg *config.Config) (store.Store, error) {
	if c := cfg.Cluster; c.Enabled() {
		st, err := store.OpenRedis(store.RedisOptions{URL: c.Redis, Prefix: c.Prefix, Timeout: time.Duration(c.Timeout)})
		if err != nil {
			return nil, fmt.Errorf("cluster.redis: %w", err)
		}
		return st, nil
	}
	st, err := store.Open(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	return st, nil
}

// redisLog sends the Redis client's own messages (failed dials while
// Redis is down) to the log, as warnings, instead of standard error.
type redisLog struct{ log *zap.Logger }

func (r redisLog) Printf(_ context.Context, format string, v ...any) {
	r.log.Warn(fmt.Sprintf(format, v...))
}

// logRedis routes the Redis client's messages to log.
func logRedis(log *zap.Logger) { redis.SetLogger(redisLog{log.Named("redis")}) }
