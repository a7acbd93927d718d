package pgpmime

import (
	"fmt"
	"slices"
	"sync"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// checkKeys reports an error unless there is at least one key and none
// is nil.
func checkKeys(keys []*openpgp.Entity) error {
	if len(keys) == 0 {
		return ErrNoKeys
	}
	for i, k := range keys {
		if k == nil {
			return fmt.Errorf("%w: keys[%d] is nil", ErrNoKeys, i)
		}
	}
	return nil
}

// keyLocks serialize go-crypto's use of an Entity: it writes into one as
// it reads it (it keeps each signature check's result in it, which is
// also what spares a key's self-signatures a check at every message).
// An encryption holds the locks of its keys, by fingerprint (lockIndex),
// while go-crypto reads them.
var keyLocks [64]sync.Mutex

// lockKeys takes the locks of keys, in one order whatever the keys' (no
// two encryptions wait for each other), and returns their release.
func lockKeys(keys []*openpgp.Entity) (unlock func()) {
	idx := make([]int, 0, len(keys))
	for _, k := range keys {
		idx = append(idx, lockIndex(k))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		keyLocks[i].Lock()
	}
	return func() {
		for _, i := range idx {
			keyLocks[i].Unlock()
		}
	}
}

// lockIndex is k's lock: its fingerprint's first byte, spread over the
// locks.
func lockIndex(k *openpgp.Entity) int {
	if k.PrimaryKey == nil || len(k.PrimaryKey.Fingerprint) == 0 {
		return 0
	}
	return int(k.PrimaryKey.Fingerprint[0]) % len(keyLocks)
}
