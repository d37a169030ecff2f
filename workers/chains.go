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
// the seal lag is audit.integrity_status's (oldest_unsealed_at).
const chainStateQuery = `SELECT s.chain_id, s.head_seq,
	s.head_seq - coalesce((SELECT sum(m.row_count) FROM audit.archive_manifests m WHERE m.chain_id = s.chain_id), 0)::bigint,
	coalesce(s.last_checkpoint_seq, 0),
	coalesce(greatest(0, extract(epoch FROM now() - s.oldest_unsealed_at)), 0)::float8
FROM audit.integrity_status s
ORDER BY s.chain_id`

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
