package objstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/stretchr/testify/require"

	. "github.com/auditdb/auditdb/internal/objstore"
	"github.com/auditdb/auditdb/tests/harness"
)

func newS3(t *testing.T, lock bool, prefix string) *S3 {
	t.Helper()
	needS3(t)
	bucket := s3srv.NewBucket(t, lock)
	s, err := NewS3(context.Background(), s3srv.Config(bucket, prefix))
	require.NoError(t, err)
	return s
}

func TestS3Contract(t *testing.T) {
	t.Parallel()
	t.Run("Plain", func(t *testing.T) {
		t.Parallel()
		testContract(t, func(t *testing.T) Store { return newS3(t, false, "archives/x") })
	})
	t.Run("ObjectLockBucket", func(t *testing.T) {
		t.Parallel()
		testContract(t, func(t *testing.T) Store { return newS3(t, true, "") })
	})
}

func TestS3Location(t *testing.T) {
	t.Parallel()
	s := newS3(t, false, "a/b")
	require.True(t, strings.HasPrefix(s.Location(), "s3://t-"))
	require.True(t, strings.HasSuffix(s.Location(), "/a/b"))
	require.NotContains(t, s.Location(), s3srv.SecretAccessKey)
}

// TestS3ObjectLock shows the server enforcing COMPLIANCE retention: the
// object cannot be deleted, shortened or replaced in place before its date,
// by objstore or by a raw client signed as the account's root.
func TestS3ObjectLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newS3(t, true, "locked")
	on, err := s.ObjectLockEnabled(ctx)
	require.NoError(t, err)
	require.True(t, on)

	until := time.Now().Add(time.Hour).Truncate(time.Second)
	info, err := s.Put(ctx, "bundle/1.json", strings.NewReader(`{"n":1}`), PutOptions{RetainUntil: until})
	require.NoError(t, err)
	require.True(t, info.Locked, "the server reports COMPLIANCE retention")
	require.WithinDuration(t, until, info.RetainUntil, time.Second)

	// objstore refuses to write the key again
	_, err = s.Put(ctx, "bundle/1.json", strings.NewReader(`{"n":"forged"}`), PutOptions{})
	require.ErrorIs(t, err, ErrExists)

	// objstore's Delete removes the version, which retention refuses
	err = s.Delete(ctx, "bundle/1.json")
	require.ErrorIs(t, err, ErrRetained)

	raw := s3srv.Client()
	bucket, key := bucketOf(s), "locked/bundle/1.json"
	head, err := raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
	require.NoError(t, err)
	require.Equal(t, types.ObjectLockModeCompliance, head.ObjectLockMode)
	version := head.VersionId
	require.NotEmpty(t, aws.ToString(version), "Object Lock buckets are versioned")

	// a raw delete of the version, even with the governance bypass, is refused
	_, err = raw.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: &key, VersionId: version, BypassGovernanceRetention: aws.Bool(true)})
	require.Error(t, err, "deleting a COMPLIANCE-locked version must be refused")

	// shortening the retention is refused
	_, err = raw.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: &bucket, Key: &key, VersionId: version,
		Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeCompliance, RetainUntilDate: aws.Time(time.Now().Add(time.Minute))}})
	require.Error(t, err, "shortening COMPLIANCE retention must be refused")

	// a raw overwrite (no If-None-Match) may add a newer version, as on AWS,
	// but never replaces the locked one
	_, owErr := raw.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: strings.NewReader(`{"n":"forged"}`)})
	got, err := raw.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key, VersionId: version})
	require.NoError(t, err)
	body, _ := io.ReadAll(got.Body)
	got.Body.Close()
	require.Equal(t, `{"n":1}`, string(body), "the locked version is intact")
	t.Logf("raw overwrite of a locked key: err=%v (nil means a new version was added on top)", owErr)
}

