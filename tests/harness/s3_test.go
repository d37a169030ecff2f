package harness

import (
	"os"
	"strings"
	"testing"
)

// TestCIInstallsPinnedVersitygw keeps .ci/run and the harness's error
// message on the same pinned server version.
func TestCIInstallsPinnedVersitygw(t *testing.T) {
	b, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "go install "+VersitygwInstall+"\n") {
		t.Fatalf(".ci/run does not install %s", VersitygwInstall)
	}
}
