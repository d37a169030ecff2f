package monitor

import (
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// PerformanceMetrics is a snapshot of how the client performs.
type PerformanceMetrics struct {
	CollectedAt time.Time `json:"collected_at"`
	// Cache is nil when there is no cache.
	Cache *CacheMetrics `json:"cache,omitempty"`
	// Queries covers the statements of the pool Tracer is attached to.
	Queries QueryStats `json:"queries"`
	Pool    PoolStats  `json:"pool"`
}

// CacheMetrics are a cache's counters and its hit rate.
type CacheMetrics struct {
	Hits   int64 `json:"hits"`
	Misses int64 `json:"misses"`
	// HitRate is Hits / (Hits + Misses), 0 before the first lookup.
	HitRate float64 `json:"hit_rate"`
}

// Metrics returns the query statistics of the Monitor's tracer, pool's
// statistics and, when cache is not nil, its hit rate.
func (m *Monitor) Metrics(pool *pgxpool.Pool, cache Cache) PerformanceMetrics {
	pm := PerformanceMetrics{
		CollectedAt: time.Now(),
		Queries:     m.queries.Stats(),
		Pool:        PoolStatsOf(pool),
	}
	if cache != nil {
		hits, misses := cache.Counts()
		cm := &CacheMetrics{Hits: hits, Misses: misses}
		if hits+misses > 0 {
			cm.HitRate = float64(hits) / float64(hits+misses)
		}
		pm.Cache = cm
	}
	return pm
}
