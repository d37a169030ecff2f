package objstore_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/auditdb/auditdb/tests/harness"
)

// s3srv is the S3-compatible server the S3 tests use.
var s3srv *harness.S3

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// `make test-unit` runs without services: the S3 tests skip
		// themselves (needS3) and say so
		os.Exit(m.Run())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	srv, err := harness.StartS3(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "objstore tests:", err)
		os.Exit(1)
	}
	s3srv = srv
	code := m.Run()
	srv.Stop()
	if code == 0 {
		if err := goleak.Find(harness.LeakOptions()...); err != nil {
			fmt.Fprintln(os.Stderr, "objstore tests: goroutines left running:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// needS3 skips the calling test under -short (no services) and otherwise
// returns the server TestMain started.
func needS3(t *testing.T) *harness.S3 {
	t.Helper()
	if s3srv == nil {
		t.Skip("-short: no S3 server started (run without -short; see harness.StartS3)")
	}
	return s3srv
}
