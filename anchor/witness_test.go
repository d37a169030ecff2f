package anchor

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/integrity"
)

const testLog = "0b9a3c1d-2e4f-4a6b-8c7d-9e0f1a2b3c4d"

type logWriter struct {
	t      *testing.T
	sink   Sink
	signer *integrity.AnchorSigner
	prev   string
	n      int64
	heads  []integrity.AnchorHead
}

func newLogWriter(t *testing.T, sink Sink) *logWriter {
	line, err := integrity.GenerateAnchorKey("log")
	require.NoError(t, err)
	s, err := integrity.ParseAnchorPrivateKey(line, "test")
	require.NoError(t, err)
	heads := make([]integrity.AnchorHead, 4)
	for c := range heads {
		g := integrity.Genesis(int16(c))
		heads[c] = integrity.AnchorHead{Chain: int16(c), Hash: hex.EncodeToString(g[:])}
	}
	return &logWriter{t: t, sink: sink, signer: s, prev: integrity.ZeroHash, heads: heads}
}

// next anchors chain 2 advanced by step rows, with a hash naming tag.
func (w *logWriter) next(step int64, tag string) *integrity.Bundle {
	w.t.Helper()
	w.n++
	heads := append([]integrity.AnchorHead(nil), w.heads...)
	heads[2].Seq += step
	heads[2].Hash = fmt.Sprintf("%064x", heads[2].Seq*1000+int64(len(tag)))
	b := integrity.NewBundle(testLog, w.n, w.prev, time.Now().UnixMicro(), heads)
	b.Signatures = append(b.Signatures, w.signer.Sign(b.Message()))
	_, _, err := Publish(context.Background(), w.sink, b, time.Time{})
	require.NoError(w.t, err)
	w.prev, w.heads = b.MessageSHA256(), heads
	return b
}

func (w *logWriter) keys() integrity.AnchorKeys {
	k, err := integrity.ParseAnchorKeys(w.signer.PublicLine(), "test")
	require.NoError(w.t, err)
	return k
}

func witnessKey(t *testing.T) (*integrity.AnchorSigner, integrity.AnchorKeys) {
	line, err := integrity.GenerateAnchorKey("witness-1")
	require.NoError(t, err)
	s, err := integrity.ParseAnchorPrivateKey(line, "test")
	require.NoError(t, err)
	k, err := integrity.ParseAnchorKeys(s.PublicLine(), "test")
	require.NoError(t, err)
	return s, k
}

