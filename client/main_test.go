package client

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/tests/harness"
)

func TestMain(m *testing.M) {
	harness.Main(m, harness.Options{Redis: true})
}

// setup gives a test its own migrated database and a client on it.
func setup(t *testing.T, cfg Config) (*Client, *harness.DB) {
	t.Helper()
	db := harness.NewDB(t)
	cfg.URL = db.URL
	c, err := NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c, db
}

// baseTime is a fixed instant inside the partitions the template creates
// (the current month and three ahead), away from month boundaries.
var baseTime = func() time.Time {
	now := time.Now().UTC()
	return time.Date(now.Year(), now.Month(), 1, 12, 0, 0, 0, time.UTC).AddDate(0, 1, 0)
}()

// validEvent is a complete event, different for each i.
func validEvent(i int) Event {
	latency := int32(i % 500)
	return Event{
		Timestamp:          baseTime.Add(time.Duration(i) * time.Second),
		Action:             "fhir.patient.read",
		Status:             StatusSuccess,
		PrincipalID:        fmt.Sprintf("dr-%d", i%7),
		PrincipalType:      "practitioner",
		OrganizationID:     fmt.Sprintf("org-%d", i%3),
		TargetResourceType: "Patient",
		TargetResourceID:   fmt.Sprintf("patient-%d", i),
		SourceIP:           netip.AddrFrom4([4]byte{10, 0, byte(i / 250 % 250), byte(i%250 + 1)}),
		OutcomeDescription: "Viewed chart",
		Details:            map[string]any{"department": "cardiology", "n": i},
		DataClassification: ClassificationPHI,
		RetentionPolicy:    "phi_extended",
		EventVersion:       "2.1",
		CorrelationID:      fmt.Sprintf("req-%d", i),
		ProcessingLatency:  &latency,
		TTL:                "P7Y",
	}
}
