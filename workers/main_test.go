package workers

import (
	"os"
	"testing"

	"github.com/auditdb/auditdb/tests/harness"
)

func TestMain(m *testing.M) {
	// A re-executed test binary acting as a worker process to be killed
	// (see TestRetentionSurvivesKill) runs that and nothing else.
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperMain())
	}
	harness.Main(m, harness.Options{S3: true})
}
