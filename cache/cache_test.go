package cache_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/cache"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		cfg  cache.Config
		err  string
	}{
		{"defaults", cache.Config{}, ""},
		{"negative L1TTL", cache.Config{L1TTL: -time.Second}, "Config.L1TTL: must not be negative"},
		{"sub-millisecond L2TTL", cache.Config{L2TTL: time.Microsecond}, "Config.L2TTL: must be at least 1ms"},
		{"RetryMax below RetryMin", cache.Config{RetryMin: time.Second, RetryMax: time.Millisecond}, "Config.RetryMax: must be at least RetryMin"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := cache.New(tt.cfg, nil)
			if tt.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.err)
		})
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	a := key(t, "org-1", "search", map[string]any{"principal": "dr-1"})
	require.Equal(t, a, key(t, "org-1", "search", map[string]any{"principal": "dr-1"}))
	require.NotEqual(t, a, key(t, "org-2", "search", map[string]any{"principal": "dr-1"}))
	require.NotEqual(t, a, key(t, "org-1", "count", map[string]any{"principal": "dr-1"}))
	// the organization and the fingerprint are length-delimited
	require.NotEqual(t, cache.NewKey("ab", []byte("c")), cache.NewKey("a", []byte("bc")))
	require.Len(t, a.String(), 64)

	_, err := cache.QueryKey("org-1", make(chan int))
	require.ErrorContains(t, err, "cache: query key")
	c := newCache(t, cache.Config{}, nil)
	_, err = c.Get(context.Background(), cache.Key{}, nil)
	require.ErrorContains(t, err, "zero Key")
}

func TestGetLevels(t *testing.T) {
	t.Parallel()
	rdb := sharedRedis(t)
	cfg := cache.Config{KeyPrefix: prefix(t)}
	a, b := newCache(t, cfg, rdb), newCache(t, cfg, rdb)
	var src source
	k := key(t, "org-1", "search", 1)

	require.Equal(t, "q@v0", get(t, a, k, src.load("q")))
	s := a.Stats()
	require.Equal(t, [3]uint64{0, 1, 1}, [3]uint64{s.L1.Hits, s.L1.Misses, s.L2.Misses})
	require.EqualValues(t, 1, s.Loads.Loads)

	require.Equal(t, "q@v0", get(t, a, k, src.load("q")))
	s = a.Stats()
	require.EqualValues(t, 1, s.L1.Hits)
	require.InDelta(t, 0.5, s.L1.HitRate, 1e-9)
	require.EqualValues(t, 1, s.L1.Entries)
	require.Positive(t, s.L1.Bytes)
	require.Positive(t, s.L2.Bytes)
	require.Positive(t, s.L1.Latency.Count)
	require.Positive(t, s.L2.Latency.P99)

	// b has never seen k: its L1 misses and Redis answers
	require.Equal(t, "q@v0", get(t, b, k, src.load("q")))
	s = b.Stats()
	require.Equal(t, [3]uint64{1, 1, 0}, [3]uint64{s.L1.Misses, s.L2.Hits, s.L2.Misses})
	require.EqualValues(t, 0, s.Loads.Loads)
	require.EqualValues(t, 1, src.loads.Load())

	// a failed load is returned as is and not cached
	boom := errors.New("boom")
	k2 := key(t, "org-1", "search", 2)
	_, err := a.Get(context.Background(), k2, func(context.Context) ([]byte, error) { return nil, boom })
	require.ErrorIs(t, err, boom)
	require.Equal(t, "q@v0", get(t, a, k2, src.load("q")))
	require.EqualValues(t, 1, a.Stats().Loads.Errors)

	// a caller's cancelled context is not a Redis failure
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	k3 := key(t, "org-1", "search", 3)
	_, _ = a.Get(ctx, k3, src.load("q"))
	require.ErrorIs(t, a.InvalidateOrganization(ctx, "org-1"), context.Canceled)
	require.Equal(t, "q@v0", get(t, a, k3, src.load("q")))
	require.Equal(t, cache.HealthOK, a.Health().Status)
	require.Zero(t, a.Stats().L2.Errors)
}

