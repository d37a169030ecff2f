package cache

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// L1 remembers at most maxEpochs invalidated organizations; forgetting
// them must not let a load that started before an invalidation store its
// (possibly stale) result, nor drop the entries stored meanwhile.
func TestL1EpochsBounded(t *testing.T) {
	t.Parallel()
	c := newL1(1<<20, time.Minute)
	now := time.Now()
	c.put(l1Key{id: "kept"}, "org-kept", c.epochOf("org-kept"), "v", 1, now, 0)

	before := c.epochOf("org-a")   // a load of org-a starts
	c.invalidate("org-a")          // new events arrive while it runs
	for i := range maxEpochs + 5 { // and L1 forgets that invalidation
		c.invalidate(fmt.Sprintf("org-%d", i))
	}
	require.LessOrEqual(t, len(c.epochs), maxEpochs)
	c.put(l1Key{id: "a"}, "org-a", before, "stale", 1, now, 0)
	_, ok := c.get(l1Key{id: "a"}, now)
	require.False(t, ok, "a load that started before an invalidation was stored")

	v, ok := c.get(l1Key{id: "kept"}, now)
	require.True(t, ok, "forgetting epochs dropped an entry")
	require.Equal(t, "v", v)

	fresh := c.epochOf("org-a")
	c.put(l1Key{id: "a"}, "org-a", fresh, "fresh", 1, now, 0)
	v, ok = c.get(l1Key{id: "a"}, now)
	require.True(t, ok)
	require.Equal(t, "fresh", v)
}

// A key's own TTL shortens an L1 entry's life below L1TTL, never extends it.
func TestL1KeyTTL(t *testing.T) {
	t.Parallel()
	c := newL1(1<<20, time.Minute)
	now := time.Now()
	c.put(l1Key{id: "short"}, "o", c.epochOf("o"), "v", 1, now, time.Second)
	c.put(l1Key{id: "long"}, "o", c.epochOf("o"), "v", 1, now, time.Hour)
	_, ok := c.get(l1Key{id: "short"}, now.Add(999*time.Millisecond))
	require.True(t, ok)
	_, ok = c.get(l1Key{id: "short"}, now.Add(time.Second))
	require.False(t, ok, "expired at its own TTL")
	_, ok = c.get(l1Key{id: "long"}, now.Add(59*time.Second))
	require.True(t, ok)
	_, ok = c.get(l1Key{id: "long"}, now.Add(time.Minute))
	require.False(t, ok, "L1TTL bounds a longer key TTL")
}
