package workers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ArchiveSink stores retention's archive files. An object-store sink
// (S3, GCS...) implements it with a multipart upload that Commit completes
// and Abort cancels. Names are plain file names, no slashes.
type ArchiveSink interface {
	// Create starts a new object. Nothing is visible under name until
	// Commit returns nil; a crash before that leaves no object (at most a
	// temporary one the sink may clean up).
	Create(ctx context.Context, name string) (ArchiveObject, error)
	// Open reads a committed object.
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	// List names the committed objects, sorted.
	List(ctx context.Context) ([]string, error)
	// URI is how an object is named in audit.archive_manifests.archive_uri.
	URI(name string) string
}

// ArchiveObject is an object being written.
type ArchiveObject interface {
	io.Writer
	// Commit makes the object durable and visible under its name.
	Commit() error
	// Abort discards it. Abort after Commit does nothing.
	Abort() error
}

// ArchiveNameFromURI returns the object name an archive_uri refers to, so
// that an archive found through a manifest is opened in the sink configured
// now, even if the directory or bucket was moved since.
func ArchiveNameFromURI(uri string) string {
	if u, err := url.Parse(uri); err == nil && u.Path != "" {
		return path.Base(u.Path)
	}
	return path.Base(uri)
}

// LocalDirSink keeps archives as files in a directory. Create writes to a
// hidden temporary file in the same directory; Commit syncs it, renames it
// into place and syncs the directory, so a crash leaves either the whole
// file or none.
type LocalDirSink struct {
	Dir string
}

// NewLocalDirSink creates dir if needed.
func NewLocalDirSink(dir string) (*LocalDirSink, error) {
	if dir == "" {
		return nil, errors.New("archive directory: must not be empty")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("archive directory: %w", err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("archive directory: %w", err)
	}
	return &LocalDirSink{Dir: abs}, nil
}

func checkName(name string) error {
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return fmt.Errorf("archive name %q: must be a plain file name", name)
	}
	return nil
}

// Create implements ArchiveSink.
func (s *LocalDirSink) Create(_ context.Context, name string) (ArchiveObject, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(s.Dir, "."+name+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", name, err)
	}
	return &localObject{f: f, final: filepath.Join(s.Dir, name), dir: s.Dir}, nil
}

// Open implements ArchiveSink.
func (s *LocalDirSink) Open(_ context.Context, name string) (io.ReadCloser, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(s.Dir, name))
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", name, err)
	}
	return f, nil
}

// List implements ArchiveSink. Hidden files (temporaries of killed runs,
// ".NAME.*.tmp", safe to delete) are left out.
func (s *LocalDirSink) List(_ context.Context) ([]string, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("archive directory: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// URI implements ArchiveSink: a file:// URL.
func (s *LocalDirSink) URI(name string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(s.Dir, name))}).String()
}

type localObject struct {
	f         *os.File
	final     string
	dir       string
	committed bool
}

func (o *localObject) Write(p []byte) (int, error) { return o.f.Write(p) }

func (o *localObject) Commit() error {
	if err := o.f.Sync(); err != nil {
		_ = o.Abort()
		return fmt.Errorf("archive: sync: %w", err)
	}
	if err := o.f.Close(); err != nil {
		_ = os.Remove(o.f.Name())
		return fmt.Errorf("archive: close: %w", err)
	}
	if err := os.Rename(o.f.Name(), o.final); err != nil {
		_ = os.Remove(o.f.Name())
		return fmt.Errorf("archive: rename: %w", err)
	}
	o.committed = true
	// the rename is durable only once the directory entry is
	d, err := os.Open(o.dir)
	if err != nil {
		return fmt.Errorf("archive: sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("archive: sync directory: %w", err)
	}
	return nil
}

func (o *localObject) Abort() error {
	if o.committed {
		return nil
	}
	_ = o.f.Close()
	if err := os.Remove(o.f.Name()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
