package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// PartSizeDefault is S3Config.PartSize's default: the one buffer a Put
// holds, whatever the object's size.
const PartSizeDefault = 8 << 20

// PartSizeMin is the smallest part S3 accepts (except the last).
const PartSizeMin = 5 << 20

// RegionDefault is S3Config.Region's default.
const RegionDefault = "us-east-1"

// ErrRetained is returned by Delete when Object Lock retention refuses it.
var ErrRetained = errors.New("refused by Object Lock retention")

// S3Config configures an S3 store.
type S3Config struct {
	// Bucket is the bucket name. Required.
	Bucket string
	// Prefix is prepended to every key; "" or ending in "/". Defaults to "".
	Prefix string
	// Endpoint is the S3 endpoint URL for S3-compatible servers
	// (AWS_ENDPOINT_URL). Defaults to AWS's own endpoints.
	Endpoint string
	// Region is the signing region (AWS_REGION). Defaults to us-east-1.
	Region string
	// AccessKeyID and SecretAccessKey are static credentials. Defaults to
	// the SDK's chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profiles,
	// instance roles).
	AccessKeyID, SecretAccessKey string
	// PathStyle addresses buckets as endpoint/bucket/key instead of
	// bucket.endpoint/key. Defaults to true when Endpoint is set (what
	// S3-compatible servers expect), false otherwise.
	PathStyle *bool
	// PartSize is the multipart part size in bytes, at least PartSizeMin;
	// Put holds one part in memory. Defaults to PartSizeDefault.
	PartSize int64
}

// WithDefaults returns c with empty fields set to their defaults.
func (c S3Config) WithDefaults() S3Config {
	if c.Region == "" {
		c.Region = RegionDefault
	}
	if c.PathStyle == nil {
		ps := c.Endpoint != ""
		c.PathStyle = &ps
	}
	if c.PartSize == 0 {
		c.PartSize = PartSizeDefault
	}
	if c.Prefix != "" && !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	return c
}

// Validate names the first bad field.
func (c S3Config) Validate() error {
	switch {
	case c.Bucket == "":
		return errors.New("s3 bucket: must not be empty")
	case strings.ContainsAny(c.Bucket, "/\\ "):
		return errors.New("s3 bucket: must be a bucket name (no /, \\ or spaces)")
	case c.PartSize < PartSizeMin:
		return fmt.Errorf("s3 part size: must be at least %d bytes", PartSizeMin)
	case (c.AccessKeyID == "") != (c.SecretAccessKey == ""):
		return errors.New("s3 credentials: access key id and secret access key go together")
	}
	if c.Prefix != "" {
		if err := CheckKey(strings.TrimSuffix(c.Prefix, "/")); err != nil {
			return fmt.Errorf("s3 prefix: %w", err)
		}
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("s3 endpoint (AWS_ENDPOINT_URL): must be an http:// or https:// URL")
		}
		if u.User != nil {
			return errors.New("s3 endpoint (AWS_ENDPOINT_URL): must not carry credentials; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
		}
	}
	return nil
}

// S3ConfigFromEnv parses "s3://bucket/prefix" and reads AWS_ENDPOINT_URL
// (or AWS_ENDPOINT_URL_S3), AWS_REGION (or AWS_DEFAULT_REGION),
// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
func S3ConfigFromEnv(location string) (S3Config, error) {
	rest, ok := strings.CutPrefix(location, "s3://")
	if !ok {
		return S3Config{}, errors.New("s3 location: must start with s3://")
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	c := S3Config{
		Bucket:          bucket,
		Prefix:          prefix,
		Endpoint:        firstEnv("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
		Region:          firstEnv("AWS_REGION", "AWS_DEFAULT_REGION"),
		AccessKeyID:     os.Getenv("AWS_ACCESS_KEY_ID"),
		SecretAccessKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
	}
	return c, nil
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

func openS3FromEnv(ctx context.Context, location string) (Store, error) {
	c, err := S3ConfigFromEnv(location)
	if err != nil {
		return nil, err
	}
	return NewS3(ctx, c)
}

// S3 is a Store in an S3-compatible bucket.
//
// Put never overwrites: it checks that the key is free, then writes with
// If-None-Match: * (on PutObject, or on CompleteMultipartUpload for objects
// larger than one part), so of two concurrent writers exactly one wins even
// when both passed the check. Objects of more than one part are uploaded
// part by part from a single buffer of PartSize bytes, so memory does not
// grow with the object. After writing, Put reads the object back and
// compares its SHA-256 with what it sent.
//
// When the bucket has Object Lock enabled (looked up once, on the first Put
// that asks for retention), PutOptions.RetainUntil is sent as COMPLIANCE
// retention; Info.Locked reports what the server says it applied. Delete
// removes the current version by its version id, so that retention can
// refuse it (a plain delete on a versioned bucket only adds a delete marker
// and hides the object without removing it).
type S3 struct {
	client   *s3.Client
	cfg      S3Config
	endpoint string // for errors: no credentials

	lockMu    sync.Mutex
	lockKnown bool
	lockOn    bool
}

var _ Store = (*S3)(nil)

// NewS3 returns the S3 store for cfg after checking that the bucket exists
// and answers.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(cfg.Region)}
	if cfg.AccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3 configuration: %w", err)
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = *cfg.PathStyle
		// Put checks the whole object's SHA-256 itself; a composite
		// multipart checksum cannot be checked on read, and the SDK would
		// log that on every read back
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	s := &S3{client: client, cfg: cfg, endpoint: cfg.Endpoint}
	if s.endpoint == "" {
		s.endpoint = "AWS S3 (" + cfg.Region + ")"
	}
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(cfg.Bucket)}); err != nil {
		return nil, s.wrap("open", "", "s3:ListBucket", err)
	}
	return s, nil
}

