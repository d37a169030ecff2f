package cache_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/cache"
)

type page struct {
	Events []string
	Next   string
}

// countingCodec is JSON that counts decodes, and fails them while broken.
type countingCodec struct {
	decodes atomic.Int64
	broken  atomic.Bool
}

func (cc *countingCodec) codec() cache.Codec[page] {
	j := cache.JSONCodec[page]()
	return cache.Codec[page]{Encode: j.Encode, Decode: func(b []byte) (page, error) {
		cc.decodes.Add(1)
		if cc.broken.Load() {
			return page{}, errors.New("unknown shape")
		}
		return j.Decode(b)
	}}
}

func TestTyped(t *testing.T) {
	t.Parallel()
	rdb := sharedRedis(t)
	p := prefix(t)
	var codec countingCodec
	a := cache.NewTyped(newCache(t, cache.Config{KeyPrefix: p}, rdb), codec.codec())
	bCache := newCache(t, cache.Config{KeyPrefix: p}, rdb)
	b := cache.NewTyped(bCache, codec.codec())
	ctx := context.Background()
	k := key(t, "org-1", "search")
	want := page{Events: []string{"e1", "e2"}, Next: "c"}
	loads := 0
	load := func(context.Context) (page, error) { loads++; return want, nil }

	for range 3 {
		v, err := a.Get(ctx, k, load)
		require.NoError(t, err)
		require.Equal(t, want, v)
	}
	require.Equal(t, 1, loads)
	require.Zero(t, codec.decodes.Load(), "L1 keeps the decoded value")

	for range 3 {
		v, err := b.Get(ctx, k, load)
		require.NoError(t, err)
		require.Equal(t, want, v)
	}
	require.Equal(t, 1, loads)
	require.EqualValues(t, 1, codec.decodes.Load(), "decoded once, from Redis")

	// Get of the same key shares Redis's bytes but not L1's entries
	raw, err := bCache.Get(ctx, k, func(context.Context) ([]byte, error) { return nil, errors.New("should hit") })
	require.NoError(t, err)
	want2, err := json.Marshal(want)
	require.NoError(t, err)
	require.JSONEq(t, string(want2), string(raw))

	// a value Redis holds that no longer decodes is replaced by a load
	codec.broken.Store(true)
	c := cache.NewTyped(newCache(t, cache.Config{KeyPrefix: p}, rdb), codec.codec())
	v, err := c.Get(ctx, k, load)
	require.NoError(t, err)
	require.Equal(t, want, v)
	require.Equal(t, 2, loads)

	// an encoding error is returned
	bad := cache.NewTyped(bCache, cache.JSONCodec[chan int]())
	_, err = bad.Get(ctx, key(t, "org-1", "chan"), func(context.Context) (chan int, error) { return make(chan int), nil })
	require.ErrorContains(t, err, "cache: encode")
}

// The Get leading a read decodes Redis's value on its own goroutine; a
// Get of the same key meanwhile shares that decode, and when the codec
// panics the panic reaches the leader's caller while the others get an
// error instead of waiting forever.
func TestTypedLeaderDecodes(t *testing.T) {
	t.Parallel()
	rdb := sharedRedis(t)
	p := prefix(t)
	ctx := context.Background()
	k := key(t, "org-1", "search")
	want := page{Events: []string{"e1"}}
	writer := cache.NewTyped(newCache(t, cache.Config{KeyPrefix: p}, rdb), cache.JSONCodec[page]())
	_, err := writer.Get(ctx, k, func(context.Context) (page, error) { return want, nil })
	require.NoError(t, err)
	noLoad := func(context.Context) (page, error) { return page{}, errors.New("should hit Redis") }

	for _, panics := range []bool{false, true} {
		entered, release := make(chan struct{}), make(chan struct{})
		var decodes atomic.Int64
		j := cache.JSONCodec[page]()
		c := newCache(t, cache.Config{KeyPrefix: p, L1MaxBytes: -1}, rdb)
		r := cache.NewTyped(c, cache.Codec[page]{Encode: j.Encode, Decode: func(b []byte) (page, error) {
			decodes.Add(1)
			close(entered)
			<-release
			if panics {
				panic("codec bug")
			}
			return j.Decode(b)
		}})
		leader := make(chan any, 1)
		go func() {
			defer func() { leader <- recover() }()
			v, err := r.Get(ctx, k, noLoad)
			require.NoError(t, err)
			require.Equal(t, want, v)
		}()
		<-entered
		follower := make(chan error, 1)
		go func() {
			v, err := r.Get(ctx, k, noLoad)
			if err == nil && !reflect.DeepEqual(v, want) {
				err = errors.New("follower got another value")
			}
			follower <- err
		}()
		require.Eventually(t, func() bool { return c.Stats().Loads.Coalesced == 1 }, 5*time.Second, time.Millisecond)
		close(release)
		if panics {
			require.Equal(t, "codec bug", <-leader)
			require.ErrorContains(t, <-follower, "panicked")
		} else {
			require.Nil(t, <-leader)
			require.NoError(t, <-follower)
		}
		require.EqualValues(t, 1, decodes.Load(), "one decode for both")
	}
}

// A codec that may keep its input (here, returning it) gets bytes of its
// own on every L2 hit: a value already returned is never overwritten by
// the next hit's decompression.
func TestTypedAliasingCodec(t *testing.T) {
	t.Parallel()
	rdb := sharedRedis(t)
	p := prefix(t)
	ctx := context.Background()
	identity := cache.Codec[[]byte]{
		Encode: func(b []byte) ([]byte, error) { return b, nil },
		Decode: func(b []byte) ([]byte, error) { return b, nil },
	}
	writer := cache.NewTyped(newCache(t, cache.Config{KeyPrefix: p}, rdb), identity)
	reader := cache.NewTyped(newCache(t, cache.Config{KeyPrefix: p, L1MaxBytes: -1}, rdb), identity)
	values := map[string][]byte{}
	for _, name := range []string{"a", "b", "c"} {
		v := bytes.Repeat([]byte(name), 4096) // compressed in Redis
		values[name] = v
		_, err := writer.Get(ctx, key(t, "org-1", name), func(context.Context) ([]byte, error) { return v, nil })
		require.NoError(t, err)
	}
	noLoad := func(context.Context) ([]byte, error) { return nil, errors.New("should hit Redis") }
	got := map[string][]byte{}
	for _, name := range []string{"a", "b", "c"} {
		v, err := reader.Get(ctx, key(t, "org-1", name), noLoad)
		require.NoError(t, err)
		got[name] = v
	}
	require.Equal(t, values, got)
}