func TestTTL(t *testing.T) {
	t.Parallel()
	rdb := sharedRedis(t)
	var src source
	k := key(t, "org-1", "q")

	t.Run("L1", func(t *testing.T) {
		t.Parallel()
		c := newCache(t, cache.Config{KeyPrefix: prefix(t), L1TTL: 300 * time.Millisecond}, rdb)
		get(t, c, k, src.load("a"))
		get(t, c, k, src.load("a"))
		require.EqualValues(t, 1, c.Stats().L1.Hits)
		time.Sleep(400 * time.Millisecond)
		get(t, c, k, src.load("a"))
		s := c.Stats()
		require.EqualValues(t, 1, s.L1.Hits)
		require.EqualValues(t, 1, s.L1.Expirations)
		require.EqualValues(t, 1, s.L2.Hits, "the value outlives L1 in Redis")
	})
	t.Run("L2", func(t *testing.T) {
		t.Parallel()
		c := newCache(t, cache.Config{KeyPrefix: prefix(t), L1MaxBytes: -1, L2TTL: 500 * time.Millisecond}, rdb)
		get(t, c, k, src.load("b"))
		get(t, c, k, src.load("b"))
		require.EqualValues(t, 1, c.Stats().L2.Hits)
		time.Sleep(700 * time.Millisecond)
		get(t, c, k, src.load("b"))
		s := c.Stats()
		require.EqualValues(t, 1, s.L2.Hits)
		require.EqualValues(t, 2, s.Loads.Loads)
		require.Zero(t, s.L1.Hits+s.L1.Misses, "L1 is off")
	})
	t.Run("per key", func(t *testing.T) {
		t.Parallel()
		c := newCache(t, cache.Config{KeyPrefix: prefix(t), L1MaxBytes: -1, L2TTL: time.Hour}, rdb)
		short := k.WithTTL(400 * time.Millisecond)
		get(t, c, short, src.load("c"))
		get(t, c, short, src.load("c"))
		require.EqualValues(t, 1, c.Stats().L2.Hits)
		time.Sleep(600 * time.Millisecond)
		get(t, c, short, src.load("c"))
		require.EqualValues(t, 2, c.Stats().Loads.Loads, "the key's TTL, not L2TTL, bounded the value's life in Redis")
	})
}

func TestL1ByteBound(t *testing.T) {
	t.Parallel()
	const max = 16 << 10
	c := newCache(t, cache.Config{L1MaxBytes: max}, nil)
	require.Equal(t, cache.HealthL1Only, c.Health().Status)
	value := func(i int) func(context.Context) ([]byte, error) {
		return func(context.Context) ([]byte, error) { return bytes.Repeat([]byte{byte(i)}, 1000), nil }
	}
	keys := make([]cache.Key, 40)
	for i := range keys {
		keys[i] = key(t, "org-1", i)
		get(t, c, keys[i], value(i))
		get(t, c, keys[0], value(0)) // keep the first one recently used
	}
	s := c.Stats()
	require.LessOrEqual(t, s.L1.Bytes, int64(max))
	require.Positive(t, s.L1.Evictions)
	require.EqualValues(t, len(keys)-int(s.L1.Evictions), s.L1.Entries)

	loads := s.Loads.Loads
	get(t, c, keys[0], value(0))
	get(t, c, keys[len(keys)-1], value(len(keys)-1))
	require.Equal(t, loads, c.Stats().Loads.Loads, "the most recently used entries stay")
	get(t, c, keys[1], value(1))
	require.Equal(t, loads+1, c.Stats().Loads.Loads, "the least recently used entry went")

	// a value larger than the bound is served but not kept
	huge := key(t, "org-1", "huge")
	big := func(context.Context) ([]byte, error) { return make([]byte, 2*max), nil }
	get(t, c, huge, big)
	get(t, c, huge, big)
	require.Equal(t, loads+3, c.Stats().Loads.Loads)
}

func TestSingleflight(t *testing.T) {
	t.Parallel()
	rdb := sharedRedis(t)
	c := newCache(t, cache.Config{KeyPrefix: prefix(t)}, rdb)
	var src source
	k := key(t, "org-1", "slow")
	load := func(ctx context.Context) ([]byte, error) {
		time.Sleep(300 * time.Millisecond)
		return src.load("slow")(ctx)
	}
	const n = 50
	var wg sync.WaitGroup
	results := make([]string, n)
	for i := range n {
		wg.Go(func() {
			v, err := c.Get(context.Background(), k, load)
			require.NoError(t, err)
			results[i] = string(v)
		})
	}
	wg.Wait()
	require.EqualValues(t, 1, src.loads.Load())
	for _, r := range results {
		require.Equal(t, "slow@v0", r)
	}
	s := c.Stats()
	require.EqualValues(t, 1, s.Loads.Loads)
	require.EqualValues(t, 1, s.L2.Misses, "one Redis lookup for all")
	// the others shared the load, or (started late on a loaded machine) hit L1
	require.EqualValues(t, n-1, s.Loads.Coalesced+s.L1.Hits)
	require.Positive(t, s.Loads.Coalesced)

	// a Get whose context ends stops waiting; the load goes on for others
	k2 := key(t, "org-1", "slow-2")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := c.Get(ctx, k2, load)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	require.Equal(t, "slow@v0", get(t, c, k2, load))
	require.EqualValues(t, 2, src.loads.Load())
}

