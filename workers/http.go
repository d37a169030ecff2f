package workers

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readyTimeout bounds one /readyz check.
const readyTimeout = 3 * time.Second

// Handler serves /healthz (the process answers), /readyz (Ready) and
// /metrics (the suite's registry, Prometheus text format).
func (s *Suite) Handler() http.Handler {
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
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.deps.Metrics.reg, promhttp.HandlerOpts{Registry: s.deps.Metrics.reg}))
	return mux
}
