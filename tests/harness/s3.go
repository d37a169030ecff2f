package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/auditdb/auditdb/internal/objstore"
)

// VersitygwInstall is the pinned S3-compatible test server, as `go install`
// takes it; .ci/run installs the same.
const VersitygwInstall = "github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// S3 is an S3-compatible server for tests.
type S3 struct {
	// Endpoint is the server's URL, e.g. http://127.0.0.1:40123.
	Endpoint string
	// Region, AccessKeyID and SecretAccessKey sign requests.
	Region, AccessKeyID, SecretAccessKey string

	client *s3.Client
	bin    string // versitygw, when the harness started it
	stop   func()
}

var (
	s3shared  *S3
	s3buckets atomic.Int64
)

// SharedS3 returns the S3 server that Main started (Options.S3).
func SharedS3() *S3 { return s3shared }

// StartS3 provides an S3-compatible server: AUDIT_TEST_S3_URL (with
// AUDIT_TEST_S3_ACCESS_KEY_ID, AUDIT_TEST_S3_SECRET_ACCESS_KEY and
// AUDIT_TEST_S3_REGION, defaulting to the AWS_* ones) for a server you run,
// or else a private versitygw (posix backend, versioning and Object Lock
// on) on a free loopback port in a temporary folder, removed by Stop.
func StartS3(ctx context.Context) (*S3, error) {
	if u := os.Getenv("AUDIT_TEST_S3_URL"); u != "" {
		s := &S3{
			Endpoint:        u,
			Region:          envOr("AUDIT_TEST_S3_REGION", envOr("AWS_REGION", objstore.RegionDefault)),
			AccessKeyID:     envOr("AUDIT_TEST_S3_ACCESS_KEY_ID", os.Getenv("AWS_ACCESS_KEY_ID")),
			SecretAccessKey: envOr("AUDIT_TEST_S3_SECRET_ACCESS_KEY", os.Getenv("AWS_SECRET_ACCESS_KEY")),
			stop:            func() {},
		}
		s.client = s.newClient()
		if err := s.waitReady(ctx, 10*time.Second); err != nil {
			return nil, fmt.Errorf("AUDIT_TEST_S3_URL: %w", err)
		}
		return s, nil
	}
	return startVersitygw(ctx)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// FindVersitygw looks for the versitygw binary on PATH, then where `go
// install` puts it ($GOBIN, $(go env GOPATH)/bin, ~/go/bin).
func FindVersitygw() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) > 0 && lines[0] != "" {
			dirs = append(dirs, lines[0])
		}
		if len(lines) > 1 {
			for _, gp := range filepath.SplitList(lines[1]) {
				dirs = append(dirs, filepath.Join(gp, "bin"))
			}
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("no S3 server: versitygw is not installed; run `go install %s` (or .ci/run), or set AUDIT_TEST_S3_URL to a server of yours", VersitygwInstall)
}

func startVersitygw(ctx context.Context) (*S3, error) {
	bin, err := FindVersitygw()
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	dir, err := os.MkdirTemp("", "auditdb-s3-")
	if err != nil {
		return nil, err
	}
	for _, sub := range []string{"data", "versions", "iam"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	logf, err := os.Create(filepath.Join(dir, "versitygw.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &S3{
		Endpoint:        "http://" + addr,
		Region:          objstore.RegionDefault,
		AccessKeyID:     "auditdbtest",
		SecretAccessKey: "auditdbtestsecret",
		bin:             bin,
	}
	cmd := exec.Command(bin,
		"--access", s.AccessKeyID, "--secret", s.SecretAccessKey, "--region", s.Region,
		"--port", addr, "--quiet", "--iam-dir", filepath.Join(dir, "iam"),
		"posix",
		"--versioning-dir", filepath.Join(dir, "versions"),
		filepath.Join(dir, "data"))
	// the server reads these too; keep the developer's own out of it
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start versitygw: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.stop = func() {
		_ = cmd.Process.Kill()
		<-exited
		logf.Close()
		os.RemoveAll(dir)
	}
	s.client = s.newClient()
	if err := s.waitReady(ctx, 30*time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "versitygw.log"))
		s.stop()
		return nil, fmt.Errorf("versitygw did not answer: %w; its log: %s", err, strings.TrimSpace(lastLines(string(log), 5)))
	}
	return s, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func (s *S3) newClient() *s3.Client {
	return s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKeyID, s.SecretAccessKey, ""),
	})
}