func TestInvalidateAcrossInstances(t *testing.T) {
	t.Parallel()
	testInvalidation(t, sharedRedis(t), prefix(t))
}

// testInvalidation runs against a single Redis or a cluster.
func testInvalidation(t *testing.T, rdb redis.UniversalClient, p string) {
	cfg := cache.Config{KeyPrefix: p}
	a, b := newCache(t, cfg, rdb), newCache(t, cfg, rdb)
	strict := newCache(t, cache.Config{KeyPrefix: p, L1MaxBytes: -1}, rdb)
	var org1, org2 source
	k1, k2 := key(t, "org-1", "search"), key(t, "org-2", "search")
	for _, c := range []*cache.Cache{a, b, strict} {
		require.Equal(t, "o1@v0", get(t, c, k1, org1.load("o1")))
		require.Equal(t, "o2@v0", get(t, c, k2, org2.load("o2")))
	}
	require.EqualValues(t, 1, org1.loads.Load())
	require.EqualValues(t, 2, b.Stats().L1.Misses)

	org1.version.Store(1) // new events for org-1
	require.NoError(t, a.InvalidateOrganization(context.Background(), "org-1"))
	// at once on the invalidating instance and through Redis
	require.Equal(t, "o1@v1", get(t, a, k1, org1.load("o1")))
	require.Equal(t, "o1@v1", get(t, strict, k1, org1.load("o1")))
	// on the other instance when the message arrives
	require.Eventually(t, func() bool { return get(t, b, k1, org1.load("o1")) == "o1@v1" },
		5*time.Second, 5*time.Millisecond)
	require.EqualValues(t, 2, org1.loads.Load(), "one load after the invalidation")
	// other organizations keep their entries
	hits := b.Stats().L1.Hits
	require.Equal(t, "o2@v0", get(t, b, k2, org2.load("o2")))
	require.Equal(t, hits+1, b.Stats().L1.Hits)
	require.EqualValues(t, 1, org2.loads.Load())
}

// TestInvalidateDuringLoad: a load that read the database before an
// invalidation and finishes after it must not be served to Gets that start
// after InvalidateOrganization returned, nor be stored.
func TestInvalidateDuringLoad(t *testing.T) {
	t.Parallel()
	rdb := sharedRedis(t)
	p := prefix(t)
	a := newCache(t, cache.Config{KeyPrefix: p}, rdb)
	strict := newCache(t, cache.Config{KeyPrefix: p, L1MaxBytes: -1}, rdb)
	var src source
	k := key(t, "org-1", "search")

	started, release := make(chan struct{}), make(chan struct{})
	slowOld := func(context.Context) ([]byte, error) {
		v := fmt.Appendf(nil, "v%d", src.version.Load()) // reads the database now
		close(started)
		<-release // and finishes late
		return v, nil
	}
	old := make(chan string)
	go func() {
		v, err := a.Get(context.Background(), k, slowOld)
		require.NoError(t, err)
		old <- string(v)
	}()
	<-started
	src.version.Store(1)
	require.NoError(t, a.InvalidateOrganization(context.Background(), "org-1"))

	fresh := func(context.Context) ([]byte, error) { return fmt.Appendf(nil, "v%d", src.version.Load()), nil }
	require.Equal(t, "v1", get(t, a, k, fresh), "a Get after the invalidation does not join the old load")
	close(release)
	require.Equal(t, "v0", <-old, "the old load answers the Get that started it")

	never := func(context.Context) ([]byte, error) { return nil, errors.New("should hit a cache") }
	require.Equal(t, "v1", get(t, a, k, never), "L1 holds the fresh value, not the late one")
	require.Equal(t, "v1", get(t, strict, k, never), "Redis holds the fresh value, not the late one")
}

