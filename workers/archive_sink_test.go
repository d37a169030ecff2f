package workers

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLocalDirSink(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "archives")
	sink, err := NewLocalDirSink(dir)
	require.NoError(t, err)

	obj, err := sink.Create(ctx, "a.jsonl.gz")
	require.NoError(t, err)
	_, err = obj.Write([]byte("hello"))
	require.NoError(t, err)
	names, err := sink.List(ctx)
	require.NoError(t, err)
	require.Empty(t, names, "nothing is visible before Commit")
	_, err = sink.Open(ctx, "a.jsonl.gz")
	require.ErrorIs(t, err, os.ErrNotExist)
	require.NoError(t, obj.Commit())
	require.NoError(t, obj.Abort(), "Abort after Commit does nothing")

	rc, err := sink.Open(ctx, ArchiveNameFromURI(sink.URI("a.jsonl.gz")))
	require.NoError(t, err)
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	require.Equal(t, "hello", string(b))

	obj, err = sink.Create(ctx, "b.jsonl.gz")
	require.NoError(t, err)
	_, err = obj.Write([]byte("partial"))
	require.NoError(t, err)
	require.NoError(t, obj.Abort())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "an aborted object leaves no file, temporary or not")
	names, err = sink.List(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"a.jsonl.gz"}, names)

	for _, bad := range []string{"", "../x", "a/b", ".hidden"} {
		_, err := sink.Create(ctx, bad)
		require.ErrorContains(t, err, "must be a plain file name", bad)
	}
	require.Equal(t, "x.jsonl.gz", ArchiveNameFromURI("s3://bucket/prefix/x.jsonl.gz"))
	_, err = NewLocalDirSink("")
	require.ErrorContains(t, err, "archive directory: must not be empty")
}

func TestRetentionConfig(t *testing.T) {
	t.Parallel()
	var nilCfg *RetentionConfig
	cfg := nilCfg.WithDefaults()
	require.Empty(t, cfg.ArchiveDir, "no default archive location: retention is opt-in")
	require.False(t, cfg.HasArchiveLocation())
	require.Equal(t, RetentionMaxRowsPerArchiveDefault, cfg.MaxRowsPerArchive)
	require.Equal(t, RetentionIntervalDefault, cfg.Interval)
	require.NoError(t, cfg.Validate())
	bad := *cfg
	bad.MaxRowsPerArchive = -1
	require.ErrorContains(t, bad.Validate(), "MaxRowsPerArchive: must be at least 1")
	rel := *cfg
	rel.ArchiveDir = "archive"
	require.ErrorContains(t, rel.Validate(), "ArchiveDir: must be an absolute path")
	require.True(t, rel.HasArchiveLocation())
	require.Equal(t, RetentionKind, RetentionArgs{}.Kind())
}
