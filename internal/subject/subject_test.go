package subject

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWhereAtRenumbersTheOneCondition(t *testing.T) {
	t.Parallel()
	require.Equal(t, Where, WhereAt(1))
	require.Equal(t, `(l.principal_id = ANY($4) OR (l.target_resource_type = $5 AND l.target_resource_id = $6))`, WhereAt(4))
	require.Equal(t, `(l.principal_id = ANY($12) OR (l.target_resource_type = $13 AND l.target_resource_id = $14))`, WhereAt(12))
}

func TestIsToken(t *testing.T) {
	t.Parallel()
	tok := Subject{PrincipalID: "dr-1"}.Token([]byte("0123456789abcdef0123456789abcdef"))
	require.True(t, IsToken(tok))
	for _, id := range []string{"", "erased_", "dr-1", "erased_xyz", tok + "0", tok[:len(tok)-1], "ERASED_" + tok[7:], "erased_0123456789ABCDEF0123456789abcdef"} {
		require.False(t, IsToken(id), id)
	}
}