// Location implements Store: "s3://bucket/prefix".
func (s *S3) Location() string {
	return "s3://" + s.cfg.Bucket + "/" + strings.TrimSuffix(s.cfg.Prefix, "/")
}

// ObjectLockEnabled reports whether the bucket has Object Lock enabled,
// looking it up once.
func (s *S3) ObjectLockEnabled(ctx context.Context) (bool, error) {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	if s.lockKnown {
		return s.lockOn, nil
	}
	out, err := s.client.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(s.cfg.Bucket)})
	var api smithy.APIError
	switch {
	case err == nil:
		s.lockOn = out.ObjectLockConfiguration != nil && out.ObjectLockConfiguration.ObjectLockEnabled == types.ObjectLockEnabledEnabled
	case errors.As(err, &api) && api.ErrorCode() == "ObjectLockConfigurationNotFoundError":
		s.lockOn = false
	default:
		// not remembered: a transient failure must not decide for good
		return false, s.wrap("object lock configuration of", "", "s3:GetBucketObjectLockConfiguration", err)
	}
	s.lockKnown = true
	return s.lockOn, nil
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (Info, error) {
	if err := CheckKey(key); err != nil {
		return Info{}, err
	}
	opts = opts.WithDefaults()
	lock := false
	if !opts.RetainUntil.IsZero() {
		if !opts.RetainUntil.After(time.Now()) {
			return Info{}, fmt.Errorf("put %s: retain-until: must be in the future", s.name(key))
		}
		var err error
		if lock, err = s.ObjectLockEnabled(ctx); err != nil {
			return Info{}, err
		}
	}
	// A cheap check first, so a repeated Put does not upload gigabytes to be
	// refused at the end; If-None-Match below closes the race it leaves.
	if _, err := s.head(ctx, key); err == nil {
		return Info{}, fmt.Errorf("put %s: %w", s.name(key), ErrExists)
	} else if !errors.Is(err, ErrNotFound) {
		return Info{}, err
	}

	h := sha256.New()
	buf := make([]byte, s.cfg.PartSize)
	n, rerr := io.ReadFull(r, buf)
	h.Write(buf[:n])
	var err error
	switch {
	case errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF):
		err = s.putSingle(ctx, key, buf[:n], opts, lock)
	case rerr != nil:
		return Info{}, fmt.Errorf("put %s: read source: %w", s.name(key), rerr)
	default:
		err = s.putMultipart(ctx, key, buf, n, r, h, opts, lock)
	}
	if err != nil {
		return Info{}, err
	}
	sent := hex.EncodeToString(h.Sum(nil))
	info, err := s.readBack(ctx, key)
	if err != nil {
		return Info{}, fmt.Errorf("put %s: read back: %w", s.name(key), err)
	}
	if info.SHA256 != sent {
		return Info{}, fmt.Errorf("put %s: read back: SHA-256 of the stored object differs from what was sent (object left for inspection)", s.name(key))
	}
	if lock && info.Locked && info.RetainUntil.Before(opts.RetainUntil.Truncate(time.Second)) {
		info.Locked = false // applied, but not as long as asked: say so
	}
	return info, nil
}

