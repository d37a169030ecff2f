// Package anchor keeps auditdb's anchor bundles (INTEGRITY.md, "External
// anchoring (v1, exact)") in write-once storage outside the database, and
// reads them back: publishing a bundle so that a retried or killed writer
// never leaves two different bundles under one number, reading a sink's
// bundles and witness cosignatures for verification (integrity.CheckBundles),
// and the witness that checks each new bundle against the last one it
// cosigned before adding its signature.
//
// Nothing here needs the database: a witness or an auditor runs it with only
// the sink and public keys. The formats are in package integrity.
package anchor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/auditdb/auditdb/internal/objstore"
)

// ErrExists: the key already holds an object (a sink never overwrites).
var ErrExists = errors.New("anchor sink: object already exists")

// ErrNotFound: the key holds no object.
var ErrNotFound = errors.New("anchor sink: object not found")

// MaxObjectBytes bounds what Get reads of one object: a bundle of 32,767
// chains is under 4 MiB.
const MaxObjectBytes = 8 << 20

// Sink is write-once storage of bundles: a local directory or an
// S3-compatible bucket (with Object Lock where the bucket has it).
type Sink interface {
	// Put stores data under key once; an existing key gives ErrExists.
	// retainUntil, when not zero, asks for Object Lock COMPLIANCE retention;
	// locked says whether the sink applied it.
	Put(ctx context.Context, key string, data []byte, retainUntil time.Time) (locked bool, err error)
	// Get reads an object (at most MaxObjectBytes); ErrNotFound if absent.
	Get(ctx context.Context, key string) ([]byte, error)
	// Open streams an object of any size (archives); ErrNotFound if absent.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// List returns the keys under prefix, ascending.
	List(ctx context.Context, prefix string) ([]string, error)
	// Location names the sink ("/abs/dir", "s3://bucket/prefix"), never
	// credentials.
	Location() string
}

// OpenSink opens the sink at location: "s3://bucket/prefix" (configured
// from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_REGION) or a directory path, created if missing.
func OpenSink(ctx context.Context, location string) (Sink, error) {
	s, err := objstore.Open(ctx, location)
	if err != nil {
		return nil, fmt.Errorf("anchor sink: %w", err)
	}
	return storeSink{s}, nil
}

// storeSink adapts an objstore.Store, which this package keeps internal.
type storeSink struct{ s objstore.Store }

func (s storeSink) Put(ctx context.Context, key string, data []byte, retainUntil time.Time) (bool, error) {
	info, err := s.s.Put(ctx, key, bytes.NewReader(data), objstore.PutOptions{RetainUntil: retainUntil, ContentType: "application/json"})
	if errors.Is(err, objstore.ErrExists) {
		return false, fmt.Errorf("%w: %s", ErrExists, key)
	}
	if err != nil {
		return false, fmt.Errorf("anchor sink: put %s: %w", key, err)
	}
	return info.Locked, nil
}

func (s storeSink) Get(ctx context.Context, key string) ([]byte, error) {
	rc, err := s.s.Get(ctx, key)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, fmt.Errorf("anchor sink: get %s: %w", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, MaxObjectBytes+1))
	if err != nil {
		return nil, fmt.Errorf("anchor sink: get %s: %w", key, err)
	}
	if len(b) > MaxObjectBytes {
		return nil, fmt.Errorf("anchor sink: get %s: larger than %d bytes, not a bundle", key, MaxObjectBytes)
	}
	return b, nil
}

func (s storeSink) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := s.s.Get(ctx, key)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, fmt.Errorf("anchor sink: open %s: %w", key, err)
	}
	return rc, nil
}

func (s storeSink) List(ctx context.Context, prefix string) ([]string, error) {
	infos, err := s.s.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("anchor sink: list %s: %w", prefix, err)
	}
	keys := make([]string, len(infos))
	for i, in := range infos {
		keys[i] = in.Key
	}
	return keys, nil
}

func (s storeSink) Location() string { return s.s.Location() }
