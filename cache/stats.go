package cache

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Stats are a Cache's counters since New.
type Stats struct {
	L1    LevelStats
	L2    LevelStats
	Loads LoadStats
}

// LevelStats are the counters of one level.
type LevelStats struct {
	Hits, Misses uint64
	// HitRate is Hits / (Hits + Misses), 0 before any lookup.
	HitRate float64
	// Errors counts failed Redis calls (L2 only).
	Errors uint64
	// Evictions counts entries dropped to stay within L1MaxBytes (L1 only;
	// Redis's own evictions are in its INFO).
	Evictions uint64
	// Expirations counts entries found past their TTL (L1 only).
	Expirations uint64
	// Entries is how many entries L1 holds (L1 only).
	Entries int64
	// Bytes is what L1 holds now, counting keys and overhead; for L2, the
	// bytes written to Redis (after compression).
	Bytes int64
	// Compressed counts values written to Redis compressed (L2 only).
	Compressed uint64
	// Latency is of lookups at this level, hits and misses alike.
	Latency Latency
}

// LoadStats are the counters of loads (misses of both levels).
type LoadStats struct {
	// Loads counts calls of a loader; Errors those that failed.
	Loads, Errors uint64
	// Coalesced counts Gets answered by a load that another Get started.
	Coalesced uint64
	Latency   Latency
}

// Latency summarises a latency histogram. Percentiles are upper bounds of
// histogram buckets, within 25% of the true value.
type Latency struct {
	Count         uint64
	Avg, P50, P99 time.Duration
}

// histogram counts durations in buckets four to a power of two, with
// atomics only, so recording costs a few nanoseconds on the hit path. Its
// count is the sum of the buckets, each duration falling in exactly one.
type histogram struct {
	sum     atomic.Uint64
	buckets [256]atomic.Uint64
}

func (h *histogram) record(d time.Duration) {
	ns := uint64(max(d, 0))
	h.sum.Add(ns)
	h.buckets[bucketOf(ns)].Add(1)
}

func bucketOf(ns uint64) int {
	if ns < 8 {
		return int(ns)
	}
	b := bits.Len64(ns) // 4..64
	sub := int(ns>>(b-3)) - 4
	return 8 + (b-4)*4 + sub
}

// bucketUpper is the least duration above every one in bucket i.
func bucketUpper(i int) uint64 {
	if i < 8 {
		return uint64(i) + 1
	}
	b, sub := (i-8)/4+4, (i-8)%4
	return uint64(5+sub) << (b - 3)
}

func (h *histogram) summary() Latency {
	var counts [256]uint64
	var total uint64
	for i := range h.buckets {
		counts[i] = h.buckets[i].Load()
		total += counts[i]
	}
	l := Latency{Count: total}
	if total == 0 {
		return l
	}
	l.Avg = time.Duration(h.sum.Load() / total)
	quantile := func(q float64) time.Duration {
		rank := uint64(q*float64(total-1)) + 1
		var seen uint64
		for i, c := range counts {
			seen += c
			if seen >= rank {
				return time.Duration(bucketUpper(i))
			}
		}
		return time.Duration(bucketUpper(len(counts) - 1))
	}
	l.P50, l.P99 = quantile(0.50), quantile(0.99)
	return l
}

type levelCounters struct {
	hits, misses, errors, compressed atomic.Uint64
	written                          atomic.Int64
	latency                          histogram
}

func (c *levelCounters) stats() LevelStats {
	s := LevelStats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), Errors: c.errors.Load(),
		Compressed: c.compressed.Load(), Bytes: c.written.Load(), Latency: c.latency.summary(),
	}
	if n := s.Hits + s.Misses; n > 0 {
		s.HitRate = float64(s.Hits) / float64(n)
	}
	return s
}

// Stats returns the counters since New.
func (c *Cache) Stats() Stats {
	s := Stats{L1: c.m.l1.stats(), L2: c.m.l2.stats()}
	snap := c.l1.snapshot()
	s.L1.Entries, s.L1.Bytes = snap.entries, snap.bytes
	s.L1.Evictions, s.L1.Expirations = snap.evictions, snap.expirations
	s.Loads = LoadStats{
		Loads: c.m.loads.Load(), Errors: c.m.loadErrors.Load(),
		Coalesced: c.m.coalesced.Load(), Latency: c.m.loadLatency.summary(),
	}
	return s
}

type metrics struct {
	l1, l2                       levelCounters
	loads, loadErrors, coalesced atomic.Uint64
	loadLatency                  histogram
}
