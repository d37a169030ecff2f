package cache

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A histogram's count is the sum of its buckets: every duration recorded,
// from negative to the largest, falls in exactly one bucket.
func TestHistogramCount(t *testing.T) {
	t.Parallel()
	var h histogram
	require.Equal(t, Latency{}, h.summary())
	ds := []time.Duration{-5, 0, 1, 7, 8, 9, 100, time.Microsecond, 3 * time.Millisecond, time.Hour, math.MaxInt64}
	var sum uint64
	for _, d := range ds {
		h.record(d)
		sum += uint64(max(d, 0))
	}
	l := h.summary()
	require.EqualValues(t, len(ds), l.Count)
	require.Equal(t, time.Duration(sum/uint64(len(ds))), l.Avg)
	require.LessOrEqual(t, l.P50, l.P99)
}
