// The shared store of a cluster: one Redis that every replica reads and
// writes. Each bucket is one hash "<prefix>:<bucket>" (field = key, value =
// JSON); each lock is a string "<prefix>:lock:<name>" holding its owner's
// token, with the ttl as its expiry.

package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// RedisOptions says where the shared store is and how long to wait for it.
type RedisOptions struct {
	// URL is redis://[user:password@]host:port[/db], or rediss:// for TLS.
	URL string
	// Prefix starts every key, so that several clusters can share one
	// Redis; default "caliop".
	Prefix string
	// Timeout bounds each operation, connecting included; default 1s.
	Timeout time.Duration
}

// Redis is a Store on a Redis server shared by the replicas. It is safe
// for concurrent use.
//
// It fails fast: at most one retry, and each operation bounded by the
// Timeout, connecting included. The delivery path asks the store when its
// memory misses; a Redis that is down must turn into an error (and a 4xx)
// at once, not hold every delivery for the client library's default
// seconds of dials and retries.
type Redis struct {
	c       *redis.Client
	addr    string
	prefix  string
	timeout time.Duration
}

// updateTries bounds the optimistic transactions of one Update that lose
// to another writer of the same bucket; maxBackoff bounds the wait
// between two (about one second of waits in all).
const (
	updateTries = 20
	maxBackoff  = 64 * time.Millisecond
)

// unlockScript deletes the lock only if it still holds the caller's
// token: after the ttl, somebody else may hold it.
var unlockScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// OpenRedis connects to the Redis at o.URL and checks that it answers.
func OpenRedis(o RedisOptions) (*Redis, error) {
	opt, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("store: redis URL: %w", urlError(err))
	}
	if o.Prefix == "" {
		o.Prefix = "caliop"
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	opt.DialTimeout = o.Timeout
	opt.ReadTimeout = o.Timeout
	opt.WriteTimeout = o.Timeout
	opt.PoolTimeout = o.Timeout
	opt.ContextTimeoutEnabled = true
	opt.MaxRetries = 1
	opt.DialerRetries = 1
	// Maintenance notifications are a Redis Enterprise feature: no extra
	// command on every new connection.
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	s := &Redis{c: redis.NewClient(opt), addr: opt.Addr, prefix: o.Prefix, timeout: o.Timeout}
	if err := s.Check(); err != nil {
		_ = s.c.Close()
		return nil, err
	}
	return s, nil
}

// urlError is err from redis.ParseURL without the URL itself, which may
// hold a password.
func urlError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Addr is the server's host:port.
func (s *Redis) Addr() string { return s.addr }

func (s *Redis) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.timeout)
}

func (s *Redis) hash(bucket string) string { return s.prefix + ":" + bucket }

func (s *Redis) fail(err error) error { return fmt.Errorf("store: redis %s: %w", s.addr, err) }

// Get decodes the value under key into v and reports whether it existed.
func (s *Redis) Get(bucket, key string, v any) (bool, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	b, err := s.c.HGet(ctx, s.hash(bucket), key).Bytes()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, s.fail(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return true, s.fail(fmt.Errorf("%s/%s: %w", bucket, key, err))
	}
	return true, nil
}

// Put stores v as JSON under key in bucket.
func (s *Redis) Put(bucket, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: %s/%s: %w", bucket, key, err)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.c.HSet(ctx, s.hash(bucket), key, b).Err(); err != nil {
		return s.fail(err)
	}
	return nil
}

// Delete removes key from bucket; a missing key is not an error.
func (s *Redis) Delete(bucket, key string) error {
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.c.HDel(ctx, s.hash(bucket), key).Err(); err != nil {
		return s.fail(err)
	}
	return nil
}