// TestS3RetainWithoutLock: retention asked of a bucket without Object Lock
// is not an error, and Locked says it was not applied.
func TestS3RetainWithoutLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newS3(t, false, "")
	on, err := s.ObjectLockEnabled(ctx)
	require.NoError(t, err)
	require.False(t, on)
	info, err := s.Put(ctx, "k", strings.NewReader("x"), PutOptions{RetainUntil: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	require.False(t, info.Locked)
	require.NoError(t, s.Delete(ctx, "k"))

	_, err = s.Put(ctx, "k2", strings.NewReader("x"), PutOptions{RetainUntil: time.Now().Add(-time.Hour)})
	require.ErrorContains(t, err, "retain-until: must be in the future")
}

// TestS3MultipartNeverOverwrites races multipart uploads of one key: the
// If-None-Match on CompleteMultipartUpload lets exactly one win, and the
// bucket keeps no extra version.
func TestS3MultipartNeverOverwrites(t *testing.T) {
	t.Parallel()
	needS3(t)
	ctx := context.Background()
	cfg := s3srv.Config(s3srv.NewBucket(t, true), "")
	cfg.PartSize = PartSizeMin
	s, err := NewS3(ctx, cfg)
	require.NoError(t, err)
	const writers = 3
	size := int64(PartSizeMin + PartSizeMin/2)
	var wg sync.WaitGroup
	errs := make([]error, writers)
	sums := make([]string, writers)
	infos := make([]Info, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := newGen(uint64(i), size)
			infos[i], errs[i] = s.Put(ctx, "big", g, PutOptions{})
			sums[i] = g.sum()
		}()
	}
	wg.Wait()
	wins := 0
	for i, err := range errs {
		if err == nil {
			wins++
			require.Equal(t, sums[i], infos[i].SHA256)
			st, err := s.Stat(ctx, "big")
			require.NoError(t, err)
			require.Equal(t, sums[i], st.SHA256, "the stored object is the winner's")
		} else {
			require.ErrorIs(t, err, ErrExists)
		}
	}
	require.Equal(t, 1, wins)
	bucket := bucketOf(s)
	vs, err := s3srv.Client().ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: &bucket})
	require.NoError(t, err)
	require.Len(t, vs.Versions, 1, "losing uploads leave no version behind")
	ups, err := s3srv.Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket})
	require.NoError(t, err)
	require.Empty(t, ups.Uploads, "losing uploads are aborted")
}

// TestS3LargeBoundedMemory streams 64 MiB from a generator and samples the
// heap meanwhile: the peak above the starting heap must stay well under
// the object's size (one part buffer plus the client's own).
func TestS3LargeBoundedMemory(t *testing.T) {
	// not parallel: the heap is measured for this test alone
	ctx := context.Background()
	s := newS3(t, true, "")
	const size = 64 << 20
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	g := newGen(42, size)
	info, err := s.Put(ctx, "archive/large.bin", g, PutOptions{RetainUntil: time.Now().Add(time.Hour)})
	close(stop)
	<-done
	require.NoError(t, err)
	require.Equal(t, int64(size), info.Size)
	require.Equal(t, g.sum(), info.SHA256)
	require.True(t, info.Locked, "a multipart upload carries the retention too")
	grew := int64(peak.Load()) - int64(base.HeapAlloc)
	t.Logf("64 MiB upload: heap peak %.1f MiB above the start (part size %d MiB)", float64(grew)/(1<<20), PartSizeDefault>>20)
	require.Less(t, grew, int64(32<<20), "memory must not grow with the object")
}

