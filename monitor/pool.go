package monitor

import (
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// PoolStats is a snapshot of a connection pool.
type PoolStats struct {
	// MaxConns is the pool's size limit; TotalConns are open now, of which
	// AcquiredConns are in use, IdleConns wait and ConstructingConns are
	// being opened.
	MaxConns          int32 `json:"max_conns"`
	TotalConns        int32 `json:"total_conns"`
	AcquiredConns     int32 `json:"acquired_conns"`
	IdleConns         int32 `json:"idle_conns"`
	ConstructingConns int32 `json:"constructing_conns"`
	// Usage is AcquiredConns / MaxConns, from 0 to 1: near 1 means callers
	// are about to wait for connections.
	Usage float64 `json:"usage"`
	// AcquireCount counts acquisitions since the pool opened;
	// EmptyAcquireCount those that had to wait or open a connection, and
	// CanceledAcquireCount those given up by their context.
	AcquireCount         int64 `json:"acquire_count"`
	EmptyAcquireCount    int64 `json:"empty_acquire_count"`
	CanceledAcquireCount int64 `json:"canceled_acquire_count"`
	// AverageAcquire is the mean time an acquisition took; EmptyAcquireWait
	// is the total time spent waiting when no connection was idle.
	AverageAcquire   time.Duration `json:"average_acquire_ns"`
	EmptyAcquireWait time.Duration `json:"empty_acquire_wait_ns"`
}

// PoolStatsOf takes a snapshot of pool.
func PoolStatsOf(pool *pgxpool.Pool) PoolStats {
	st := pool.Stat()
	s := PoolStats{
		MaxConns:             st.MaxConns(),
		TotalConns:           st.TotalConns(),
		AcquiredConns:        st.AcquiredConns(),
		IdleConns:            st.IdleConns(),
		ConstructingConns:    st.ConstructingConns(),
		AcquireCount:         st.AcquireCount(),
		EmptyAcquireCount:    st.EmptyAcquireCount(),
		CanceledAcquireCount: st.CanceledAcquireCount(),
		EmptyAcquireWait:     st.EmptyAcquireWaitTime(),
	}
	if s.MaxConns > 0 {
		s.Usage = float64(s.AcquiredConns) / float64(s.MaxConns)
	}
	if s.AcquireCount > 0 {
		s.AverageAcquire = st.AcquireDuration() / time.Duration(s.AcquireCount)
	}
	return s
}
