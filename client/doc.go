// Package client is the Go client of auditdb: it writes audit events into
// audit.audit_log and reads them back.
//
// The integrity work (PII commitment, row hash, hash chain) happens inside
// the database, in the insert trigger; this package adds what a Go program
// wants on top of plain SQL:
//
//   - a typed [Event] whose [Event.Validate] applies the trigger's rules with
//     the trigger's own messages, so bad input fails before a round trip;
//   - [Client.Insert] (one event, with a [Receipt] naming its chain position
//     and hash) and [Client.InsertBatch] (many events through COPY, all or
//     nothing);
//   - [Client.WithTx], a transaction that commits when its function returns
//     nil and is retried on serialization failures and deadlocks;
//   - [Client.Search] with keyset pagination, [Client.Count] and [Client.Get],
//     served by a read replica ([Config.ReplicaURL]) while it is up and
//     within [Config.ReplicaMaxLag] of the primary, by the primary otherwise.
//
// A client is made from a URL ([New], which falls back to AUDIT_DB_URL) or
// from a [Config] ([NewWithConfig], [ConfigFromEnv]). Errors name the field
// and the rule, never a value (values may be PHI) and never the password of
// the URL. Database errors keep their cause for errors.As; a missing row is
// [ErrNotFound].
//
// It also makes the compliance reports ([Client.AccessReport],
// [Client.DisclosureReport], [Client.WorkforceActivityReport],
// [Client.IntegrityAttestation]), GDPR exports and erasure requests
// ([Client.ExportSubject], [Client.RequestErasure]), legal holds, inclusion
// proofs ([Client.InclusionProof], [VerifyInclusionProof]), and, as
// [Enhanced] ([NewEnhanced]), reads through a cache with monitoring.
//
// # Cached reads and when they are dropped
//
// [Enhanced.Search], [Enhanced.Count], [Enhanced.Get] and [QueryCached] go
// through one cache (package cache: an in-process L1 in front of Redis).
// Every cached result belongs to a scope, and these rules drop it:
//
//   - Events written through any Enhanced client that shares the Redis
//     (Insert, InsertBatch, WithTx after commit) drop the results scoped to
//     their organizations and every unscoped result (Search and Count
//     without OrganizationID, QueryCached without
//     CachedQueryOptions.OrganizationID): at once on the writing instance
//     and in Redis, on other instances when the invalidation message
//     arrives (milliseconds; L1TTL bounds it when the channel is broken).
//   - Events written by other means (psql, another program, COPY) drop
//     nothing: results age out after their TTL (L1TTL, L2TTL, or
//     CachedQueryOptions.TTL).
//   - GDPR erasure purges the touched organizations' results, the unscoped
//     ones and every Get ([PurgeAfterErasure], which the worker runs).
//   - A result that does not depend on the log's rows (a query on
//     audit.alerts, say) is still dropped by the rules above, and changes to
//     what it reads are seen only when it expires: give it a short TTL.
//
// [QueryCached] scopes by CachedQueryOptions.OrganizationID: name the
// organization the query's result depends on, or leave it empty for a
// query across organizations (then every write drops it). It runs only
// read-only SQL, in a READ ONLY transaction; writing SQL fails with
// [ErrNotReadOnly] and is never cached. Misses load from the primary once
// per key at a time; hits, misses, load times and Redis health show in
// [Enhanced.CacheStats], [Enhanced.Metrics] and [Enhanced.Health].
package client
