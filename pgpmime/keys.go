package pgpmime

import (
	"bytes"
	"fmt"
	"slices"
	"sync"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// Encrypt never uses a caller's Entity but to copy it: go-crypto writes
// into an Entity as it reads it (it keeps each signature check's result,
// even Serialize does), so callers may share theirs between calls. The
// copy of each key is made once and kept (copies), and go-crypto keeps
// its signature checks in it: a key's self-signatures are verified at its
// first message, not at every one. A copy is used by one encryption at a
// time (lockKeys).

// maxCopies bounds the copies kept; past it one taken at random goes. A
// parsed key takes about 6 KiB: the keys of the busiest recipients are
// kept, not every key the relay has seen.
const maxCopies = 512

var copies = struct {
	sync.Mutex
	m map[*openpgp.Entity]*openpgp.Entity // caller's → its copy
}{m: map[*openpgp.Entity]*openpgp.Entity{}}

// publicCopies are the copies of keys (publicCopy), none nil.
func publicCopies(keys []*openpgp.Entity) ([]*openpgp.Entity, error) {
	if len(keys) == 0 {
		return nil, ErrNoKeys
	}
	out := make([]*openpgp.Entity, len(keys))
	for i, k := range keys {
		if k == nil {
			return nil, fmt.Errorf("%w: keys[%d] is nil", ErrNoKeys, i)
		}
		var err error
		if out[i], err = publicCopy(k); err != nil {
			return nil, fmt.Errorf("%w: keys[%d]: %w", ErrEncrypt, i, err)
		}
	}
	return out, nil
}

// publicCopy returns the kept copy of k's public parts, making it at
// the first call for k. A copy whose encryption failed is dropped
// (forgetCopies): a signature check kept in it at one date must not
// outlive that failure.
func publicCopy(k *openpgp.Entity) (*openpgp.Entity, error) {
	copies.Lock()
	defer copies.Unlock()
	if c := copies.m[k]; c != nil {
		return c, nil
	}
	var b bytes.Buffer
	if err := k.Serialize(&b); err != nil {
		return nil, err
	}
	el, err := openpgp.ReadKeyRing(&b)
	if err != nil {
		return nil, err
	}
	if len(el) != 1 {
		return nil, fmt.Errorf("%d keys in one entity", len(el))
	}
	if len(copies.m) >= maxCopies {
		for old := range copies.m {
			delete(copies.m, old)
			break
		}
	}
	copies.m[k] = el[0]
	return el[0], nil
}

// forgetCopies drops the copies of keys, with the signature checks kept
// in them.
func forgetCopies(keys []*openpgp.Entity) {
	copies.Lock()
	defer copies.Unlock()
	for _, k := range keys {
		delete(copies.m, k)
	}
}

// keyLocks are the locks of the copies, by fingerprint (lockIndex): an
// encryption holds those of its keys while go-crypto reads them.
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
