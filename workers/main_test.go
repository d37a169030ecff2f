package workers

import (
	"testing"

	"github.com/auditdb/auditdb/tests/harness"
)

func TestMain(m *testing.M) {
	harness.Main(m, harness.Options{})
}
