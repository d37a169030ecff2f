package workers_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/tests/harness"
	"github.com/auditdb/auditdb/workers"
)

// With a metrics token, /metrics answers only a request that bears it
// (a real server on loopback); /healthz and /readyz stay open for probes.
// A short token is refused without being named.
func TestMetricsBearerToken(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	s, err := workers.NewSuite(&workers.Deps{Pool: db.Pool, Logger: slog.New(slog.DiscardHandler)},
		workers.SuiteConfig{SealInterval: -1, VerifyInterval: -1, FullVerifyInterval: -1, PartitionsInterval: -1})
	require.NoError(t, err)

	_, err = s.HandlerWith(workers.HTTPConfig{MetricsToken: "short-s3cret"})
	require.EqualError(t, err, "workers: http: MetricsToken: must be at least 16 characters")

	const token = "0123456789abcdef-metrics"
	h, err := s.HandlerWith(workers.HTTPConfig{MetricsToken: token})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	require.True(t, strings.HasPrefix(srv.URL, "http://127.0.0.1:"))
	get := func(path, auth string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	for _, auth := range []string{"", "Bearer wrong-token-0123456789", "Bearer " + token + "x", "Bearer " + token[:len(token)-1],
		"Basic " + token, "bearer " + token, token} {
		code, body := get("/metrics", auth)
		require.Equal(t, http.StatusUnauthorized, code, "Authorization %q", auth)
		require.NotContains(t, body, token)
	}
	code, body := get("/metrics", "Bearer "+token)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "auditdb_chain_head_seq")
	code, _ = get("/healthz", "")
	require.Equal(t, http.StatusOK, code)

	// without a token /metrics is open, as before
	open := httptest.NewServer(s.Handler())
	defer open.Close()
	resp, err := http.Get(open.URL + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}
