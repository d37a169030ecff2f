package workers

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/internal/objstore"
	"github.com/auditdb/auditdb/tests/harness"
)

func TestArchiveSink(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		location func(t *testing.T) string
		uri      string
	}{
		{"Dir", func(t *testing.T) string { return filepath.Join(t.TempDir(), "archives") }, "file://"},
		{"S3", func(t *testing.T) string { return "s3://" + harness.SharedS3().NewBucket(t, false) + "/archives" }, "s3://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			loc := tc.location(t)
			sink, err := openArchiveSink(ctx, loc)
			require.NoError(t, err)
			info, err := sink.put(ctx, "a.jsonl.gz", strings.NewReader("archive bytes"), time.Time{})
			require.NoError(t, err)
			require.Equal(t, int64(13), info.Size)
			_, err = sink.put(ctx, "a.jsonl.gz", strings.NewReader("other bytes"), time.Time{})
			require.ErrorIs(t, err, objstore.ErrExists, "an archive is never replaced")
			require.ErrorContains(t, err, "archive a.jsonl.gz")

			uri := sink.uri("a.jsonl.gz")
			require.True(t, strings.HasPrefix(uri, tc.uri), uri)
			require.True(t, strings.HasSuffix(uri, "/archives/a.jsonl.gz"), uri)
			rc, err := sink.open(ctx, ArchiveNameFromURI(uri))
			require.NoError(t, err)
			b, err := io.ReadAll(rc)
			require.NoError(t, err)
			rc.Close()
			require.Equal(t, "archive bytes", string(b))

			// objects under deeper keys (another tool's) are not archives
			_, err = sink.store.Put(ctx, "nested/x", bytes.NewReader(nil), objstore.PutOptions{})
			require.NoError(t, err)
			names, err := sink.list(ctx)
			require.NoError(t, err)
			require.Equal(t, []string{"a.jsonl.gz"}, names)

			_, err = sink.open(ctx, "missing.jsonl.gz")
			require.ErrorIs(t, err, objstore.ErrNotFound)
			require.ErrorContains(t, err, "archive missing.jsonl.gz")
			_, err = sink.put(ctx, "../x", strings.NewReader(""), time.Time{})
			require.ErrorContains(t, err, "plain file name")
		})
	}
	require.Equal(t, "x.jsonl.gz", ArchiveNameFromURI("s3://bucket/prefix/x.jsonl.gz"))
	require.Equal(t, "x.jsonl.gz", ArchiveNameFromURI("file:///a/b/x.jsonl.gz"))
}

func TestRetentionConfigDefaults(t *testing.T) {
	t.Parallel()
	cfg := (&RetentionConfig{}).WithDefaults()
	require.Equal(t, RetentionArchiveDirDefault, cfg.ArchiveDir)
	require.Equal(t, RetentionArchiveDirDefault, cfg.ArchiveSink, "the sink defaults to the directory")
	cfg = (&RetentionConfig{ArchiveDir: "/x", ArchiveSink: "s3://b/p"}).WithDefaults()
	require.Equal(t, "s3://b/p", cfg.ArchiveSink)
	require.ErrorContains(t, (&RetentionConfig{ArchiveRetain: -time.Second}).WithDefaults().Validate(), "ArchiveRetain")
}

func TestRetentionConfig(t *testing.T) {
	t.Parallel()
	var nilCfg *RetentionConfig
	cfg := nilCfg.WithDefaults()
	require.Equal(t, RetentionArchiveDirDefault, cfg.ArchiveDir)
	require.Equal(t, RetentionMaxRowsPerArchiveDefault, cfg.MaxRowsPerArchive)
	require.Equal(t, RetentionIntervalDefault, cfg.Interval)
	require.NoError(t, cfg.Validate())
	bad := *cfg
	bad.MaxRowsPerArchive = -1
	require.ErrorContains(t, bad.Validate(), "MaxRowsPerArchive: must be at least 1")
	require.Equal(t, RetentionKind, RetentionArgs{}.Kind())
}
