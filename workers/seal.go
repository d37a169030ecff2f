package workers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/monitor"
)

// SealArgs is the seal job: an HMAC checkpoint (INTEGRITY.md, Checkpoints)
// for every chain whose head moved since its newest checkpoint by the
// active key.
type SealArgs struct{}

// Kind names the job in River.
func (SealArgs) Kind() string { return "auditdb_seal" }

// InsertOpts puts the job on the suite's queue.
func (SealArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: 5}
}

// SealWorker works SealArgs jobs.
type SealWorker struct {
	river.WorkerDefaults[SealArgs]
	Deps *Deps
}

// Work seals; see Deps.Seal. A lag found here (seals missed) is the alert
// evaluator's to raise, with its thresholds, and /readyz's to report.
func (w *SealWorker) Work(ctx context.Context, _ *river.Job[SealArgs]) error {
	_, err := w.Deps.Seal(ctx, SealOptions{})
	return err
}

// Seal states of a chain in a SealReport.
const (
	// SealStateSealed: a checkpoint was written.
	SealStateSealed = "sealed"
	// SealStateAlreadySealed: another sealer wrote the same checkpoint
	// first (a retry, or two sealers at once).
	SealStateAlreadySealed = "already_sealed"
	// SealStateHeadMismatch: audit.chain_heads does not match the row at
	// its seq; nothing was sealed and an alert was raised.
	SealStateHeadMismatch = "head_mismatch"
)

// SealedChain is what a seal did for one chain whose head had moved.
type SealedChain struct {
	ChainID  int16     `json:"chain_id"`
	ChainSeq int64     `json:"chain_seq"`
	Hash     string    `json:"hash"`
	SealedAt time.Time `json:"sealed_at"`
	State    string    `json:"state"`
}

// SealReport is the outcome of one seal.
type SealReport struct {
	KeyID string `json:"key_id"`
	// Chains lists the chains whose head had moved, in chain order.
	Chains []SealedChain `json:"chains"`
	// Unchanged counts chains already sealed at their head by the key.
	Unchanged int           `json:"unchanged"`
	Duration  time.Duration `json:"duration_ns"`
}

// Sealed counts the checkpoints this seal wrote.
func (r *SealReport) Sealed() int {
	n := 0
	for _, c := range r.Chains {
		if c.State == SealStateSealed {
			n++
		}
	}
	return n
}

// SealOptions for Deps.Seal. The zero value seals every chain.
type SealOptions struct {
	// Progress, if set, is called with chains done and chains to seal
	// after each chain.
	Progress func(done, total int64)
}

// headQuery reads, in one snapshot, every chain whose head is beyond its
// newest checkpoint by key $1, with the hash of the row at the head (or the
// end hash of an archive manifest ending there). The head is written by a
// statement trigger inside the writer's transaction, so a committed head and
// its row become visible together; the row's hash is still compared rather
// than trusting chain_heads, which a privileged user can change, and the
// MAC then seals a hash that verification can reproduce.
const headQuery = `SELECT h.chain_id, h.head_seq, encode(h.head_hash, 'hex'), coalesce(r.n, 0), r.hash,
	EXISTS (SELECT 1 FROM audit.archive_manifests m WHERE m.chain_id = h.chain_id
	        AND m.last_seq = h.head_seq AND m.end_hash = encode(h.head_hash, 'hex')),
	h.head_seq > coalesce(cp.seq, 0) AS moved
FROM audit.chain_heads h
LEFT JOIN LATERAL (SELECT max(c.chain_seq) AS seq FROM audit.integrity_checkpoints c
                   WHERE c.chain_id = h.chain_id AND c.key_id = $1) cp ON true
LEFT JOIN LATERAL (SELECT count(*) AS n, min(l.hash) AS hash FROM audit.audit_log l
                   WHERE l.chain_id = h.chain_id AND l.chain_seq = h.head_seq) r ON h.head_seq > coalesce(cp.seq, 0)
ORDER BY h.chain_id`

