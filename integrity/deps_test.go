package integrity

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The package is for third parties who check evidence without a database:
// it must not pull in a database driver, directly or through a dependency.
func TestNoDatabaseDriver(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	require.NoError(t, err)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "crypto/sha256", "go list -deps printed the dependencies")
	for _, d := range deps {
		for _, banned := range []string{"github.com/jackc/", "github.com/lib/pq", "database/sql", "github.com/auditdb/auditdb/internal/"} {
			require.False(t, strings.HasPrefix(d, banned), "integrity depends on %s", d)
		}
	}
}
