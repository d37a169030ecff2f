package objstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	. "github.com/auditdb/auditdb/internal/objstore"
)

// testContract checks the Store contract every implementation shares.
// newStore returns an empty store.
func testContract(t *testing.T, newStore func(t *testing.T) Store) {
	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t)
		body := []byte("hello, write-once world")
		info, err := s.Put(ctx, "log/00000000000000000001.json", bytes.NewReader(body), PutOptions{ContentType: "application/json"})
		require.NoError(t, err)
		sum := sha256.Sum256(body)
		require.Equal(t, "log/00000000000000000001.json", info.Key)
		require.Equal(t, int64(len(body)), info.Size)
		require.Equal(t, hex.EncodeToString(sum[:]), info.SHA256)

		rc, err := s.Get(ctx, "log/00000000000000000001.json")
		require.NoError(t, err)
		got, err := io.ReadAll(rc)
		require.NoError(t, err)
		require.NoError(t, rc.Close())
		require.Equal(t, body, got)

		st, err := s.Stat(ctx, "log/00000000000000000001.json")
		require.NoError(t, err)
		require.Equal(t, info.Size, st.Size)
		require.Equal(t, info.SHA256, st.SHA256)
	})

	t.Run("EmptyObject", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t)
		info, err := s.Put(ctx, "empty", bytes.NewReader(nil), PutOptions{})
		require.NoError(t, err)
		require.Equal(t, int64(0), info.Size)
		require.Equal(t, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", info.SHA256)
	})

	t.Run("NeverOverwrites", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t)
		_, err := s.Put(ctx, "a/b", bytes.NewReader([]byte("first")), PutOptions{})
		require.NoError(t, err)
		_, err = s.Put(ctx, "a/b", bytes.NewReader([]byte("second")), PutOptions{})
		require.ErrorIs(t, err, ErrExists)
		require.Contains(t, err.Error(), "a/b")
		rc, err := s.Get(ctx, "a/b")
		require.NoError(t, err)
		got, _ := io.ReadAll(rc)
		rc.Close()
		require.Equal(t, "first", string(got), "the second Put must not have replaced the first")
	})

	t.Run("ConcurrentPutsOneWins", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t)
		const writers = 8
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.Put(ctx, "race/obj", bytes.NewReader([]byte(fmt.Sprintf("writer %d", i))), PutOptions{})
			}()
		}
		wg.Wait()
		wins := 0
		var winner string
		for i, err := range errs {
			if err == nil {
				wins++
				winner = fmt.Sprintf("writer %d", i)
			} else {
				require.ErrorIs(t, err, ErrExists)
			}
		}
		require.Equal(t, 1, wins, "exactly one writer must succeed")
		rc, err := s.Get(ctx, "race/obj")
		require.NoError(t, err)
		got, _ := io.ReadAll(rc)
		rc.Close()
		require.Equal(t, winner, string(got), "the stored object is the winner's")
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t)
		_, err := s.Get(ctx, "missing/key")
		require.ErrorIs(t, err, ErrNotFound)
		_, err = s.Stat(ctx, "missing/key")
		require.ErrorIs(t, err, ErrNotFound)
		err = s.Delete(ctx, "missing/key")
		require.ErrorIs(t, err, ErrNotFound)
		list, err := s.List(ctx, "missing/")
		require.NoError(t, err)
		require.Empty(t, list)
	})

	t.Run("ListPrefixSorted", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t)
		// "a.b" sorts before "a/c" in byte order ('.' < '/'), which a
		// folder-by-folder walk would get wrong.
		keys := []string{"z", "a/c/2", "a/c/1", "a.b", "a/b", "ab", "b/1"}
		for _, k := range keys {
			_, err := s.Put(ctx, k, bytes.NewReader([]byte(k)), PutOptions{})
			require.NoError(t, err)
		}
		list, err := s.List(ctx, "")
		require.NoError(t, err)
		require.Equal(t, []string{"a.b", "a/b", "a/c/1", "a/c/2", "ab", "b/1", "z"}, infoKeys(list))
		for _, in := range list {
			require.Equal(t, int64(len(in.Key)), in.Size)
		}
		list, err = s.List(ctx, "a/")
		require.NoError(t, err)
		require.Equal(t, []string{"a/b", "a/c/1", "a/c/2"}, infoKeys(list))
		list, err = s.List(ctx, "a")
		require.NoError(t, err)
		require.Equal(t, []string{"a.b", "a/b", "a/c/1", "a/c/2", "ab"}, infoKeys(list))
		list, err = s.List(ctx, "a/c/")
		require.NoError(t, err)
		require.Equal(t, []string{"a/c/1", "a/c/2"}, infoKeys(list))
	})

	t.Run("Delete", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t)
		_, err := s.Put(ctx, "d/1", bytes.NewReader([]byte("x")), PutOptions{})
		require.NoError(t, err)
		require.NoError(t, s.Delete(ctx, "d/1"))
		_, err = s.Get(ctx, "d/1")
		require.ErrorIs(t, err, ErrNotFound)
	})

	t.Run("FailedReaderLeavesNothing", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t)
		boom := errors.New("source broke")
		r := io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("x"), 1000)), errReader{boom})
		_, err := s.Put(ctx, "broken/obj", r, PutOptions{})
		require.ErrorIs(t, err, boom)
		_, err = s.Stat(ctx, "broken/obj")
		require.ErrorIs(t, err, ErrNotFound, "a failed Put leaves no object")
		list, err := s.List(ctx, "")
		require.NoError(t, err)
		require.Empty(t, list)
		// and the key is still free
		_, err = s.Put(ctx, "broken/obj", bytes.NewReader([]byte("ok")), PutOptions{})
		require.NoError(t, err)
	})

	t.Run("BadKeys", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t)
		for _, tc := range []struct{ name, key, want string }{
			{"Empty", "", "must not be empty"},
			{"Absolute", "/etc/passwd", "must be relative"},
			{"DotDot", "a/../../escape", "must not have . or .. segments"},
			{"DotDotOnly", "..", "must not have . or .. segments"},
			{"EmptySegment", "a//b", "empty segments"},
			{"TrailingSlash", "a/", "empty segments"},
			{"Hidden", "a/.tmp", "must not start with ."},
			{"Backslash", `a\b`, "backslash"},
		} {
			_, err := s.Put(ctx, tc.key, bytes.NewReader([]byte("x")), PutOptions{})
			require.ErrorContains(t, err, tc.want, tc.name)
			require.NotContains(t, err.Error(), "passwd", "errors never repeat the key")
			_, err = s.Get(ctx, tc.key)
			require.ErrorContains(t, err, tc.want, tc.name)
			_, err = s.Stat(ctx, tc.key)
			require.ErrorContains(t, err, tc.want, tc.name)
			require.ErrorContains(t, s.Delete(ctx, tc.key), tc.want, tc.name)
		}
		_, err := s.List(ctx, "../")
		require.ErrorContains(t, err, "list prefix")
	})
}

func infoKeys(list []Info) []string {
	out := make([]string, 0, len(list))
	for _, in := range list {
		out = append(out, in.Key)
	}
	return out
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