// Seal writes a checkpoint, under the active key, for every chain whose
// head moved since its newest checkpoint by that key. Each checkpoint is
// its own statement and idempotent (UNIQUE (chain_id, chain_seq, key_id),
// ON CONFLICT DO NOTHING), so a seal killed half-way leaves whole
// checkpoints only, and the next seal finishes the rest. sealed_at is
// truncated to microseconds, as PostgreSQL stores it, before the MAC is
// computed. Without a key it returns integrity.ErrNoSealKeys.
func (d *Deps) Seal(ctx context.Context, opts SealOptions) (*SealReport, error) {
	start := time.Now()
	keyID, key, err := d.sealKeys().ActiveKey()
	if err != nil {
		return nil, err
	}
	rep := &SealReport{KeyID: keyID, Chains: []SealedChain{}}
	// Finished transactions' chain secrets go (see audit.chain_holders_scrub):
	// they could recompute salts that an erasure deleted.
	if _, err := d.Pool.Exec(ctx, `SELECT audit.chain_holders_scrub()`); err != nil {
		return nil, fmt.Errorf("seal: scrub chain secrets: %w", err)
	}
	rows, err := d.Pool.Query(ctx, headQuery, keyID)
	if err != nil {
		return nil, fmt.Errorf("seal: read heads: %w", err)
	}
	type head struct {
		chain    int16
		seq      int64
		hash     string
		rows     int64
		rowHash  *string
		archived bool
		moved    bool
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (head, error) {
		var h head
		err := r.Scan(&h.chain, &h.seq, &h.hash, &h.rows, &h.rowHash, &h.archived, &h.moved)
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("seal: read heads: %w", err)
	}
	// every chain in one snapshot: those whose head did not move are counted
	total := len(all)
	heads := slices.DeleteFunc(all, func(h head) bool { return !h.moved })
	rep.Unchanged = total - len(heads)
	for i, h := range heads {
		sc := SealedChain{ChainID: h.chain, ChainSeq: h.seq, Hash: h.hash}
		matches := (h.rows == 1 && h.rowHash != nil && *h.rowHash == h.hash) || (h.rows == 0 && h.archived)
		if !matches {
			sc.State = SealStateHeadMismatch
			d.headMismatch(ctx, h.chain, h.seq, h.rows)
		} else {
			sc.SealedAt = time.Now().UTC().Truncate(time.Microsecond)
			mac := integrity.CheckpointMAC(key, h.chain, h.seq, h.hash, sc.SealedAt.UnixMicro())
			tag, err := d.Pool.Exec(ctx, `INSERT INTO audit.integrity_checkpoints (chain_id, chain_seq, hash, sealed_at, key_id, mac)
				VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (chain_id, chain_seq, key_id) DO NOTHING`,
				h.chain, h.seq, h.hash, sc.SealedAt, keyID, mac)
			if err != nil {
				return nil, fmt.Errorf("seal: chain %d: %w", h.chain, err)
			}
			sc.State = SealStateSealed
			if tag.RowsAffected() == 0 {
				sc.State = SealStateAlreadySealed
			}
		}
		rep.Chains = append(rep.Chains, sc)
		if d.FaultHooks != nil && d.FaultHooks.AfterSealChain != nil {
			d.FaultHooks.AfterSealChain(ctx, h.chain)
		}
		if opts.Progress != nil {
			opts.Progress(int64(i+1), int64(len(heads)))
		}
	}
	rep.Duration = time.Since(start)
	d.Metrics.observeSeal(rep)
	d.logger().DebugContext(ctx, "seal: done", "key_id", keyID, "sealed", rep.Sealed(), "unchanged", rep.Unchanged,
		"duration", rep.Duration)
	return rep, nil
}

func (d *Deps) headMismatch(ctx context.Context, chain int16, seq, rows int64) {
	why := "no row at the head's seq"
	switch {
	case rows > 1:
		why = fmt.Sprintf("%d rows share the head's seq", rows)
	case rows == 1:
		why = "the row at the head's seq has a different hash"
	}
	msg := fmt.Sprintf("chain %d not sealed: audit.chain_heads says seq %d, but %s", chain, seq, why)
	err := d.alerter().Raise(ctx, AlertSealHeadMismatch, monitor.AlertCritical, msg,
		map[string]string{"chain_id": strconv.Itoa(int(chain))}) // one alert per chain while it lasts
	if err != nil && !errors.Is(err, context.Canceled) {
		d.logger().ErrorContext(ctx, "seal: raise alert", "error", err)
	}
}
