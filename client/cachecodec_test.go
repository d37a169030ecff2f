package client

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCacheCodecRoundTrip(t *testing.T) {
	t.Parallel()
	full := StoredEvent{Event: validEvent(3), ID: 42, ChainID: 7, ChainSeq: 9,
		RecordedAt: time.UnixMicro(1764000000123456).UTC(), Hash: "ab12"}
	full.SourceIP = netip.MustParseAddr("2001:db8::1")
	full.Details = map[string]any{"n": json.Number("1e400"), "list": []any{"x", json.Number("2"), true, nil,
		map[string]any{"deep": false}}, "s": "ünïcode \x00"}
	bare := StoredEvent{Event: Event{Timestamp: time.UnixMicro(0).UTC(), Action: "a", Status: StatusFailure},
		ID: 1, RecordedAt: time.UnixMicro(5).UTC()}
	page := Page{Events: []StoredEvent{full, bare}, Next: &Cursor{Timestamp: time.UnixMicro(77).UTC(), ID: 2}}

	pc := pageCodec()
	b, err := pc.Encode(page)
	require.NoError(t, err)
	got, err := pc.Decode(b)
	require.NoError(t, err)
	require.Equal(t, page, got)

	ec := eventCodec()
	b, err = ec.Encode(full)
	require.NoError(t, err)
	e, err := ec.Decode(b)
	require.NoError(t, err)
	require.Equal(t, full, e)

	cc := countCodec()
	b, err = cc.Encode(-12345)
	require.NoError(t, err)
	n, err := cc.Decode(b)
	require.NoError(t, err)
	require.EqualValues(t, -12345, n)

	// anything malformed is an error (the cache then loads afresh), never a panic
	b, err = pc.Encode(page)
	require.NoError(t, err)
	for _, bad := range [][]byte{nil, {9}, b[:len(b)/2], append(append([]byte{}, b...), 0), {cacheCodecVersion, 0xff, 0xff, 0xff, 0xff, 0x0f}} {
		_, err := pc.Decode(bad)
		require.ErrorIs(t, err, errCacheCodec)
	}
}
