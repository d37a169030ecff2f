package workers

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/objstore"
	"github.com/auditdb/auditdb/tests/harness"
)

// TestRetentionIntoS3 runs retention into a real S3 server, end to end:
// archives uploaded, read back and verified, manifests sealed, rows
// removed, the log still intact and every archive accounted for. With
// Object Lock and ArchiveRetain the archives are COMPLIANCE-locked, and the
// server refuses to delete them or replace the locked version.
func TestRetentionIntoS3(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		lock   bool
		retain time.Duration
	}{
		{"ObjectLock", true, time.Hour},
		{"NoLock", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := harness.NewDB(t)
			keys := testKeys(t)
			bucket := harness.SharedS3().NewBucket(t, tc.lock)
			loc := "s3://" + bucket + "/audit/archives"
			insertTx(t, db.Pool, rowsOf(40, "minimal", "PUBLIC", "200 days"), rowsOf(1, "minimal", "PUBLIC", "0 days"))
			deps := &Deps{Pool: db.Pool, Keys: keys}
			cfg := &RetentionConfig{ArchiveSink: loc, ArchiveRetain: tc.retain, MaxRowsPerArchive: 25}
			start := time.Now()
			res, err := deps.RunRetention(ctx, cfg, RetentionRunOptions{})
			require.NoError(t, err)
			require.Len(t, res.Archives, 2)
			require.EqualValues(t, 40, res.RowsRemoved)
			requireIntact(t, db.Pool, keys)
			requireArchivesAccountFor(t, db.Pool, keys, loc, 41)
			for _, a := range res.Archives {
				require.True(t, strings.HasPrefix(a.URI, loc+"/"), a.URI)
				if !tc.lock {
					require.Nil(t, a.RetainUntil, "the rows' retention has ended and no ArchiveRetain was asked")
					require.False(t, a.Locked)
					continue
				}
				require.NotNil(t, a.RetainUntil)
				require.WithinDuration(t, start.Add(tc.retain), *a.RetainUntil, time.Minute)
				require.True(t, a.Locked, "the bucket enforces the retention")
			}
			plan, err := deps.PlanRetention(ctx, cfg)
			require.NoError(t, err)
			require.Empty(t, plan.Unsealed)
			if !tc.lock {
				return
			}

			st, err := objstore.Open(ctx, loc)
			require.NoError(t, err)
			name := res.Archives[0].Name
			require.ErrorIs(t, st.Delete(ctx, name), objstore.ErrRetained)
			_, err = st.Put(ctx, name, strings.NewReader("forged"), objstore.PutOptions{})
			require.ErrorIs(t, err, objstore.ErrExists)
			// around objstore, as the account's root: the locked version
			// cannot be deleted, and an overwrite leaves it intact
			raw := harness.SharedS3().Client()
			key := "audit/archives/" + name
			head, err := raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
			require.NoError(t, err)
			_, err = raw.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: &key, VersionId: head.VersionId})
			require.Error(t, err)
			_, _ = raw.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: strings.NewReader("forged")})
			got, err := raw.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key, VersionId: head.VersionId})
			require.NoError(t, err)
			b, _ := io.ReadAll(got.Body)
			got.Body.Close()
			require.Equal(t, aws.ToInt64(head.ContentLength), int64(len(b)))
			require.NotEqual(t, "forged", string(b))
		})
	}
}

