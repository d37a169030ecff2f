package integrity

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
)

// SealKeys are the HMAC keys the worker seals with: every key id that may
// appear in integrity_checkpoints, archive_manifests or redactions, and the
// one new seals use. Retired keys stay in Ring so old seals still verify;
// rotating is adding a key and moving Active to it, no migration.
type SealKeys struct {
	Active string
	Ring   Keyring
}

// MinSealKeyBytes is the shortest key accepted: HMAC-SHA-256 keys shorter
// than the hash add no strength and usually mean a truncated secret.
const MinSealKeyBytes = 32

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ErrNoSealKeys means no key is configured: sealing cannot start.
var ErrNoSealKeys = errors.New("no seal key configured: set AUDIT_SEAL_KEYS (keyid:base64key,...) and AUDIT_SEAL_ACTIVE_KEY, or AUDIT_SEAL_KEYS_FILE; `auditworker keys generate` makes one")

// ActiveKey returns the active key's id and bytes.
func (k *SealKeys) ActiveKey() (string, []byte, error) {
	if k == nil || len(k.Ring) == 0 {
		return "", nil, ErrNoSealKeys
	}
	key, ok := k.Ring[k.Active]
	if !ok {
		return "", nil, fmt.Errorf("AUDIT_SEAL_ACTIVE_KEY: key id %q is not among the configured keys", k.Active)
	}
	return k.Active, key, nil
}

// IDs lists the configured key ids, sorted.
func (k *SealKeys) IDs() []string {
	ids := make([]string, 0, len(k.Ring))
	for id := range k.Ring {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// ParseSealKeys reads a key list: entries "keyid:base64key" separated by
// commas, whitespace or newlines ('#' starts a comment line). The key new
// seals use is active if given, else the list's "active=keyid" entry (so
// that a keys file alone can move it, and a running worker reload it),
// else the only key; several keys and neither is an error, and so are an
// active and an "active=" that disagree. Errors name the entry by position
// and key id, never the key material.
func ParseSealKeys(list, active string) (*SealKeys, error) {
	ks := &SealKeys{Ring: Keyring{}}
	var lines []string
	for _, line := range strings.Split(list, "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	entries := strings.FieldsFunc(strings.Join(lines, ","), func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	listed := ""
	for i, e := range entries {
		if id, ok := strings.CutPrefix(e, "active="); ok {
			if listed != "" {
				return nil, fmt.Errorf("AUDIT_SEAL_KEYS: entry %d: a second active= entry", i+1)
			}
			listed = id
			continue
		}
		id, b64, ok := strings.Cut(e, ":")
		if !ok {
			return nil, fmt.Errorf("AUDIT_SEAL_KEYS: entry %d: want keyid:base64key", i+1)
		}
		if !keyIDPattern.MatchString(id) {
			return nil, fmt.Errorf("AUDIT_SEAL_KEYS: entry %d: key id must be 1-64 characters of A-Z a-z 0-9 . _ -", i+1)
		}
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			key, err = base64.RawStdEncoding.DecodeString(b64)
		}
		if err != nil {
			return nil, fmt.Errorf("AUDIT_SEAL_KEYS: key %q: not valid base64", id)
		}
		if len(key) < MinSealKeyBytes {
			return nil, fmt.Errorf("AUDIT_SEAL_KEYS: key %q: %d bytes, at least %d required", id, len(key), MinSealKeyBytes)
		}
		if _, dup := ks.Ring[id]; dup {
			return nil, fmt.Errorf("AUDIT_SEAL_KEYS: key id %q appears twice", id)
		}
		ks.Ring[id] = key
	}
	if len(ks.Ring) == 0 {
		return nil, ErrNoSealKeys
	}
	if active != "" && listed != "" && active != listed {
		return nil, fmt.Errorf("AUDIT_SEAL_ACTIVE_KEY: %q, but the key list says active=%s", active, listed)
	}
	switch {
	case active != "":
		ks.Active = active
	case listed != "":
		ks.Active = listed
	case len(ks.Ring) == 1:
		for id := range ks.Ring {
			ks.Active = id
		}
	default:
		return nil, errors.New("AUDIT_SEAL_ACTIVE_KEY: required when several seal keys are configured (or an active=keyid entry in the key list)")
	}
	if _, _, err := ks.ActiveKey(); err != nil {
		return nil, err
	}
	return ks, nil
}

// SealKeysFromEnv reads AUDIT_SEAL_KEYS, or the file AUDIT_SEAL_KEYS_FILE
// (same format, one entry per line), and AUDIT_SEAL_ACTIVE_KEY. It returns
// ErrNoSealKeys when none is set.
func SealKeysFromEnv(getenv func(string) string) (*SealKeys, error) {
	list, file := getenv("AUDIT_SEAL_KEYS"), getenv("AUDIT_SEAL_KEYS_FILE")
	if list != "" && file != "" {
		return nil, errors.New("AUDIT_SEAL_KEYS and AUDIT_SEAL_KEYS_FILE: set one, not both")
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("AUDIT_SEAL_KEYS_FILE: %w", err)
		}
		list = string(b)
	}
	if strings.TrimSpace(list) == "" {
		return nil, ErrNoSealKeys
	}
	return ParseSealKeys(list, getenv("AUDIT_SEAL_ACTIVE_KEY"))
}

// GenerateSealKey returns a new random 32-byte key as "keyid:base64key".
func GenerateSealKey(id string) (string, error) {
	if !keyIDPattern.MatchString(id) {
		return "", errors.New("key id must be 1-64 characters of A-Z a-z 0-9 . _ -")
	}
	key := make([]byte, MinSealKeyBytes)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	return id + ":" + base64.StdEncoding.EncodeToString(key), nil
}
