package client_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"time"

	"github.com/auditdb/auditdb/client"
)

// The README's quick start in Go: connect with AUDIT_DB_URL, check the
// connection, log a PHI access and read back the principal's latest events.
// (It needs a database, so it has no checked output.)
func Example() {
	ctx := context.Background()

	c, err := client.New(ctx, "") // "" reads AUDIT_DB_URL
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.CheckConnection(ctx); err != nil {
		log.Fatal(err)
	}

	receipt, err := c.Insert(ctx, client.Event{
		Timestamp:          time.Now(),
		Action:             "fhir.patient.read",
		Status:             client.StatusSuccess,
		PrincipalID:        "dr-123",
		OrganizationID:     "org-smedrec",
		TargetResourceType: "Patient",
		TargetResourceID:   "patient-456",
		SourceIP:           netip.MustParseAddr("10.0.1.50"),
		DataClassification: client.ClassificationPHI,
		Details:            map[string]any{"department": "cardiology"},
	})
	if err != nil {
		log.Fatal(err) // an invalid event fails here, before any round trip
	}
	fmt.Printf("event %d is #%d of chain %d, hash %s\n", receipt.ID, receipt.ChainSeq, receipt.ChainID, receipt.Hash)

	page, err := c.Search(ctx, client.Query{PrincipalID: "dr-123", Limit: 5})
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range page.Events {
		fmt.Println(e.Timestamp.Format(time.RFC3339), e.Action, e.Status, e.TargetResourceID)
	}
}

// Many events at once go through COPY, all or nothing; related writes go
// in a transaction that is retried on serialization failures.
func ExampleClient_WithTx() {
	ctx := context.Background()
	cfg, err := client.ConfigFromEnv() // AUDIT_DB_URL, AUDIT_DB_POOL_MIN, AUDIT_DB_POOL_MAX
	if err != nil {
		log.Fatal(err)
	}
	cfg.StatementTimeout = 10 * time.Second
	c, err := client.NewWithConfig(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	err = c.WithTx(ctx, func(tx *client.Tx) error {
		if _, err := tx.Insert(ctx, client.Event{Timestamp: time.Now(), Action: "export.start", Status: client.StatusAttempt}); err != nil {
			return err
		}
		_, err := tx.InsertBatch(ctx, []client.Event{
			{Timestamp: time.Now(), Action: "export.record", Status: client.StatusSuccess, TargetResourceID: "patient-1"},
			{Timestamp: time.Now(), Action: "export.record", Status: client.StatusSuccess, TargetResourceID: "patient-2"},
		})
		return err // nil commits, an error rolls back
	})
	if err != nil {
		log.Fatal(err)
	}
}

// The enhanced client: the configured client plus the read cache (L1 in
// process, L2 Redis from REDIS_URL), monitoring and the HIPAA/GDPR
// switches, all from the environment. (It needs a database, so it has no
// checked output.)
func ExampleNewEnhanced() {
	ctx := context.Background()
	cfg, err := client.EnhancedConfigFromEnv() // AUDIT_DB_URL, REDIS_URL, AUDIT_MONITORING_ENABLED, AUDIT_HIPAA_ENABLED...
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.NewEnhanced(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// the second read of a page comes from the cache until events for
	// org-smedrec are written (by any instance sharing the Redis)
	for range 2 {
		page, err := c.Search(ctx, client.Query{OrganizationID: "org-smedrec", Limit: 20})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(len(page.Events), "events")
	}
	h := c.Health(ctx) // database, cache, partitions ahead, seal lag, last verification
	m := c.Metrics()
	fmt.Println("health:", h.Overall, "cache hit rate:", m.Cache.HitRate)
}
