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
package client
