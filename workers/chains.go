package workers

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ChainState is one chain's position: its head, its rows still in
// audit_log, its newest checkpoint (any key) and its seal lag.
type ChainState struct {
	ChainID   int16 `json:"chain_id"`
	HeadSeq   int64 `json:"head_seq"`
	Rows      int64 `json:"rows"`
	SealedSeq int64 `json:"sealed_seq"`
	// SealLag is the age of the oldest row after the newest checkpoint:
	// how long a tail deletion could go unnoticed by the keyed check. Zero
	// when the head is sealed. It is measured from the row rather than from
	// the checkpoint so that a chain idle for a day does not report a day
	// of lag the moment it is written again.
	SealLag time.Duration `json:"seal_lag_ns"`
}

// chainStateQuery: rows are the head minus what archive manifests removed;
// the oldest unsealed row is found by the (chain_id, chain_seq) index, and
// when it is gone (archived, or removed) the head's update time stands in.
const chainStateQuery = `SELECT h.chain_id, h.head_seq,
	h.head_seq - coalesce((SELECT sum(m.row_count) FROM audit.archive_manifests m WHERE m.chain_id = h.chain_id), 0)::bigint,
	coalesce(cp.seq, 0),
	CASE WHEN h.head_seq > coalesce(cp.seq, 0) THEN greatest(0, extract(epoch FROM now() - coalesce(
		(SELECT min(l.recorded_at) FROM audit.audit_log l WHERE l.chain_id = h.chain_id AND l.chain_seq = coalesce(cp.seq, 0) + 1),
		h.updated_at)))::float8 ELSE 0 END
FROM audit.chain_heads h
LEFT JOIN LATERAL (SELECT max(c.chain_seq) AS seq FROM audit.integrity_checkpoints c WHERE c.chain_id = h.chain_id) cp ON true
ORDER BY h.chain_id`

// ChainStates returns every chain's state, in chain order.
func (d *Deps) ChainStates(ctx context.Context) ([]ChainState, error) {
	rows, err := d.Pool.Query(ctx, chainStateQuery)
	if err != nil {
		return nil, fmt.Errorf("chain states: %w", err)
	}
	states, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ChainState, error) {
		var s ChainState
		var lag float64
		err := r.Scan(&s.ChainID, &s.HeadSeq, &s.Rows, &s.SealedSeq, &lag)
		s.SealLag = time.Duration(lag * float64(time.Second))
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("chain states: %w", err)
	}
	return states, nil
}

// MaxSealLag is the largest seal lag of states.
func MaxSealLag(states []ChainState) time.Duration {
	var m time.Duration
	for _, s := range states {
		m = max(m, s.SealLag)
	}
	return m
}