func (s *S3) lockFields(opts PutOptions, lock bool) (types.ObjectLockMode, *time.Time) {
	if !lock {
		return "", nil
	}
	t := opts.RetainUntil.UTC()
	return types.ObjectLockModeCompliance, &t
}

func (s *S3) putSingle(ctx context.Context, key string, body []byte, opts PutOptions, lock bool) error {
	mode, until := s.lockFields(opts, lock)
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:                    aws.String(s.cfg.Bucket),
		Key:                       aws.String(s.cfg.Prefix + key),
		Body:                      bytes.NewReader(body),
		ContentLength:             aws.Int64(int64(len(body))),
		ContentType:               aws.String(opts.ContentType),
		IfNoneMatch:               aws.String("*"),
		ChecksumAlgorithm:         types.ChecksumAlgorithmSha256,
		ObjectLockMode:            mode,
		ObjectLockRetainUntilDate: until,
	})
	if err != nil {
		return s.wrap("put", key, putPermission(lock), err)
	}
	return nil
}

func putPermission(lock bool) string {
	if lock {
		return "s3:PutObject and s3:PutObjectRetention"
	}
	return "s3:PutObject"
}

// putMultipart uploads first (buf[:n], already hashed) and the rest of r
// part by part, reusing buf.
func (s *S3) putMultipart(ctx context.Context, key string, buf []byte, n int, r io.Reader, h io.Writer, opts PutOptions, lock bool) error {
	mode, until := s.lockFields(opts, lock)
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:                    aws.String(s.cfg.Bucket),
		Key:                       aws.String(s.cfg.Prefix + key),
		ContentType:               aws.String(opts.ContentType),
		ChecksumAlgorithm:         types.ChecksumAlgorithmSha256,
		ObjectLockMode:            mode,
		ObjectLockRetainUntilDate: until,
	})
	if err != nil {
		return s.wrap("put", key, putPermission(lock), err)
	}
	uploadID := created.UploadId
	abort := func() {
		// the caller's ctx may be why we stopped; the abort must still go out
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(s.cfg.Bucket), Key: aws.String(s.cfg.Prefix + key), UploadId: uploadID,
		})
	}
	var parts []types.CompletedPart
	for num := int32(1); ; num++ {
		if num > 10000 {
			abort()
			return fmt.Errorf("put %s: more than 10000 parts: raise the part size", s.name(key))
		}
		out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket:            aws.String(s.cfg.Bucket),
			Key:               aws.String(s.cfg.Prefix + key),
			UploadId:          uploadID,
			PartNumber:        aws.Int32(num),
			Body:              bytes.NewReader(buf[:n]),
			ContentLength:     aws.Int64(int64(n)),
			ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		})
		if err != nil {
			abort()
			return s.wrap("put", key, "s3:PutObject", err)
		}
		parts = append(parts, types.CompletedPart{
			PartNumber: aws.Int32(num), ETag: out.ETag,
			ChecksumSHA256: out.ChecksumSHA256,
		})
		var rerr error
		n, rerr = io.ReadFull(r, buf)
		h.Write(buf[:n])
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			if n == 0 {
				break
			}
			continue // upload the short last part, then stop at the next EOF
		}
		if rerr != nil {
			abort()
			return fmt.Errorf("put %s: read source: %w", s.name(key), rerr)
		}
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.cfg.Bucket),
		Key:             aws.String(s.cfg.Prefix + key),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		IfNoneMatch:     aws.String("*"),
	})
	if err != nil {
		abort()
		return s.wrap("put", key, "s3:PutObject", err)
	}
	return nil
}

// readBack hashes the stored object and reports its retention (from a
// HEAD: some servers send the Object Lock headers only there).
func (s *S3) readBack(ctx context.Context, key string) (Info, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.cfg.Bucket), Key: aws.String(s.cfg.Prefix + key),
	})
	if err != nil {
		return Info{}, s.wrap("get", key, "s3:GetObject", err)
	}
	defer out.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, out.Body)
	if err != nil {
		return Info{}, fmt.Errorf("get %s: %w", s.name(key), err)
	}
	info := Info{Key: key, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}
	head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(s.cfg.Bucket), Key: aws.String(s.cfg.Prefix + key), VersionId: out.VersionId,
	})
	if err != nil {
		return Info{}, s.wrap("stat", key, "s3:GetObject", err)
	}
	if head.ObjectLockRetainUntilDate != nil {
		info.RetainUntil = *head.ObjectLockRetainUntilDate
	}
	info.Locked = head.ObjectLockMode == types.ObjectLockModeCompliance && info.RetainUntil.After(time.Now())
	return info, nil
}

