package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"
	"time"
)

// Once remembers identities for a while, in a Store, so that every
// process sharing it (replicas on one Redis) agrees which one saw an
// identity first. The zero value is not usable: set Store and Bucket.
type Once struct {
	Store  Store
	Bucket string
	Now    func() time.Time // nil: time.Now

	mu    sync.Mutex
	swept time.Time
}

// sweepEvery is how often First drops expired identities.
const sweepEvery = time.Hour

type onceEntry struct {
	Keep time.Time `json:"keep"`
}

// First records id until keep and reports whether it was new (or its
// earlier record had expired). The check and the record are one atomic
// update. An error means the store could not tell.
func (o *Once) First(id string, keep time.Time) (bool, error) {
	now := o.now()
	sum := sha256.Sum256([]byte(id))
	key := hex.EncodeToString(sum[:])
	first := false
	err := o.Store.Update(o.Bucket, key, func(old []byte) ([]byte, error) {
		var e onceEntry
		if old != nil && json.Unmarshal(old, &e) == nil && now.Before(e.Keep) {
			first = false
			return old, nil
		}
		first = true
		return json.Marshal(onceEntry{Keep: keep})
	})
	if err != nil {
		return false, err
	}
	o.sweep(now)
	return first, nil
}

// sweep drops expired identities, at most once per sweepEvery.
func (o *Once) sweep(now time.Time) {
	o.mu.Lock()
	due := now.Sub(o.swept) >= sweepEvery
	if due {
		o.swept = now
	}
	o.mu.Unlock()
	if !due {
		return
	}
	var expired []string
	o.Store.ForEach(o.Bucket, func(k string, v []byte) error {
		var e onceEntry
		if json.Unmarshal(v, &e) != nil || !now.Before(e.Keep) {
			expired = append(expired, k)
		}
		return nil
	})
	for _, k := range expired {
		o.Store.Delete(o.Bucket, k)
	}
}

func (o *Once) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}
