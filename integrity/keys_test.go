package integrity

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseSealKeys(t *testing.T) {
	t.Parallel()
	k1, err := GenerateSealKey("k1")
	require.NoError(t, err)
	k2, err := GenerateSealKey("k2")
	require.NoError(t, err)
	short := "s:" + base64.StdEncoding.EncodeToString([]byte("too short"))
	secret := strings.SplitN(k1, ":", 2)[1]

	for _, tc := range []struct {
		name, list, active, wantErr, wantActive string
	}{
		{name: "one key is active", list: k1, wantActive: "k1"},
		{name: "two keys need an active id", list: k1 + "," + k2, wantErr: "AUDIT_SEAL_ACTIVE_KEY: required"},
		{name: "active chosen", list: k1 + "\n# retired below\n" + k2, active: "k2", wantActive: "k2"},
		{name: "unknown active", list: k1, active: "k9", wantErr: `key id "k9" is not among`},
		{name: "missing colon", list: "k1", wantErr: "entry 1: want keyid:base64key"},
		{name: "bad base64", list: "k1:!!!", wantErr: `key "k1": not valid base64`},
		{name: "short key", list: short, wantErr: "9 bytes, at least 32"},
		{name: "duplicate", list: k1 + "," + k1, active: "k1", wantErr: `"k1" appears twice`},
		{name: "active in the list", list: k1 + "\n" + k2 + "\nactive=k2", wantActive: "k2"},
		{name: "active given and in the list, agreeing", list: "active=k1," + k1 + "," + k2, active: "k1", wantActive: "k1"},
		{name: "active given and in the list, disagreeing", list: k1 + "," + k2 + ",active=k2", active: "k1", wantErr: `"k1", but the key list says active=k2`},
		{name: "two active entries", list: k1 + ",active=k1,active=k1", wantErr: "entry 3: a second active= entry"},
		{name: "active in the list not among the keys", list: k1 + ",active=k9", wantErr: `key id "k9" is not among`},
		{name: "empty", list: " \n", wantErr: "no seal key configured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ks, err := ParseSealKeys(tc.list, tc.active)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.NotContains(t, err.Error(), secret, "errors never carry key material")
				return
			}
			require.NoError(t, err)
			id, key, err := ks.ActiveKey()
			require.NoError(t, err)
			require.Equal(t, tc.wantActive, id)
			require.Len(t, key, 32)
		})
	}
}

func TestSealKeysFromEnv(t *testing.T) {
	t.Parallel()
	k1, _ := GenerateSealKey("old")
	k2, _ := GenerateSealKey("new")
	file := filepath.Join(t.TempDir(), "keys")
	require.NoError(t, os.WriteFile(file, []byte(k1+"\n"+k2+"\n"), 0o600))
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	ks, err := SealKeysFromEnv(env(map[string]string{"AUDIT_SEAL_KEYS_FILE": file, "AUDIT_SEAL_ACTIVE_KEY": "new"}))
	require.NoError(t, err)
	require.Equal(t, []string{"new", "old"}, ks.IDs())

	_, err = SealKeysFromEnv(env(nil))
	require.ErrorIs(t, err, ErrNoSealKeys)
	_, err = SealKeysFromEnv(env(map[string]string{"AUDIT_SEAL_KEYS": k1, "AUDIT_SEAL_KEYS_FILE": file}))
	require.ErrorContains(t, err, "set one, not both")
}

// The sealed-record messages (README, "Sealed records"), pinned against
// values computed with Python's hmac module so that a change is deliberate.
func TestSealedRecordMACs(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	h := strings.Repeat("ab", 32)
	require.Equal(t, "cbf6e48065703e157b7f306ace7453eb93a26e7e5b44fd29bd153adbada84ffe", ManifestMAC(key, 3, 1, 100, h, 100, h))
	require.Equal(t, "6fb3f8926c0f130805b321799c3bb74104cfd0692d25fbe735b0f8a3f921d613", RedactionMAC(key, 7, 1, 2, 3, strings.Repeat("cd", 32), "gdpr"))
}
