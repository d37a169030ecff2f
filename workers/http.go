package workers

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readyTimeout bounds one /readyz check.
const readyTimeout = 3 * time.Second

// ListenDefault is where `auditworker run` serves /healthz, /readyz and
// /metrics unless told otherwise: the loopback interface only, so that
// nothing outside the host reaches them by accident.
const ListenDefault = "127.0.0.1:9187"

// MetricsTokenMinLength is the shortest bearer token HTTPConfig accepts.
const MetricsTokenMinLength = 16

// HTTPConfig configures the suite's HTTP handler.
type HTTPConfig struct {
	// MetricsToken, when set, is the bearer token /metrics requires
	// ("Authorization: Bearer <token>"), compared in constant time; a
	// request without it gets 401. /healthz and /readyz stay open for
	// probes. The token is never logged. Defaults to "": /metrics open.
	MetricsToken string
}

// Validate checks the config, naming the field and never the token.
func (c HTTPConfig) Validate() error {
	if c.MetricsToken == "" {
		return nil
	}
	if len(c.MetricsToken) < MetricsTokenMinLength {
		return fmt.Errorf("MetricsToken: must be at least %d characters", MetricsTokenMinLength)
	}
	if strings.ContainsAny(c.MetricsToken, " \t\r\n") {
		return errors.New("MetricsToken: must not contain whitespace")
	}
	return nil
}

// Handler serves /healthz (the process answers), /readyz (Ready) and
// /metrics (the suite's registry, Prometheus text format), all open.
func (s *Suite) Handler() http.Handler {
	h, _ := s.HandlerWith(HTTPConfig{}) // the zero config is valid
	return h
}

// HandlerWith is Handler with cfg: /metrics behind a bearer token when
// cfg.MetricsToken is set.
func (s *Suite) HandlerWith(cfg HTTPConfig) (http.Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("workers: http: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := s.Ready(ctx); err != nil {
			s.logger().WarnContext(ctx, "workers: not ready", "reason", err.Error())
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	var metrics http.Handler = promhttp.HandlerFor(s.deps.Metrics.reg, promhttp.HandlerOpts{Registry: s.deps.Metrics.reg})
	if cfg.MetricsToken != "" {
		metrics = bearer(cfg.MetricsToken, metrics)
	}
	mux.Handle("GET /metrics", metrics)
	return mux, nil
}

// bearer lets a request through to next only with "Authorization: Bearer
// token". Both sides are hashed before the constant-time comparison, so
// that neither the token's bytes nor its length leak through timing.
func bearer(token string, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 || !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="auditworker metrics"`)
			http.Error(w, "unauthorized: /metrics needs the bearer token", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