func TestS3Errors(t *testing.T) {
	t.Parallel()
	needS3(t)
	ctx := context.Background()
	t.Run("MissingBucket", func(t *testing.T) {
		t.Parallel()
		_, err := NewS3(ctx, s3srv.Config("no-such-bucket-here", ""))
		require.ErrorContains(t, err, "no-such-bucket-here")
		require.ErrorContains(t, err, "does not exist")
	})
	t.Run("WrongCredentials", func(t *testing.T) {
		t.Parallel()
		cfg := s3srv.Config(s3srv.NewBucket(t, false), "")
		cfg.SecretAccessKey = "not-the-secret-value"
		_, err := NewS3(ctx, cfg)
		require.Error(t, err)
		require.NotContains(t, err.Error(), "not-the-secret-value")
		require.NotContains(t, err.Error(), cfg.AccessKeyID)
		require.NotContains(t, strings.TrimSpace(err.Error()), "\n", "one line")
		t.Log(err)
	})
	t.Run("NoPermission", func(t *testing.T) {
		t.Parallel()
		// a real account of the server without any grant on the bucket
		access, secret, err := s3srv.NewUser(ctx)
		if errors.Is(err, harness.ErrNoUserAdmin) {
			t.Skip(err.Error())
		}
		require.NoError(t, err)
		bucket := s3srv.NewBucket(t, false)
		cfg := s3srv.Config(bucket, "p")
		cfg.AccessKeyID, cfg.SecretAccessKey = access, secret
		_, err = NewS3(ctx, cfg)
		require.ErrorContains(t, err, "bucket "+bucket+": access denied (needs s3:ListBucket)")
		require.NotContains(t, err.Error(), secret)
		// the root account opens it; the user cannot read what root wrote
		root, err := NewS3(ctx, s3srv.Config(bucket, "p"))
		require.NoError(t, err)
		_, err = root.Put(ctx, "k", strings.NewReader("x"), PutOptions{})
		require.NoError(t, err)
	})
	t.Run("BadConfig", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name string
			cfg  S3Config
			want string
		}{
			{"NoBucket", S3Config{}, "s3 bucket: must not be empty"},
			{"SmallParts", S3Config{Bucket: "b", PartSize: 1024}, "s3 part size"},
			{"HalfCredentials", S3Config{Bucket: "b", AccessKeyID: "x"}, "go together"},
			{"CredentialsInURL", S3Config{Bucket: "b", Endpoint: "http://user:pw@127.0.0.1:1"}, "must not carry credentials"},
			{"BadPrefix", S3Config{Bucket: "b", Prefix: "../x"}, "s3 prefix"},
		} {
			_, err := NewS3(ctx, tc.cfg)
			require.ErrorContains(t, err, tc.want, tc.name)
			require.NotContains(t, err.Error(), "pw@", tc.name)
		}
	})
	t.Run("ServerDown", func(t *testing.T) {
		t.Parallel()
		srv, err := harness.StartS3(ctx)
		require.NoError(t, err)
		stopped := false
		defer func() {
			if !stopped {
				srv.Stop()
			}
		}()
		bucket := srv.NewBucket(t, false)
		s, err := NewS3(ctx, srv.Config(bucket, "p"))
		require.NoError(t, err)
		_, err = s.Put(ctx, "before", strings.NewReader("x"), PutOptions{})
		require.NoError(t, err)
		srv.Stop()
		stopped = true
		_, err = s.Put(ctx, "after", strings.NewReader("x"), PutOptions{})
		require.ErrorContains(t, err, "unreachable")
		require.ErrorContains(t, err, srv.Endpoint)
		require.ErrorContains(t, err, "s3://"+bucket+"/p/after")
		require.NotContains(t, err.Error(), srv.SecretAccessKey)
		t.Log(err)
		_, err = NewS3(ctx, srv.Config(bucket, ""))
		require.ErrorContains(t, err, "unreachable")
	})
}

func TestOpenS3FromEnv(t *testing.T) {
	needS3(t)
	// not parallel: it sets the process's AWS_* variables
	bucket := s3srv.NewBucket(t, false)
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": s3srv.Endpoint, "AWS_ENDPOINT_URL_S3": "", "AWS_REGION": s3srv.Region,
		"AWS_ACCESS_KEY_ID": s3srv.AccessKeyID, "AWS_SECRET_ACCESS_KEY": s3srv.SecretAccessKey,
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
	st, err := Open(context.Background(), "s3://"+bucket+"/anchors")
	require.NoError(t, err)
	require.Equal(t, "s3://"+bucket+"/anchors", st.Location())
	_, err = st.Put(context.Background(), "x", bytes.NewReader([]byte("y")), PutOptions{})
	require.NoError(t, err)
	list, err := s3srv.Client().ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &bucket})
	require.NoError(t, err)
	require.Len(t, list.Contents, 1)
	require.Equal(t, "anchors/x", aws.ToString(list.Contents[0].Key))
}

func bucketOf(s *S3) string {
	b, _, _ := strings.Cut(strings.TrimPrefix(s.Location(), "s3://"), "/")
	return b
}

// gen yields size pseudo-random bytes (incompressible, reproducible) and
// hashes them as they go.
type gen struct {
	rng  *rand.ChaCha8
	left int64
	h    hashWriter
}

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
}

func newGen(seed uint64, size int64) *gen {
	var s [32]byte
	s[0] = byte(seed)
	return &gen{rng: rand.NewChaCha8(s), left: size, h: sha256.New()}
}

func (g *gen) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n, _ := g.rng.Read(p)
	g.h.Write(p[:n])
	g.left -= int64(n)
	return n, nil
}

func (g *gen) sum() string { return hex.EncodeToString(g.h.Sum(nil)) }