// TestArchiveRetainUntil checks the rows' own retention end: the latest
// row timestamp plus its (policy, classification)'s effective days.
func TestArchiveRetainUntil(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	insertTx(t, db.Pool, rowsOf(3, "minimal", "PUBLIC", "10 days"), rowsOf(2, "standard", "INTERNAL", "20 days"))
	chain := int16(count(t, db.Pool, `SELECT min(chain_id) FROM audit.audit_log`))
	var newestMinimal, newestStandard time.Time
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT max("timestamp") FILTER (WHERE retention_policy = 'minimal'),
		max("timestamp") FILTER (WHERE retention_policy = 'standard') FROM audit.audit_log`).Scan(&newestMinimal, &newestStandard))
	plan := &RetentionPlan{At: time.Now(), Policies: []RetentionPolicy{
		{Policy: "minimal", Classification: "PUBLIC", EffectiveDays: 1000},
		{Policy: "standard", Classification: "INTERNAL", EffectiveDays: 900},
	}}
	d := &Deps{Pool: db.Pool}
	got, err := d.archiveRetainUntil(ctx, (&RetentionConfig{}).WithDefaults(), plan, []integrity.ArchiveRange{{ChainID: chain, FirstSeq: 1, LastSeq: 5}})
	require.NoError(t, err)
	want := newestMinimal.AddDate(0, 0, 1000) // later than standard's +900 days
	require.WithinDuration(t, want, got, time.Millisecond)
	// ArchiveRetain wins when later
	got, err = d.archiveRetainUntil(ctx, &RetentionConfig{ArchiveRetain: 10 * 365 * 24 * time.Hour}, plan, []integrity.ArchiveRange{{ChainID: chain, FirstSeq: 1, LastSeq: 5}})
	require.NoError(t, err)
	require.WithinDuration(t, plan.At.Add(10*365*24*time.Hour), got, time.Millisecond)
	// a past date asks for nothing
	plan.Policies[0].EffectiveDays, plan.Policies[1].EffectiveDays = 1, 1
	got, err = d.archiveRetainUntil(ctx, (&RetentionConfig{}).WithDefaults(), plan, []integrity.ArchiveRange{{ChainID: chain, FirstSeq: 1, LastSeq: 5}})
	require.NoError(t, err)
	require.True(t, got.IsZero())
}

// TestRetentionS3BadInput: a missing bucket and a truncated archive each
// give one line naming the archive (or bucket), and no live row goes.
func TestRetentionS3BadInput(t *testing.T) {
	t.Parallel()
	t.Run("MissingBucket", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		db := harness.NewDB(t)
		insertTx(t, db.Pool, rowsOf(10, "minimal", "PUBLIC", "200 days"))
		_, err := (&Deps{Pool: db.Pool, Keys: testKeys(t)}).RunRetention(ctx, &RetentionConfig{ArchiveSink: "s3://no-such-archive-bucket/x"}, RetentionRunOptions{})
		require.ErrorContains(t, err, "no-such-archive-bucket")
		require.ErrorContains(t, err, "does not exist")
		require.NotContains(t, err.Error(), "\n")
		require.NotContains(t, err.Error(), harness.SharedS3().SecretAccessKey)
		require.EqualValues(t, 10, count(t, db.Pool, `SELECT count(*) FROM audit.audit_log`))
		require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM audit.archive_manifests`))
	})
	t.Run("TruncatedArchive", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		db := harness.NewDB(t)
		keys := testKeys(t)
		bucket := harness.SharedS3().NewBucket(t, false)
		loc := "s3://" + bucket + "/a"
		insertTx(t, db.Pool, rowsOf(30, "minimal", "PUBLIC", "200 days"))
		// stop the run right after sealing: rows present, manifests sealed
		rctx, cancel := context.WithCancel(ctx)
		deps := &Deps{Pool: db.Pool, Keys: keys}
		_, err := deps.RunRetention(rctx, &RetentionConfig{ArchiveSink: loc, StepHook: func(step string) {
			if step == "manifests_sealed" {
				cancel()
			}
		}}, RetentionRunOptions{})
		cancel()
		require.Error(t, err)
		require.EqualValues(t, 30, count(t, db.Pool, `SELECT count(*) FROM audit.audit_log`))
		var uri string
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT archive_uri FROM audit.archive_manifests LIMIT 1`).Scan(&uri))
		name := ArchiveNameFromURI(uri)

		// someone with write access truncates the object (no Object Lock here)
		raw := harness.SharedS3().Client()
		key := "a/" + name
		got, err := raw.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
		require.NoError(t, err)
		full, err := io.ReadAll(got.Body)
		got.Body.Close()
		require.NoError(t, err)
		_, err = raw.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(full[:len(full)/2])})
		require.NoError(t, err)

		_, err = deps.RunRetention(ctx, &RetentionConfig{ArchiveSink: loc}, RetentionRunOptions{})
		require.Error(t, err)
		require.ErrorContains(t, err, "archive "+name)
		require.NotContains(t, err.Error(), "\n")
		t.Log(err)
		require.EqualValues(t, 30, count(t, db.Pool, `SELECT count(*) FROM audit.audit_log`), "no live row is removed on a bad archive")
		requireIntact(t, db.Pool, keys)
	})
}