// Get implements Store.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.cfg.Bucket), Key: aws.String(s.cfg.Prefix + key),
	})
	if err != nil {
		return nil, s.wrap("get", key, "s3:GetObject", err)
	}
	return out.Body, nil
}

// Stat implements Store. It reads the object to compute its SHA-256.
func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	if err := CheckKey(key); err != nil {
		return Info{}, err
	}
	return s.readBack(ctx, key)
}

func (s *S3) head(ctx context.Context, key string) (*s3.HeadObjectOutput, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(s.cfg.Bucket), Key: aws.String(s.cfg.Prefix + key),
	})
	if err != nil {
		return nil, s.wrap("stat", key, "s3:GetObject", err)
	}
	return out, nil
}

// List implements Store. SHA256 is "" (List does not read objects).
func (s *S3) List(ctx context.Context, prefix string) ([]Info, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	var out []Info
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.cfg.Bucket), Prefix: aws.String(s.cfg.Prefix + prefix),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.wrap("list", prefix, "s3:ListBucket", err)
		}
		for _, o := range page.Contents {
			k := strings.TrimPrefix(aws.ToString(o.Key), s.cfg.Prefix)
			out = append(out, Info{Key: k, Size: aws.ToInt64(o.Size)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete implements Store: it removes the current version, which Object
// Lock retention refuses before its date (ErrRetained).
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	h, err := s.head(ctx, key)
	if err != nil {
		return err
	}
	_, err = s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.cfg.Bucket), Key: aws.String(s.cfg.Prefix + key), VersionId: h.VersionId,
	})
	if err != nil {
		if h.ObjectLockMode != "" && h.ObjectLockRetainUntilDate != nil && h.ObjectLockRetainUntilDate.After(time.Now()) {
			return fmt.Errorf("delete %s: %w until %s", s.name(key), ErrRetained, h.ObjectLockRetainUntilDate.UTC().Format(time.RFC3339))
		}
		return s.wrap("delete", key, "s3:DeleteObject and s3:DeleteObjectVersion", err)
	}
	return nil
}

// name is how errors name an object: s3://bucket/prefix/key.
func (s *S3) name(key string) string {
	return "s3://" + s.cfg.Bucket + "/" + s.cfg.Prefix + key
}

// wrap turns an SDK error into one line that names the object, the
// endpoint when unreachable and the permission when denied, using only
// the error code: server messages may quote request details.
func (s *S3) wrap(op, key, permission string, err error) error {
	what := s.name(key)
	if key == "" && op != "list" {
		what = "bucket " + s.cfg.Bucket
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch code := api.ErrorCode(); code {
		case "NoSuchKey", "NotFound", "NoSuchVersion":
			if key != "" || op == "list" {
				return fmt.Errorf("%s %s: %w", op, what, ErrNotFound)
			}
			return fmt.Errorf("%s %s: bucket does not exist", op, what)
		case "NoSuchBucket":
			return fmt.Errorf("%s %s: bucket %s does not exist", op, what, s.cfg.Bucket)
		case "PreconditionFailed", "ConditionalRequestConflict":
			return fmt.Errorf("%s %s: %w", op, what, ErrExists)
		case "AccessDenied", "Forbidden", "AllAccessDisabled":
			return fmt.Errorf("%s %s: access denied (needs %s)", op, what, permission)
		case "InvalidAccessKeyId", "SignatureDoesNotMatch":
			return fmt.Errorf("%s %s: credentials refused (%s): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", op, what, code)
		default:
			return fmt.Errorf("%s %s: %s", op, what, code)
		}
	}
	var nerr net.Error
	var oerr *net.OpError
	if errors.As(err, &oerr) || (errors.As(err, &nerr) && !errors.Is(err, context.Canceled)) {
		return fmt.Errorf("%s %s: s3 endpoint %s unreachable: %w", op, what, s.endpoint, unwrapNet(err))
	}
	return fmt.Errorf("%s %s: %w", op, what, err)
}

// unwrapNet keeps the innermost network error ("dial tcp ...: connection
// refused") rather than the SDK's retry chain.
func unwrapNet(err error) error {
	var oerr *net.OpError
	if errors.As(err, &oerr) {
		return oerr
	}
	return err
}
