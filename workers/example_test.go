package workers_test

import (
	"context"
	"log"
	"net/http"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/workers"
)

// The worker suite in a program of your own: what `auditworker run` does.
func ExampleNewSuite() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("AUDIT_DB_URL"))
	if err != nil {
		log.Fatal(err)
	}
	keys, err := integrity.SealKeysFromEnv(os.Getenv) // AUDIT_SEAL_KEYS, AUDIT_SEAL_ACTIVE_KEY
	if err != nil {
		log.Fatal(err)
	}
	suite, err := workers.NewSuite(&workers.Deps{Pool: pool, Keys: keys}, workers.SuiteConfig{}) // defaults: seal 10s, verify 5m, full 24h
	if err != nil {
		log.Fatal(err)
	}
	if err := suite.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer suite.Stop(ctx)
	log.Fatal(http.ListenAndServe(":9187", suite.Handler())) // /healthz /readyz /metrics
}
