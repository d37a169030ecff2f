package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
)

// Codec turns values of type T into bytes for Redis and back.
type Codec[T any] struct {
	Encode func(T) ([]byte, error)
	Decode func([]byte) (T, error)
	// Copies says that Decode keeps nothing of its argument (no slice of
	// it, no pointer into it) once it returns, so the cache may decompress
	// values into a buffer it reuses: about 20 KB less garbage per L2 hit of
	// a 100-event page. Leave it false for a Decode that may alias its
	// input.
	Copies bool
}

// JSONCodec is the Codec of encoding/json.
func JSONCodec[T any]() Codec[T] {
	return Codec[T]{
		Encode: func(v T) ([]byte, error) { return json.Marshal(v) },
		Decode: func(b []byte) (T, error) {
			var v T
			err := json.Unmarshal(b, &v)
			return v, err
		},
		Copies: true, // encoding/json copies what it decodes
	}
}

// Typed is a Cache for values of type T whose L1 keeps them decoded, so
// an L1 hit costs no decoding (decoding a page of 100 events from JSON
// costs about as much as querying it; see BENCHMARKS.md), while Redis
// keeps them encoded with the codec. L1 counts an entry's size as its
// encoded length. Typed shares the Cache's levels, statistics and
// invalidation.
type Typed[T any] struct {
	c     *Cache
	codec Codec[T]
	view  view
}

// NewTyped returns the view of c for values of type T.
func NewTyped[T any](c *Cache, codec Codec[T]) *Typed[T] {
	t := reflect.TypeFor[T]()
	return &Typed[T]{c: c, codec: codec, view: view{
		// apart from []byte entries of Get and other types' entries
		name:   "#" + t.PkgPath() + "." + t.String(),
		decode: func(b []byte) (any, error) { return codec.Decode(b) },
		copies: codec.Copies,
	}}
}

// Get is Cache.Get for values of type T. The value returned is shared
// with the cache and other callers, like Cache.Get's slice: read it, never
// modify it (nor anything it points to).
func (t *Typed[T]) Get(ctx context.Context, key Key, load func(context.Context) (T, error)) (T, error) {
	if v, ok := t.c.hit(key, t.view); ok {
		return v.(T), nil
	}
	v, err := t.c.miss(ctx, key, t.view, func(ctx context.Context) (any, []byte, error) {
		v, err := load(ctx)
		if err != nil {
			return nil, nil, err
		}
		b, err := t.codec.Encode(v)
		if err != nil {
			return nil, nil, fmt.Errorf("cache: encode: %w", err)
		}
		return v, b, nil
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return v.(T), nil
}
