package workers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/auditdb/auditdb/internal/objstore"
)

// ArchiveNameFromURI returns the object name an archive_uri refers to, so
// that an archive found through a manifest is opened in the sink configured
// now, even if the directory or bucket was moved since.
func ArchiveNameFromURI(uri string) string {
	if u, err := url.Parse(uri); err == nil && u.Path != "" {
		return path.Base(u.Path)
	}
	return path.Base(uri)
}

// archiveSink is where retention's archives go: a write-once object store
// (internal/objstore), a directory or an s3://bucket/prefix. Archives are
// top-level objects named by plain file names.
type archiveSink struct {
	store objstore.Store
	s3    bool
}

// isS3Location reports whether location names an S3 bucket.
func isS3Location(location string) bool { return strings.HasPrefix(location, "s3://") }

// openArchiveSink opens the sink at location (a directory, created if
// missing, or s3://bucket/prefix configured from the AWS_* variables).
func openArchiveSink(ctx context.Context, location string) (*archiveSink, error) {
	st, err := objstore.Open(ctx, location)
	if err != nil {
		return nil, fmt.Errorf("archive sink: %w", err)
	}
	return &archiveSink{store: st, s3: isS3Location(location)}, nil
}

// uri is how an archive is named in audit.archive_manifests.archive_uri:
// a file:// URL for a directory, s3://bucket/prefix/name for S3.
func (s *archiveSink) uri(name string) string {
	if s.s3 {
		return strings.TrimSuffix(s.store.Location(), "/") + "/" + name
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(s.store.Location(), name))}).String()
}

func checkArchiveName(name string) error {
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return errors.New("archive name: must be a plain file name")
	}
	return nil
}

// put stores the archive read from r once (never over an existing one),
// with Object Lock retention until retainUntil where the sink enforces it.
func (s *archiveSink) put(ctx context.Context, name string, r io.Reader, retainUntil time.Time) (objstore.Info, error) {
	if err := checkArchiveName(name); err != nil {
		return objstore.Info{}, err
	}
	info, err := s.store.Put(ctx, name, r, objstore.PutOptions{RetainUntil: retainUntil, ContentType: "application/gzip"})
	if err != nil {
		return info, fmt.Errorf("archive %s: %w", name, err)
	}
	return info, nil
}

// open reads a stored archive.
func (s *archiveSink) open(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := checkArchiveName(name); err != nil {
		return nil, err
	}
	rc, err := s.store.Get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", name, err)
	}
	return rc, nil
}

// list names the stored archives, sorted. Temporaries of killed writers
// (hidden files in a directory, unfinished multipart uploads in S3) are not
// objects and are not listed.
func (s *archiveSink) list(ctx context.Context) ([]string, error) {
	infos, err := s.store.List(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("archive sink: %w", err)
	}
	names := []string{}
	for _, in := range infos {
		if !strings.Contains(in.Key, "/") {
			names = append(names, in.Key)
		}
	}
	return names, nil
}

// listArchivesIfAny lists the archives at location without creating a
// missing directory (a plan only looks).
func listArchivesIfAny(ctx context.Context, location string) ([]string, error) {
	if !isS3Location(location) {
		if _, err := os.Stat(location); errors.Is(err, fs.ErrNotExist) {
			return []string{}, nil
		}
	}
	sink, err := openArchiveSink(ctx, location)
	if err != nil {
		return nil, err
	}
	return sink.list(ctx)
}