func (s *S3) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := s.client.ListBuckets(cctx, &s3.ListBucketsInput{})
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// NewUser creates an account of role "user" on a server the harness
// started: it owns no bucket and may use none of the root account's, so
// tests see the server's own AccessDenied. On a server of yours
// (AUDIT_TEST_S3_URL) it returns ErrNoUserAdmin.
func (s *S3) NewUser(ctx context.Context) (accessKeyID, secretAccessKey string, err error) {
	if s.bin == "" {
		return "", "", ErrNoUserAdmin
	}
	n := s3buckets.Add(1)
	accessKeyID, secretAccessKey = fmt.Sprintf("user%d", n), fmt.Sprintf("usersecret%d", n)
	out, err := exec.CommandContext(ctx, s.bin, "admin", "--access", s.AccessKeyID, "--secret", s.SecretAccessKey,
		"--endpoint-url", s.Endpoint, "create-user", "--access", accessKeyID, "--secret", secretAccessKey, "--role", "user").CombinedOutput()
	if err != nil {
		return "", "", fmt.Errorf("versitygw admin create-user: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return accessKeyID, secretAccessKey, nil
}

// ErrNoUserAdmin: NewUser needs the versitygw the harness starts.
var ErrNoUserAdmin = errors.New("harness: creating S3 users needs the harness's own versitygw (AUDIT_TEST_S3_URL is set)")

// Stop stops what StartS3 started and removes its files.
func (s *S3) Stop() { s.stop() }

// Client is an S3 client signed as the server's root account, for tests
// that go around objstore (to try an overwrite, say).
func (s *S3) Client() *s3.Client { return s.client }

// Config is the objstore configuration for bucket and prefix on this server.
func (s *S3) Config(bucket, prefix string) objstore.S3Config {
	return objstore.S3Config{
		Bucket: bucket, Prefix: prefix, Endpoint: s.Endpoint, Region: s.Region,
		AccessKeyID: s.AccessKeyID, SecretAccessKey: s.SecretAccessKey,
	}
}

// SetEnv points the process's AWS_* variables at this server, so that
// objstore.Open("s3://...") and the CLIs use it. Main does it for the
// shared server.
func (s *S3) SetEnv() {
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL":          s.Endpoint,
		"AWS_ENDPOINT_URL_S3":       s.Endpoint,
		"AWS_REGION":                s.Region,
		"AWS_ACCESS_KEY_ID":         s.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":     s.SecretAccessKey,
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		os.Setenv(k, v)
	}
	os.Unsetenv("AWS_SESSION_TOKEN")
	os.Unsetenv("AWS_PROFILE")
}

// NewBucket creates a bucket of the test's own, with Object Lock (and so
// versioning) enabled when lock is true. Objects are removed when the test
// ends where retention allows; the private server's files go with Stop.
func (s *S3) NewBucket(t testing.TB, lock bool) string {
	t.Helper()
	name := fmt.Sprintf("t-%d-%d", os.Getpid(), s3buckets.Add(1))
	if err := s.CreateBucket(context.Background(), name, lock); err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(func() { s.emptyBucket(name) })
	return name
}

// CreateBucket creates bucket name, with Object Lock (and so versioning)
// enabled when lock is true.
func (s *S3) CreateBucket(ctx context.Context, name string, lock bool) error {
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	if lock {
		in.ObjectLockEnabledForBucket = aws.Bool(true)
	}
	if _, err := s.client.CreateBucket(ctx, in); err != nil {
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	return nil
}

// emptyBucket deletes what it can: locked versions stay until their date.
func (s *S3) emptyBucket(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := s3.NewListObjectVersionsPaginator(s.client, &s3.ListObjectVersionsInput{Bucket: aws.String(name)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return
		}
		var ids []types.ObjectIdentifier
		for _, v := range page.Versions {
			ids = append(ids, types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
		}
		for _, m := range page.DeleteMarkers {
			ids = append(ids, types.ObjectIdentifier{Key: m.Key, VersionId: m.VersionId})
		}
		for _, id := range ids {
			_, _ = s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(name), Key: id.Key, VersionId: id.VersionId})
		}
	}
	_, _ = s.client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(name)})
}
