// Package objstore stores write-once objects in a local directory or an
// S3-compatible bucket.
//
// Both stores share one contract (Store): an object is written once and
// never overwritten (ErrExists), its SHA-256 is checked after writing by
// reading it back, and it can carry a retain-until date that an S3 bucket
// with Object Lock enforces in COMPLIANCE mode. Keys use "/" separators;
// the directory store maps them to sub-folders.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// ErrExists is returned by Put when the key already holds an object.
var ErrExists = errors.New("object already exists")

// ErrNotFound is returned by Get, Stat and Delete when the key holds no
// object.
var ErrNotFound = errors.New("object not found")

// Store is a write-once object store.
type Store interface {
	// Put stores key once, streaming r with bounded memory (multipart upload
	// on S3). It never overwrites: an existing key gives ErrExists. After
	// writing it reads the object back and checks its SHA-256 against what
	// was sent (mismatch: error, object left for inspection).
	// opts.RetainUntil non-zero asks for Object Lock COMPLIANCE retention
	// until that time where the store supports it (Info.Locked says whether
	// it was applied).
	Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (Info, error)
	// Get reads an object; ErrNotFound if there is none.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat describes an object; ErrNotFound if there is none.
	Stat(ctx context.Context, key string) (Info, error)
	// List describes the objects whose key starts with prefix, ascending by
	// Key.
	List(ctx context.Context, prefix string) ([]Info, error)
	// Delete removes an object; retention may refuse it.
	Delete(ctx context.Context, key string) error
	// Location is "/abs/dir" or "s3://bucket/prefix", never credentials.
	Location() string
}

// PutOptions are Put's options.
type PutOptions struct {
	// RetainUntil, when not zero, asks for Object Lock COMPLIANCE retention
	// until this time. Defaults to no retention.
	RetainUntil time.Time
	// ContentType is the object's media type where the store keeps one.
	// Defaults to application/octet-stream.
	ContentType string
}

// ContentTypeDefault is PutOptions.ContentType's default.
const ContentTypeDefault = "application/octet-stream"

// WithDefaults returns o with empty fields set to their defaults.
func (o PutOptions) WithDefaults() PutOptions {
	if o.ContentType == "" {
		o.ContentType = ContentTypeDefault
	}
	return o
}

// Info describes a stored object.
type Info struct {
	// Key is the object's key, relative to the store's location.
	Key string
	// Size is the object's length in bytes.
	Size int64
	// SHA256 is the object's SHA-256 in lower-case hex, "" if unknown
	// (List does not read objects).
	SHA256 string
	// RetainUntil is the object's retain-until date, zero if none.
	RetainUntil time.Time
	// Locked says whether the store enforces RetainUntil (Object Lock
	// COMPLIANCE on S3); false for a directory.
	Locked bool
}

// Open opens the store at location: "s3://bucket/prefix" is an S3 store
// configured from the usual AWS_* variables (AWS_ENDPOINT_URL,
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION); anything else is a
// directory path, created if missing.
func Open(ctx context.Context, location string) (Store, error) {
	if location == "" {
		return nil, errors.New("object store location: must not be empty")
	}
	if strings.HasPrefix(location, "s3://") {
		return openS3FromEnv(ctx, location)
	}
	if strings.Contains(location, "://") {
		return nil, errors.New("object store location: must be a directory path or s3://bucket/prefix")
	}
	return NewDir(location)
}

// CheckKey reports whether key is acceptable to every store: non-empty,
// "/"-separated segments that are neither empty nor start with "." (so no
// ".." and no clash with the directory store's hidden temporary files), not
// absolute, no backslash or NUL. The error names the rule, never the key.
func CheckKey(key string) error {
	switch {
	case key == "":
		return errors.New("object key: must not be empty")
	case strings.HasPrefix(key, "/"):
		return errors.New("object key: must be relative (no leading /)")
	case strings.ContainsAny(key, "\\\x00"):
		return errors.New("object key: must not contain a backslash or NUL")
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "":
			return errors.New("object key: must not have empty segments (// or a trailing /)")
		case ".", "..":
			return errors.New("object key: must not have . or .. segments")
		}
		if strings.HasPrefix(seg, ".") {
			return errors.New("object key: segments must not start with . (kept for temporary files)")
		}
	}
	return nil
}

// checkPrefix accepts "" or a key-like prefix that may end with "/".
func checkPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := CheckKey(strings.TrimSuffix(prefix, "/")); err != nil {
		return fmt.Errorf("list prefix: %w", err)
	}
	return nil
}
