package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Key names one cached value: the organization it belongs to and a
// fingerprint of the query. It holds only hashes of both (see the package
// documentation); build it with NewKey or QueryKey.
type Key struct {
	org string        // hex of the first 16 bytes of SHA-256 of the organization
	id  string        // hex SHA-256 of organization and fingerprint
	ttl time.Duration // 0: the configured L1TTL and L2TTL
}

// WithTTL returns k with its own lifetime: a value stored under it lives d
// in Redis (instead of L2TTL) and the smaller of d and L1TTL in L1 (L1TTL
// also bounds how stale another instance's L1 can be). Zero or negative d
// means the configured TTLs. The TTL is not part of the key's identity: a
// value stored under another TTL is found, and kept for the TTL it was
// stored with.
func (k Key) WithTTL(d time.Duration) Key {
	k.ttl = max(d, 0)
	return k
}

// NewKey returns the key of fingerprint (any bytes that identify the query
// completely) within organization.
func NewKey(organization string, fingerprint []byte) Key {
	h := sha256.New()
	h.Write([]byte("auditdb/cache/query/v1\x00"))
	// length-prefixed, so that no two (organization, fingerprint) pairs
	// hash the same input
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(organization))))
	h.Write([]byte(organization))
	h.Write(fingerprint)
	return Key{org: orgHash(organization), id: hex.EncodeToString(h.Sum(nil))}
}

// QueryKey returns the key of a query within organization, fingerprinted
// by the JSON encoding of parts: for instance QueryKey(org, "search", q)
// with q a client.Query. Parts must encode to JSON deterministically
// (structs, maps with string keys, and scalars do).
func QueryKey(organization string, parts ...any) (Key, error) {
	b, err := json.Marshal(parts)
	if err != nil {
		return Key{}, fmt.Errorf("cache: query key: %w", err)
	}
	return NewKey(organization, b), nil
}

// String returns the key's hashed form, safe to log.
func (k Key) String() string { return k.id }

func orgHash(organization string) string {
	sum := sha256.Sum256([]byte("auditdb/cache/org/v1\x00" + organization))
	return hex.EncodeToString(sum[:16])
}