func TestCompression(t *testing.T) {
	t.Parallel()
	rdb := sharedRedis(t)
	p := prefix(t)
	a := newCache(t, cache.Config{KeyPrefix: p, CompressAbove: 1024}, rdb)
	b := newCache(t, cache.Config{KeyPrefix: p, L1MaxBytes: -1}, rdb)

	var page bytes.Buffer
	for i := range 500 {
		fmt.Fprintf(&page, `{"id":%d,"action":"fhir.patient.read","status":"success","organization_id":"org-1"},`, i)
	}
	random := make([]byte, 8<<10)
	_, _ = rand.Read(random)
	for _, tt := range []struct {
		name   string
		value  []byte
		format byte // 1 raw, 2 S2
	}{
		{"large compressible", page.Bytes(), 2},
		{"small", []byte(`{"events":[]}`), 1},
		{"large incompressible", random, 1},
	} {
		k := key(t, "org-1", tt.name)
		load := func(context.Context) ([]byte, error) { return tt.value, nil }
		require.Equal(t, string(tt.value), get(t, a, k, load))
		never := func(context.Context) ([]byte, error) { return nil, errors.New("should hit Redis") }
		require.Equal(t, string(tt.value), get(t, b, k, never), tt.name)

		keys := scanKeys(t, rdb, p+"q:")
		var raw []byte
		for _, rk := range keys {
			if strings.HasSuffix(rk, k.String()) {
				var err error
				raw, err = rdb.Get(context.Background(), rk).Bytes()
				require.NoError(t, err)
			}
		}
		require.NotNil(t, raw, tt.name)
		require.Equal(t, tt.format, raw[0], tt.name)
		if tt.format == 2 {
			require.Less(t, len(raw), len(tt.value)/4, "stored compressed")
		} else {
			require.Equal(t, tt.value, raw[9:], "stored raw after the 9-byte header")
		}
	}
	require.EqualValues(t, 1, a.Stats().L2.Compressed)
}

// TestNoPersonalDataInRedisKeys: filter values and organization ids appear
// neither in key names nor in invalidation messages.
func TestNoPersonalDataInRedisKeys(t *testing.T) {
	t.Parallel()
	rdb := sharedRedis(t)
	p := prefix(t)
	c := newCache(t, cache.Config{KeyPrefix: p}, rdb)
	sub := rdb.Subscribe(context.Background(), p+"invalidate")
	defer sub.Close()
	_, err := sub.Receive(context.Background()) // subscribed
	require.NoError(t, err)

	const org, patient = "org-st-mary-hospital", "patient-4711-jane-doe"
	k := key(t, org, "search", map[string]string{"target_resource_id": patient})
	get(t, c, k, func(context.Context) ([]byte, error) { return []byte("page"), nil })
	require.NoError(t, c.InvalidateOrganization(context.Background(), org))

	keys := scanKeys(t, rdb, p)
	require.Len(t, keys, 2, "a generation and a value: %v", keys)
	for _, rk := range keys {
		require.NotContains(t, rk, patient)
		require.NotContains(t, rk, org)
	}
	msg, err := sub.ReceiveMessage(context.Background())
	require.NoError(t, err)
	require.NotContains(t, msg.Payload, org)
}

// TestInvalidateUnderLoad: while other goroutines read the key all the
// time, every Get that starts after InvalidateOrganization returned sees
// the data of at least the version written before it.
func TestInvalidateUnderLoad(t *testing.T) {
	t.Parallel()
	rdb := sharedRedis(t)
	p := prefix(t)
	a := newCache(t, cache.Config{KeyPrefix: p}, rdb)
	var version atomic.Int64
	load := func(context.Context) ([]byte, error) {
		v := version.Load()
		time.Sleep(time.Duration(v%3) * 100 * time.Microsecond) // loads of various lengths
		return []byte(strconv.FormatInt(v, 10)), nil
	}
	k := key(t, "org-1", "hot")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				_, _ = a.Get(ctx, k, load)
			}
		})
	}
	for i := int64(1); i <= 100; i++ {
		version.Store(i)
		require.NoError(t, a.InvalidateOrganization(context.Background(), "org-1"))
		v, err := a.Get(context.Background(), k, load)
		require.NoError(t, err)
		n, err := strconv.ParseInt(string(v), 10, 64)
		require.NoError(t, err)
		require.GreaterOrEqual(t, n, i, "stale value after the invalidation returned")
	}
	cancel()
	wg.Wait()
}
