package cache_test

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/cache"
)

func TestPurgeOrganization(t *testing.T) {
	t.Parallel()
	testPurge(t, sharedRedis(t), prefix(t))
}

// testPurge runs against a single Redis or a cluster: after a purge no value
// of the organization is left in Redis (an invalidation alone leaves them
// until their TTL), other organizations keep theirs, and nothing stale is
// served.
func testPurge(t *testing.T, rdb redis.UniversalClient, p string) {
	c := newCache(t, cache.Config{KeyPrefix: p}, rdb)
	var org1, org2 source
	for i := range 20 {
		get(t, c, key(t, "org-1", "search", i), org1.load("o1"))
	}
	get(t, c, key(t, "org-2", "search"), org2.load("o2"))
	values := func() (n int) {
		for _, k := range scanKeys(t, rdb, p) {
			if strings.HasPrefix(k, p+"q:") {
				n++
			}
		}
		return n
	}
	require.Equal(t, 21, values())

	n, err := c.PurgeOrganization(context.Background(), "org-1")
	require.NoError(t, err)
	require.EqualValues(t, 20, n)
	require.Equal(t, 1, values(), "org-2's value stays")
	org1.version.Store(1)
	require.Equal(t, "o1@v1", get(t, c, key(t, "org-1", "search", 0), org1.load("o1")))
	require.Equal(t, "o2@v0", get(t, c, key(t, "org-2", "search"), org2.load("o2")))
}
