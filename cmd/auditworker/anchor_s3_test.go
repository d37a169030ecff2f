package main

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/anchor"
	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/tests/harness"
	"github.com/auditdb/auditdb/workers"
)

// Bundles in a real S3-compatible server (the harness's versitygw) with
// Object Lock: written in COMPLIANCE mode until --anchor-retain, never
// overwritten, not deletable early even around objstore; verification reads
// them back from the bucket.
func TestAnchorsInS3WithObjectLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	bucket := harness.SharedS3().NewBucket(t, true)
	sink := "s3://" + bucket + "/anchors"
	priv, pub := anchorKeyPair(t, "a1")
	fillChains(t, db.URL, 2, 20)
	start := time.Now()
	code, out, errOut := run(t, "--database-url", db.URL, "anchor", "--anchor-key", priv, "--sink", sink, "--anchor-retain", "48h", "--json")
	require.Equal(t, 0, code, errOut)
	var rep workers.AnchorReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.True(t, rep.Locked, "the bucket applied Object Lock")
	require.WithinDuration(t, start.Add(48*time.Hour), rep.RetainUntil, time.Minute)
	require.Equal(t, sink, rep.Sink)
	fillChains(t, db.URL, 1, 5)
	code, out, errOut = run(t, "--database-url", db.URL, "anchor", "--anchor-key", priv, "--sink", sink, "--anchor-retain", "48h")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "Object Lock COMPLIANCE until")

	code, out, _ = run(t, "--database-url", db.URL, "verify", "--anchors", sink, "--anchor-keys", pub)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "2 bundle(s) read, 2 trusted")

	// Around the anchor job: the sink refuses a second bundle 1
	key := "anchors/" + integrity.BundleKey(rep.LogID, 1)
	s, err := anchor.OpenSink(ctx, sink)
	require.NoError(t, err)
	_, err = s.Put(ctx, integrity.BundleKey(rep.LogID, 1), []byte("{}"), time.Time{})
	require.ErrorIs(t, err, anchor.ErrExists)
	// around objstore, with the account's own credentials: COMPLIANCE mode
	// on the version, which cannot be deleted, and survives an overwrite
	raw := harness.SharedS3().Client()
	head, err := raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
	require.NoError(t, err)
	require.Equal(t, types.ObjectLockModeCompliance, head.ObjectLockMode)
	require.WithinDuration(t, start.Add(48*time.Hour), aws.ToTime(head.ObjectLockRetainUntilDate), time.Minute)
	_, err = raw.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: &key, VersionId: head.VersionId})
	require.Error(t, err, "a locked bundle cannot be deleted before its date")
	_, _ = raw.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: strings.NewReader("forged")})
	got, err := raw.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key, VersionId: head.VersionId})
	require.NoError(t, err)
	b, err := io.ReadAll(got.Body)
	got.Body.Close()
	require.NoError(t, err)
	_, err = integrity.ParseBundle(b)
	require.NoError(t, err, "the locked version is still the bundle")
	// a newer version shadowing it is what a reader of the key sees: it
	// does not verify (no anchor key), and is reported
	code, out, _ = run(t, "--database-url", db.URL, "verify", "--anchors", sink, "--anchor-keys", pub)
	require.Equal(t, 2, code, out)
	require.Contains(t, out, "anchor_forged")
}
