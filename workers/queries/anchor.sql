-- Queries of the anchor job (workers/anchor.go). Each block is one query,
-- named entity first after "-- name:".

-- name: AnchorLogID
SELECT (SELECT value FROM audit.settings WHERE key = 'log_id'),
       (SELECT value::int FROM audit.settings WHERE key = 'chain_count');

-- name: AnchorBundleLock
-- One reservation at a time, among every worker: the next number and the
-- previous message's hash are read and the reservation written under it.
LOCK TABLE audit.anchor_bundles IN SHARE ROW EXCLUSIVE MODE;

-- name: AnchorBundleLatest
SELECT bundle, log_id, prev, message_sha256, root, anchored_at_us, heads::text, key_id, written_at IS NOT NULL
FROM audit.anchor_bundles ORDER BY bundle DESC LIMIT 1;

-- name: AnchorBundleReserve
INSERT INTO audit.anchor_bundles (bundle, log_id, prev, message_sha256, root, anchored_at_us, heads, key_id, sink)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9);

-- name: AnchorBundleWritten
UPDATE audit.anchor_bundles SET written_at = now(), file_sha256 = $2 WHERE bundle = $1 AND written_at IS NULL;

-- name: AnchorBundleNewest
SELECT coalesce(max(bundle), 0) FROM audit.anchor_bundles WHERE written_at IS NOT NULL;

-- name: ChainHeadsAnchor
-- Every chain's head, like a seal reads it, in one snapshot: the head and
-- the row at its seq (or an archive manifest ending there) must agree.
SELECT h.chain_id, h.head_seq, encode(h.head_hash, 'hex'), coalesce(r.n, 0), r.hash,
       EXISTS (SELECT 1 FROM audit.archive_manifests m WHERE m.chain_id = h.chain_id
               AND m.last_seq = h.head_seq AND m.end_hash = encode(h.head_hash, 'hex'))
FROM audit.chain_heads h
LEFT JOIN LATERAL (SELECT count(*) AS n, min(l.hash) AS hash FROM audit.audit_log l
                   WHERE l.chain_id = h.chain_id AND l.chain_seq = h.head_seq) r ON h.head_seq > 0
ORDER BY h.chain_id;
