package objstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Dir is a Store in a local directory. Keys map to files under it, "/"
// making sub-folders. Put writes a hidden temporary file next to the target,
// fsyncs it, links it into place with os.Link (which fails rather than
// replace an existing file, so two writers cannot clobber each other),
// removes the temporary and fsyncs the folder: a crash leaves the whole
// object or none, plus at most a hidden ".*.tmp" file that List ignores and
// that is safe to delete.
//
// A directory cannot enforce retention: Put accepts RetainUntil but reports
// Locked false, and Delete always works. Files are made read-only (0440) as
// a guard against accidents, not against an administrator.
type Dir struct {
	root string
}

var _ Store = (*Dir)(nil)

// NewDir opens the directory store at dir, creating dir if missing.
func NewDir(dir string) (*Dir, error) {
	if dir == "" {
		return nil, errors.New("object store directory: must not be empty")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("object store directory: %w", err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("object store directory: %w", err)
	}
	return &Dir{root: abs}, nil
}

// Location implements Store: the absolute directory path.
func (d *Dir) Location() string { return d.root }

func (d *Dir) path(key string) string {
	return filepath.Join(d.root, filepath.FromSlash(key))
}

// Put implements Store.
func (d *Dir) Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (Info, error) {
	if err := CheckKey(key); err != nil {
		return Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	final := d.path(key)
	folder := filepath.Dir(final)
	if _, err := os.Lstat(final); err == nil {
		return Info{}, fmt.Errorf("put %s in %s: %w", key, d.root, ErrExists)
	}
	if err := d.mkdirs(folder); err != nil {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	tmp, err := os.CreateTemp(folder, "."+filepath.Base(final)+".*.tmp")
	if err != nil {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // after Link the final name holds the data; this drops the temporary name
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx, r})
	if err == nil {
		err = tmp.Chmod(0o440)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Info{}, fmt.Errorf("put %s: write: %w", key, err)
	}
	if err := os.Link(tmpName, final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return Info{}, fmt.Errorf("put %s in %s: %w", key, d.root, ErrExists)
		}
		return Info{}, fmt.Errorf("put %s: link: %w", key, err)
	}
	if err := os.Remove(tmpName); err != nil {
		return Info{}, fmt.Errorf("put %s: remove temporary: %w", key, err)
	}
	if err := syncDir(folder); err != nil {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	sent := hex.EncodeToString(h.Sum(nil))
	got, size, err := hashFile(final)
	if err != nil {
		return Info{}, fmt.Errorf("put %s: read back: %w", key, err)
	}
	if got != sent || size != n {
		return Info{}, fmt.Errorf("put %s: read back: SHA-256 of the stored file differs from what was written (file left for inspection)", key)
	}
	return Info{Key: key, Size: n, SHA256: sent}, nil
}

// mkdirs creates folder and its missing parents under the root, fsyncing
// the parent of each folder it creates so the new entries survive a crash.
func (d *Dir) mkdirs(folder string) error {
	rel, err := filepath.Rel(d.root, folder)
	if err != nil || rel == "." {
		return err
	}
	cur := d.root
	for _, seg := range strings.Split(rel, string(filepath.Separator)) {
		next := filepath.Join(cur, seg)
		err := os.Mkdir(next, 0o750)
		switch {
		case err == nil:
			if err := syncDir(cur); err != nil {
				return err
			}
		case errors.Is(err, fs.ErrExist):
			if fi, serr := os.Stat(next); serr != nil || !fi.IsDir() {
				return fmt.Errorf("mkdir: a file is in the way of a folder")
			}
		default:
			return fmt.Errorf("mkdir: %w", err)
		}
		cur = next
	}
	return nil
}

// Get implements Store.
func (d *Dir) Get(_ context.Context, key string) (io.ReadCloser, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	f, err := os.Open(d.path(key))
	if err != nil {
		return nil, d.notFound("get", key, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("get %s in %s: %w", key, d.root, ErrNotFound)
	}
	return f, nil
}

// Stat implements Store. It reads the file to compute its SHA-256.
func (d *Dir) Stat(_ context.Context, key string) (Info, error) {
	if err := CheckKey(key); err != nil {
		return Info{}, err
	}
	p := d.path(key)
	fi, err := os.Stat(p)
	if err != nil {
		return Info{}, d.notFound("stat", key, err)
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("stat %s in %s: %w", key, d.root, ErrNotFound)
	}
	sum, size, err := hashFile(p)
	if err != nil {
		return Info{}, d.notFound("stat", key, err)
	}
	return Info{Key: key, Size: size, SHA256: sum}, nil
}

// List implements Store. Hidden files and folders (temporaries of killed
// writers) are left out; SHA256 is "".
func (d *Dir) List(_ context.Context, prefix string) ([]Info, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	// walk only the deepest folder the prefix names
	start := d.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = d.path(prefix[:i])
	}
	var out []Info
	err := filepath.WalkDir(start, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p == start && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if p != start && strings.HasPrefix(e.Name(), ".") {
			if e.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !e.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		out = append(out, Info{Key: key, Size: fi.Size()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", d.root, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete implements Store.
func (d *Dir) Delete(_ context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	p := d.path(key)
	if fi, err := os.Lstat(p); err != nil {
		return d.notFound("delete", key, err)
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("delete %s in %s: %w", key, d.root, ErrNotFound)
	}
	if err := os.Remove(p); err != nil {
		return d.notFound("delete", key, err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

func (d *Dir) notFound(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%s %s in %s: %w", op, key, d.root, ErrNotFound)
	}
	return fmt.Errorf("%s %s in %s: %w", op, key, d.root, err)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync folder: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync folder: %w", err)
	}
	return nil
}

func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// ctxReader stops a long copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