func TestWitnessCosignsAndRefusesAForkForever(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	sink, err := OpenSink(ctx, dir)
	require.NoError(t, err)
	w := newLogWriter(t, sink)
	wit, witPub := witnessKey(t)
	opts := WitnessOptions{LogKeys: w.keys(), Signer: wit, StateDir: t.TempDir()}

	w.next(10, "a")
	w.next(5, "b")
	rep, err := Cosign(ctx, sink, opts)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2}, rep.Cosigned)
	rep, err = Cosign(ctx, sink, opts)
	require.NoError(t, err)
	require.Empty(t, rep.Cosigned, "nothing new")
	require.Equal(t, 2, rep.Checked)

	// verification counts the witness: two keys, two signatures each
	both := w.keys()
	for id, k := range witPub {
		both[id] = k
	}
	ar, err := Check(ctx, sink, integrity.AnchorOptions{LogID: testLog, Keys: both, MinSignatures: 2})
	require.NoError(t, err)
	require.Empty(t, ar.Findings)
	require.Equal(t, 2, ar.Cosignatures)
	// without the witness's key its cosignature is an unknown key
	ar, err = Check(ctx, sink, integrity.AnchorOptions{LogID: testLog, Keys: w.keys()})
	require.NoError(t, err)
	require.Len(t, ar.Findings, 2)
	require.Equal(t, integrity.AnchorForged, ar.Findings[0].Kind)

	// A chain going backwards is refused and not signed (and, bundle 3
	// being write-once, the witness stops there until a person looks).
	w.next(-3, "c")
	_, err = Cosign(ctx, sink, opts)
	require.ErrorIs(t, err, ErrRefused)
	require.ErrorContains(t, err, "chain 2 goes back from seq 15 to 12")
	_, err = os.Stat(filepath.Join(dir, integrity.CosigKey(testLog, 3, "witness-1")))
	require.True(t, os.IsNotExist(err), "no cosignature of a refused bundle")

	// The operator rewrites history from bundle 2 on: deletes bundles 2
	// and 3 (a directory sink lets them) and anchors another bundle 2.
	for _, n := range []int64{2, 3} {
		require.NoError(t, os.Remove(filepath.Join(dir, integrity.BundleKey(testLog, n))))
	}
	require.NoError(t, os.Remove(filepath.Join(dir, integrity.CosigKey(testLog, 2, "witness-1"))))
	w.n, w.prev, w.heads = 1, "", nil
	b1, err := os.ReadFile(filepath.Join(dir, integrity.BundleKey(testLog, 1)))
	require.NoError(t, err)
	first, err := integrity.ParseBundle(b1)
	require.NoError(t, err)
	w.prev, w.heads = first.MessageSHA256(), first.Heads
	w.next(5, "forged history")
	_, err = Cosign(ctx, sink, opts)
	require.ErrorIs(t, err, ErrForked)
	require.ErrorContains(t, err, "bundle 2 in the sink is not the bundle 2 this witness cosigned")

	// forever: even with the sink put back as it was, the log stays refused
	require.NoError(t, os.Remove(filepath.Join(dir, integrity.BundleKey(testLog, 2))))
	_, err = Cosign(ctx, sink, opts)
	require.ErrorIs(t, err, ErrForked)
	require.ErrorContains(t, err, "refused for good")
}

func TestWitnessRefusesBadBundles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		do   func(t *testing.T, dir string, w *logWriter)
		want string
	}{
		{"not JSON", func(t *testing.T, dir string, w *logWriter) {
			require.NoError(t, os.MkdirAll(filepath.Join(dir, testLog), 0o700))
			require.NoError(t, os.WriteFile(filepath.Join(dir, integrity.BundleKey(testLog, 1)), []byte("{"), 0o600))
		}, "not JSON"},
		{"signed by another key", func(t *testing.T, dir string, w *logWriter) {
			other, _ := witnessKey(t)
			w.signer = other
			w.next(1, "x")
		}, "not among the anchor keys"},
		{"bundle 1 with a prev", func(t *testing.T, dir string, w *logWriter) {
			w.prev = fmt.Sprintf("%064x", 7)
			w.next(1, "x")
		}, "bundle 1's prev must be 64 zeros"},
		{"gap", func(t *testing.T, dir string, w *logWriter) {
			w.n = 1
			w.next(1, "x")
		}, "bundle 1 is missing from the sink"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			sink, err := OpenSink(ctx, dir)
			require.NoError(t, err)
			w := newLogWriter(t, sink)
			keys := w.keys()
			tc.do(t, dir, w)
			wit, _ := witnessKey(t)
			_, err = Cosign(ctx, sink, WitnessOptions{LogID: testLog, LogKeys: keys, Signer: wit, StateDir: t.TempDir()})
			require.ErrorIs(t, err, ErrRefused)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestPublishNeverOverwrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sink, err := OpenSink(ctx, t.TempDir())
	require.NoError(t, err)
	w := newLogWriter(t, sink)
	b := w.next(3, "a")
	written, _, err := Publish(ctx, sink, b, time.Time{})
	require.NoError(t, err)
	require.False(t, written, "the same statement is there already")
	other := integrity.NewBundle(b.Log, b.Bundle, b.Prev, b.TimeUS+1, b.Heads)
	other.Signatures = append(other.Signatures, w.signer.Sign(other.Message()))
	_, _, err = Publish(ctx, sink, other, time.Time{})
	require.ErrorIs(t, err, ErrConflict)
	got, err := sink.Get(ctx, integrity.BundleKey(b.Log, b.Bundle))
	require.NoError(t, err)
	require.Equal(t, integrity.MarshalBundle(b), got)
}
