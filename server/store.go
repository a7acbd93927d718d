package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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

// openStoreToLook opens the store for commands that only look (check,
// mta-sts): the configured one when it exists, else a throwaway one in a
// temporary directory, so that they never create data_dir. close
// releases it.
func openStoreToLook(cfg *config.Config) (st store.Store, close func(), err error) {
	tmpDir := ""
	if !cfg.Cluster.Enabled() {
		if _, statErr := os.Stat(filepath.Join(cfg.DataDir, store.FileName)); statErr != nil {
			if tmpDir, err = os.MkdirTemp("", "caliop-look-"); err != nil {
				return nil, nil, err
			}
			tmp := *cfg
			tmp.DataDir = tmpDir
			cfg = &tmp
		}
	}
	if st, err = openStore(cfg); err != nil {
		if tmpDir != "" {
			os.RemoveAll(tmpDir)
		}
		return nil, nil, err
	}
	return st, func() {
		st.Close()
		if tmpDir != "" {
			os.RemoveAll(tmpDir)
		}
	}, nil
}

// redisLog sends the Redis client's own messages (failed dials while
// Redis is down) to the log, as warnings, instead of standard error.
type redisLog struct{ log *zap.Logger }

func (r redisLog) Printf(_ context.Context, format string, v ...any) {
	r.log.Warn(fmt.Sprintf(format, v...))
}

// logRedis routes the Redis client's messages to log.
func logRedis(log *zap.Logger) { redis.SetLogger(redisLog{log.Named("redis")}) }
