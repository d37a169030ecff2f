package workers

import (
	"context"
	"log/slog"
	"sort"

	"github.com/auditdb/auditdb/monitor"
)

// Alert kinds raised by the jobs of this package. Seal lag is the alert
// evaluator's (monitor.AlertSealLag), with its thresholds.
const (
	// AlertIntegrityTampered: a verification run reported findings.
	AlertIntegrityTampered = monitor.AlertIntegrityTampered
	// AlertSealHeadMismatch: a chain's head in audit.chain_heads does not
	// match the row at its seq, so it was not sealed.
	AlertSealHeadMismatch = "seal_head_mismatch"
)

// Alerter raises alerts. Implementations store or forward them (the alert
// store of package monitor); they must be safe for concurrent use. Messages
// and labels name positions, counts and kinds, never row contents or keys.
type Alerter interface {
	Raise(ctx context.Context, kind, severity, message string, labels map[string]string) error
}

// LogAlerter raises alerts by logging them: the default when no alert store
// is configured.
type LogAlerter struct {
	// Logger receives the alerts. Defaults to slog.Default().
	Logger *slog.Logger
}

// Raise logs the alert at error level (critical) or warning level.
func (a LogAlerter) Raise(ctx context.Context, kind, severity, message string, labels map[string]string) error {
	l := a.Logger
	if l == nil {
		l = slog.Default()
	}
	attrs := []any{"kind", kind, "severity", severity}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		attrs = append(attrs, k, labels[k])
	}
	level := slog.LevelWarn
	if severity == monitor.AlertCritical {
		level = slog.LevelError
	}
	l.Log(ctx, level, "alert: "+message, attrs...)
	return nil
}