// ForEach reads the whole bucket at once (HGETALL: one consistent view)
// and calls fn in key order. Buckets are small: a few thousand domains.
// An error from fn stops the walk and is returned as is.
func (s *Redis) ForEach(bucket string, fn func(key string, value []byte) error) error {
	ctx, cancel := s.ctx()
	m, err := s.c.HGetAll(ctx, s.hash(bucket)).Result()
	cancel()
	if err != nil {
		return s.fail(err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys) // byte order, as bbolt's
	for _, k := range keys {
		if err := fn(k, []byte(m[k])); err != nil {
			return err
		}
	}
	return nil
}

// Update is an optimistic transaction: WATCH the bucket's hash, read the
// key, and write fn's result in MULTI/EXEC, which Redis refuses if
// anybody wrote the hash in between; then it starts again. Redis has no
// lock a client could hold across fn, and a Lua script cannot run fn.
// An error from fn is returned as is and nothing is written.
func (s *Redis) Update(bucket, key string, fn func(old []byte) ([]byte, error)) error {
	h := s.hash(bucket)
	for try := range updateTries {
		err := s.updateOnce(h, key, fn)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
		// Another writer won. Wait a random time in a window that
		// doubles up to maxBackoff, so that the losers spread out.
		time.Sleep(rand.N(min(time.Millisecond<<try, maxBackoff)) + 100*time.Microsecond)
	}
	return s.fail(fmt.Errorf("%s/%s: %d concurrent writers won in a row, giving up", bucket, key, updateTries))
}

// UpdateEach is Update key by key: each key is its own optimistic
// transaction, as replicas write single keys.
func (s *Redis) UpdateEach(bucket string, keys []string, fn func(key string, old []byte) ([]byte, error)) map[string]error {
	failed := map[string]error{}
	for _, key := range keys {
		if err := s.Update(bucket, key, func(old []byte) ([]byte, error) { return fn(key, old) }); err != nil {
			failed[key] = err
		}
	}
	return failed
}

// fnError carries fn's error out of the transaction unwrapped.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

func (s *Redis) updateOnce(h, key string, fn func(old []byte) ([]byte, error)) error {
	ctx, cancel := s.ctx()
	defer cancel()
	err := s.c.Watch(ctx, func(tx *redis.Tx) error {
		old, err := tx.HGet(ctx, h, key).Bytes()
		if errors.Is(err, redis.Nil) {
			old, err = nil, nil
		}
		if err != nil {
			return err
		}
		b, err := fn(old)
		if err != nil {
			return fnError{err}
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if b == nil {
				p.HDel(ctx, h, key)
			} else {
				p.HSet(ctx, h, key, b)
			}
			return nil
		})
		return err
	}, h)
	var fe fnError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe):
		return fe.err
	case errors.Is(err, redis.TxFailedErr):
		return err
	}
	return s.fail(err)
}

// Lock sets "<prefix>:lock:<name>" to a fresh token if it is not set
// (SET NX), expiring after ttl (at least 1ms): Redis ends a lock whose
// holder died.
func (s *Redis) Lock(name string, ttl time.Duration) (func(), error) {
	key := s.prefix + ":lock:" + name
	token := newToken()
	ttl = max(ttl, time.Millisecond).Round(time.Millisecond)
	ctx, cancel := s.ctx()
	defer cancel()
	ok, err := s.c.SetNX(ctx, key, token, ttl).Result()
	if err != nil {
		return nil, s.fail(err)
	}
	if !ok {
		return nil, ErrLocked
	}
	return func() {
		ctx, cancel := s.ctx()
		defer cancel()
		// An error leaves the lock to its ttl.
		_ = unlockScript.Run(ctx, s.c, []string{key}, token).Err()
	}, nil
}

// Check sends a PING: the store is usable when Redis answers.
func (s *Redis) Check() error {
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.c.Ping(ctx).Err(); err != nil {
		return s.fail(err)
	}
	return nil
}

// Close closes the connections.
func (s *Redis) Close() error { return s.c.Close() }

var _ Store = (*Redis)(nil)
