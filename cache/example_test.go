package cache_test

import (
	"context"
	"fmt"

	"github.com/auditdb/auditdb/cache"
)

// An L1-only cache (no Redis): the second Get is answered from memory, and
// an invalidation of the organization makes the next one load again.
func Example() {
	c, err := cache.New(cache.Config{}, nil) // pass a redis.UniversalClient for L2
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()
	// Filter values are hashed into the key: they never reach Redis.
	key, err := cache.QueryKey("org-1", "search", map[string]string{"principal_id": "dr-123"})
	if err != nil {
		panic(err)
	}
	loads := 0
	load := func(context.Context) ([]byte, error) {
		loads++
		return []byte(fmt.Sprintf(`{"events":[],"load":%d}`, loads)), nil
	}
	for range 2 {
		v, _ := c.Get(ctx, key, load)
		fmt.Println(string(v))
	}
	_ = c.InvalidateOrganization(ctx, "org-1") // new events for org-1
	v, _ := c.Get(ctx, key, load)
	fmt.Println(string(v))
	s := c.Stats()
	fmt.Printf("L1 hits %d, misses %d, status %s\n", s.L1.Hits, s.L1.Misses, c.Health().Status)
	// Output:
	// {"events":[],"load":1}
	// {"events":[],"load":1}
	// {"events":[],"load":2}
	// L1 hits 1, misses 2, status l1_only
}
