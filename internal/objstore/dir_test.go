package objstore_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	. "github.com/auditdb/auditdb/internal/objstore"
)

func TestDirContract(t *testing.T) {
	t.Parallel()
	testContract(t, func(t *testing.T) Store {
		d, err := NewDir(filepath.Join(t.TempDir(), "store"))
		require.NoError(t, err)
		return d
	})
}

func TestDirLayout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	d, err := NewDir(root)
	require.NoError(t, err)
	require.Equal(t, root, d.Location())

	info, err := d.Put(ctx, "log1/00000000000000000001.json", bytes.NewReader([]byte("{}")), PutOptions{RetainUntil: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	require.False(t, info.Locked, "a directory cannot enforce retention")

	// keys with "/" are sub-folders; the file is read-only; no temporary is left
	p := filepath.Join(root, "log1", "00000000000000000001.json")
	fi, err := os.Stat(p)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o440), fi.Mode().Perm())
	entries, err := os.ReadDir(filepath.Join(root, "log1"))
	require.NoError(t, err)
	require.Len(t, entries, 1, "the temporary file is removed after linking")

	// a killed writer's temporary is hidden from List and does not block Put
	require.NoError(t, os.WriteFile(filepath.Join(root, "log1", ".00000000000000000002.json.123.tmp"), []byte("partial"), 0o600))
	list, err := d.List(ctx, "")
	require.NoError(t, err)
	require.Equal(t, []string{"log1/00000000000000000001.json"}, infoKeys(list))
	_, err = d.Put(ctx, "log1/00000000000000000002.json", bytes.NewReader([]byte("{}")), PutOptions{})
	require.NoError(t, err)

	// a file where a folder is needed is an error, not a panic or overwrite
	_, err = d.Put(ctx, "log1/00000000000000000001.json/x", bytes.NewReader([]byte("{}")), PutOptions{})
	require.ErrorContains(t, err, "file is in the way")
}

func TestDirStatDetectsChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	d, err := NewDir(root)
	require.NoError(t, err)
	info, err := d.Put(ctx, "k", bytes.NewReader([]byte("original")), PutOptions{})
	require.NoError(t, err)
	p := filepath.Join(root, "k")
	require.NoError(t, os.Chmod(p, 0o600))
	require.NoError(t, os.WriteFile(p, []byte("tampered"), 0o600))
	st, err := d.Stat(ctx, "k")
	require.NoError(t, err)
	require.NotEqual(t, info.SHA256, st.SHA256, "Stat hashes the file as it is now")
}

func TestOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "new", "dir")
	s, err := Open(ctx, root)
	require.NoError(t, err)
	require.IsType(t, &Dir{}, s)
	require.Equal(t, root, s.Location())
	fi, err := os.Stat(root)
	require.NoError(t, err)
	require.True(t, fi.IsDir(), "Open creates a missing directory")

	_, err = Open(ctx, "")
	require.ErrorContains(t, err, "must not be empty")
	_, err = Open(ctx, "gs://bucket/x")
	require.ErrorContains(t, err, "must be a directory path or s3://bucket/prefix")
	_, err = NewDir("")
	require.ErrorContains(t, err, "must not be empty")
}
