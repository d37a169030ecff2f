// Package cache is auditdb's read cache: an in-process level (L1, bounded by
// bytes, with a TTL) in front of Redis (L2, with a TTL, a key prefix and
// compression of large values), for query results of the Go client.
//
// Values are opaque bytes (a serialised page of events, for instance), and
// every key belongs to one organization, because that is the unit of
// invalidation: when new events arrive for an organization,
// InvalidateOrganization makes every cached query of it miss, on every
// instance that shares the Redis.
//
// Get caches bytes; Typed[T] caches values of type T with a Codec, keeping
// them decoded in L1 (decoding a page of events costs about as much as
// querying it) and encoded in Redis. Either way the value returned is
// shared with the cache: read it, never modify it. A Codec whose Decode
// keeps nothing of its input sets Copies, and L2 hits then decompress into
// reused buffers instead of allocating one per hit.
//
// # Keys
//
// A Key is built by NewKey or QueryKey and holds only SHA-256 hashes of the
// organization and of the query fingerprint, so filter values (a patient id,
// a principal) never appear in Redis key names, which are far more widely
// exposed than values (SLOWLOG, MONITOR, keyspace tools, metrics). The
// values themselves are query results and hold personal data: protect the
// Redis like the database (AUTH, TLS, no public network).
//
// # Invalidation
//
// No KEYS or SCAN is used. Each organization has a generation token in Redis
// (key "<prefix>gen:<org hash>"), a random 64-bit number written into every
// L2 value stored under it; InvalidateOrganization replaces the token, so
// values stored under the old one stop matching at once, and then publishes
// the organization's hash on the channel "<prefix>invalidate" so that every
// instance drops its L1 entries of it. A random token (rather than INCR)
// stays safe when Redis evicts or loses the generation key: a new token is
// drawn and nothing stored before matches it.
//
// A load that started before an invalidation never stores its result after
// it: the L2 value carries the generation read before the load, and the L1
// store is refused when the organization's local epoch moved meanwhile. A
// Get that starts after InvalidateOrganization returns never joins a load
// that started before it.
//
// Consistency: on the instance that calls InvalidateOrganization, no stale
// value is served once it returns; L2 reads are consistent everywhere; the
// L1 of other instances is dropped when the message arrives (milliseconds),
// and all L1 entries are dropped whenever the subscription is (re)made,
// since messages may have been missed. L1TTL bounds any staleness left
// when the channel is broken. Set L1MaxBytes negative for strict
// consistency across instances at the cost of a Redis round trip per read.
//
// # Redis failures
//
// A Redis error never reaches the caller of Get: the read goes on to the
// loader (PostgreSQL), the error is counted, and a circuit breaker stops
// calls to Redis for a backoff (RetryMin, doubling to RetryMax) so that reads
// do not each wait for a timeout; Health reports degraded meanwhile. After
// the backoff one call (a read, or the invalidation listener when reads are
// few) probes Redis; on success the cache resumes, first applying the
// invalidations that could not reach Redis while it was down.
// Give the Redis client short dial and read timeouts (or
// ContextTimeoutEnabled, since every Redis call here carries L2Timeout).
//
// Redis Cluster works through go-redis's ClusterClient: the commands used are
// single-key (GET, SET, SETNX) or PUBLISH/SUBSCRIBE, which a cluster
// broadcasts to every node.
package cache
