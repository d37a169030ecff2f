package integrity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// External anchoring (INTEGRITY.md, "External anchoring (v1, exact)"):
// signed statements of every chain head, kept outside the database. The
// readings this package pins where the spec leaves room (each held by
// testdata/anchor_vectors.json):
//
//   - heads list every chain 0..K-1 exactly once, in chain order, and the
//     message's "chains" line is len(heads);
//   - an empty chain is seq 0 with its genesis hash, so an empty log is
//     anchored too;
//   - the file is written with the spec's key order, ", " and ": "
//     separators and one trailing newline (MarshalBundle); readers accept
//     any JSON layout but no unknown field;
//   - a witness adds its signature as a sibling object
//     <log>/<n as 20 digits>.cosig.<key_id>.json (Cosignature), since the
//     bundle itself is write-once.
const (
	AnchorFormat  = "auditdb-anchor"
	AnchorVersion = 1
	CosigFormat   = "auditdb-anchor-cosig"
	CosigVersion  = 1
)

// The finding kinds of verification against anchors.
const (
	AnchorMismatch Kind = "anchor_mismatch"
	AnchorForged   Kind = "anchor_forged"
	AnchorGap      Kind = "anchor_gap"
	AnchorRollback Kind = "anchor_rollback"
)

var (
	logIDPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	hexHash      = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ZeroHash is bundle 1's prev: 64 zeros.
var ZeroHash = strings.Repeat("0", 64)

// ValidLogID reports whether s is a log id: a UUID, lowercase with hyphens.
func ValidLogID(s string) bool { return logIDPattern.MatchString(s) }

// AnchorLeaf returns leaf(c) = SHA-256(0x00 || 'auditdb/anchor-leaf/v1\n' ||
// c || '\n' || seq || '\n' || hash_hex).
func AnchorLeaf(chain int16, seq int64, hashHex string) [32]byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write([]byte("auditdb/anchor-leaf/v1\n" + strconv.Itoa(int(chain)) + "\n" + strconv.FormatInt(seq, 10) + "\n" + hashHex))
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func merkleNode(l, r [32]byte) [32]byte {
	var b [65]byte
	b[0] = 1
	copy(b[1:33], l[:])
	copy(b[33:], r[:])
	return sha256.Sum256(b[:])
}

// splitPoint is the largest power of two smaller than n (n > 1).
func splitPoint(n int) int {
	k := 1
	for k*2 < n {
		k *= 2
	}
	return k
}

// MerkleRoot returns the RFC 6962 Merkle tree hash over leaves, which are
// already leaf hashes. It panics on no leaves: a log has at least one chain.
func MerkleRoot(leaves [][32]byte) [32]byte {
	switch len(leaves) {
	case 0:
		panic("integrity: Merkle root of no leaves")
	case 1:
		return leaves[0]
	}
	k := splitPoint(len(leaves))
	return merkleNode(MerkleRoot(leaves[:k]), MerkleRoot(leaves[k:]))
}

// MerklePath returns the RFC 6962 audit path (section 2.1.1) of leaf index
// among leaves, bottom up.
func MerklePath(leaves [][32]byte, index int) [][32]byte {
	if len(leaves) <= 1 {
		return nil
	}
	k := splitPoint(len(leaves))
	if index < k {
		return append(MerklePath(leaves[:k], index), MerkleRoot(leaves[k:]))
	}
	return append(MerklePath(leaves[k:], index-k), MerkleRoot(leaves[:k]))
}

// VerifyMerklePath reports whether path proves leaf at index in a tree of
// size leaves with the given root (RFC 9162, section 2.1.3.2).
func VerifyMerklePath(leaf [32]byte, index, size int, path [][32]byte, root [32]byte) bool {
	if index < 0 || index >= size {
		return false
	}
	fn, sn := index, size-1
	r := leaf
	for _, p := range path {
		if sn == 0 {
			return false
		}
		if fn&1 == 1 || fn == sn {
			r = merkleNode(p, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = merkleNode(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	return sn == 0 && r == root
}

// AnchorHead is one chain's head in a bundle.
type AnchorHead struct {
	Chain int16  `json:"chain"`
	Seq   int64  `json:"seq"`
	Hash  string `json:"hash"`
}

// Leaf returns the head's leaf(c).
func (h AnchorHead) Leaf() [32]byte { return AnchorLeaf(h.Chain, h.Seq, h.Hash) }

// AnchorSignature is one Ed25519 signature of a bundle's message.
type AnchorSignature struct {
	KeyID string `json:"key_id"`
	Sig   string `json:"sig"` // standard base64 with padding of 64 bytes
}

// Bundle is one anchor bundle file.
type Bundle struct {
	Format     string            `json:"format"`
	Version    int               `json:"version"`
	Log        string            `json:"log"`
	Bundle     int64             `json:"bundle"`
	Prev       string            `json:"prev"`
	TimeUS     int64             `json:"time_us"`
	Heads      []AnchorHead      `json:"heads"`
	Root       string            `json:"root"`
	Signatures []AnchorSignature `json:"signatures"`
}

// NewBundle builds bundle n of log over heads (chain order), with its root,
// unsigned.
func NewBundle(logID string, n int64, prev string, timeUS int64, heads []AnchorHead) *Bundle {
	b := &Bundle{Format: AnchorFormat, Version: AnchorVersion, Log: logID, Bundle: n, Prev: prev, TimeUS: timeUS,
		Heads: heads, Signatures: []AnchorSignature{}}
	r := b.ComputeRoot()
	b.Root = hex.EncodeToString(r[:])
	return b
}

// Leaves returns leaf(c) of every head, in order.
func (b *Bundle) Leaves() [][32]byte {
	ls := make([][32]byte, len(b.Heads))
	for i, h := range b.Heads {
		ls[i] = h.Leaf()
	}
	return ls
}

// ComputeRoot returns the Merkle root of the bundle's heads.
func (b *Bundle) ComputeRoot() [32]byte { return MerkleRoot(b.Leaves()) }

// Message returns the signed message, rebuilt from the fields.
func (b *Bundle) Message() []byte {
	return AnchorMessage(b.Log, b.Bundle, b.Prev, b.TimeUS, len(b.Heads), b.Root)
}

// AnchorMessage returns the signed message of INTEGRITY.md: lines
// auditdb/anchor/v1, log, bundle, prev, time, chains, root; no trailing
// newline.
func AnchorMessage(logID string, n int64, prev string, timeUS int64, chains int, rootHex string) []byte {
	return []byte("auditdb/anchor/v1\nlog " + logID + "\nbundle " + strconv.FormatInt(n, 10) + "\nprev " + prev +
		"\ntime " + strconv.FormatInt(timeUS, 10) + "\nchains " + strconv.Itoa(chains) + "\nroot " + rootHex)
}

// MessageSHA256 returns hex SHA-256 of the message: the next bundle's prev.
func (b *Bundle) MessageSHA256() string {
	h := sha256.Sum256(b.Message())
	return hex.EncodeToString(h[:])
}

// BundleKey is the object name of bundle n: <log_id>/<n as 20 digits>.json.
func BundleKey(logID string, n int64) string {
	return fmt.Sprintf("%s/%020d.json", logID, n)
}

// CosigKey is the object name of a witness's cosignature of bundle n.
func CosigKey(logID string, n int64, keyID string) string {
	return fmt.Sprintf("%s/%020d.cosig.%s.json", logID, n, keyID)
}

// ParseBundleKey returns the bundle number of a bundle object name under
// logID, and whether it is one ("<20 digits>.json", not a cosignature).
func ParseBundleKey(logID, key string) (int64, bool) {
	rest, ok := strings.CutPrefix(key, logID+"/")
	if !ok || len(rest) != 25 || !strings.HasSuffix(rest, ".json") {
		return 0, false
	}
	n, err := strconv.ParseInt(rest[:20], 10, 64)
	return n, err == nil && n > 0
}

// ParseCosigKey returns the bundle number and key id of a cosignature
// object name under logID.
func ParseCosigKey(logID, key string) (int64, string, bool) {
	rest, ok := strings.CutPrefix(key, logID+"/")
	if !ok || len(rest) < 20+len(".cosig.x.json") {
		return 0, "", false
	}
	id, ok := strings.CutPrefix(rest[20:], ".cosig.")
	if !ok {
		return 0, "", false
	}
	id, ok = strings.CutSuffix(id, ".json")
	n, err := strconv.ParseInt(rest[:20], 10, 64)
	return n, id, ok && err == nil && n > 0 && keyIDPattern.MatchString(id)
}

// MarshalBundle returns the bundle file in the pinned form.
func MarshalBundle(b *Bundle) []byte {
	var w bytes.Buffer
	fmt.Fprintf(&w, `{"format": %s, "version": %d, "log": %s, "bundle": %d, "prev": %s, "time_us": %d, "heads": [`,
		jstr(b.Format), b.Version, jstr(b.Log), b.Bundle, jstr(b.Prev), b.TimeUS)
	for i, h := range b.Heads {
		if i > 0 {
			w.WriteString(", ")
		}
		fmt.Fprintf(&w, `{"chain": %d, "seq": %d, "hash": %s}`, h.Chain, h.Seq, jstr(h.Hash))
	}
	fmt.Fprintf(&w, `], "root": %s, "signatures": [`, jstr(b.Root))
	for i, s := range b.Signatures {
		if i > 0 {
			w.WriteString(", ")
		}
		fmt.Fprintf(&w, `{"key_id": %s, "sig": %s}`, jstr(s.KeyID), jstr(s.Sig))
	}
	w.WriteString("]}\n")
	return w.Bytes()
}

func jstr(s string) string {
	return string(appendJSONString(nil, []byte(s)))
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown
// fields and trailing data.
func decodeStrict(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return fmt.Errorf("not JSON (syntax error at byte %d)", se.Offset)
		case errors.As(err, &te):
			return fmt.Errorf("field %s: wrong JSON type", te.Field)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			// the field name is the file's, not a secret: name it
			return errors.New(strings.TrimPrefix(err.Error(), "json: "))
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return errors.New("not JSON (empty or cut short)")
		}
		return errors.New("not a JSON object of the expected shape")
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

// ParseBundle reads a bundle file and checks its shape: format, version,
// log id, numbers, hex fields, heads listing chains 0..K-1 in order, and
// signatures of 64 bytes under valid key ids. It does not check roots or
// signatures (VerifyBundle does). Errors name the field, never a value.
func ParseBundle(data []byte) (*Bundle, error) {
	var b Bundle
	if err := decodeStrict(data, &b); err != nil {
		return nil, err
	}
	switch {
	case b.Format != AnchorFormat:
		return nil, fmt.Errorf("field format: must be %q", AnchorFormat)
	case b.Version != AnchorVersion:
		return nil, fmt.Errorf("field version: %d, this verifier reads version %d", b.Version, AnchorVersion)
	case !ValidLogID(b.Log):
		return nil, errors.New("field log: must be a lowercase UUID")
	case b.Bundle < 1:
		return nil, errors.New("field bundle: must be 1 or more")
	case !hexHash.MatchString(b.Prev):
		return nil, errors.New("field prev: must be 64 lowercase hex digits")
	case !hexHash.MatchString(b.Root):
		return nil, errors.New("field root: must be 64 lowercase hex digits")
	case len(b.Heads) == 0 || len(b.Heads) > 32767:
		return nil, errors.New("field heads: must list 1 to 32767 chains")
	}
	for i, h := range b.Heads {
		switch {
		case int(h.Chain) != i:
			return nil, fmt.Errorf("field heads[%d]: chain %d, but heads must list chains 0..K-1 in order", i, h.Chain)
		case h.Seq < 0:
			return nil, fmt.Errorf("field heads[%d].seq: must not be negative", i)
		case !hexHash.MatchString(h.Hash):
			return nil, fmt.Errorf("field heads[%d].hash: must be 64 lowercase hex digits", i)
		}
	}
	for i, s := range b.Signatures {
		if err := checkSigShape(s); err != nil {
			return nil, fmt.Errorf("field signatures[%d]: %w", i, err)
		}
	}
	return &b, nil
}

func checkSigShape(s AnchorSignature) error {
	if !keyIDPattern.MatchString(s.KeyID) {
		return errors.New("key_id must be 1-64 characters of A-Z a-z 0-9 . _ -")
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(s.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("sig must be standard base64 of %d bytes", ed25519.SignatureSize)
	}
	return nil
}

// Cosignature is a witness's signature of bundle n's message, kept as its
// own write-once object next to the bundle (CosigKey).
type Cosignature struct {
	Format        string `json:"format"`
	Version       int    `json:"version"`
	Log           string `json:"log"`
	Bundle        int64  `json:"bundle"`
	MessageSHA256 string `json:"message_sha256"`
	KeyID         string `json:"key_id"`
	Sig           string `json:"sig"`
}

// MarshalCosignature returns the cosignature file in the pinned form.
func MarshalCosignature(c *Cosignature) []byte {
	return fmt.Appendf(nil, `{"format": %s, "version": %d, "log": %s, "bundle": %d, "message_sha256": %s, "key_id": %s, "sig": %s}`+"\n",
		jstr(c.Format), c.Version, jstr(c.Log), c.Bundle, jstr(c.MessageSHA256), jstr(c.KeyID), jstr(c.Sig))
}

// ParseCosignature reads a cosignature file and checks its shape.
func ParseCosignature(data []byte) (*Cosignature, error) {
	var c Cosignature
	if err := decodeStrict(data, &c); err != nil {
		return nil, err
	}
	switch {
	case c.Format != CosigFormat:
		return nil, fmt.Errorf("field format: must be %q", CosigFormat)
	case c.Version != CosigVersion:
		return nil, fmt.Errorf("field version: %d, this verifier reads version %d", c.Version, CosigVersion)
	case !ValidLogID(c.Log):
		return nil, errors.New("field log: must be a lowercase UUID")
	case c.Bundle < 1:
		return nil, errors.New("field bundle: must be 1 or more")
	case !hexHash.MatchString(c.MessageSHA256):
		return nil, errors.New("field message_sha256: must be 64 lowercase hex digits")
	}
	if err := checkSigShape(AnchorSignature{KeyID: c.KeyID, Sig: c.Sig}); err != nil {
		return nil, fmt.Errorf("field %w", err)
	}
	return &c, nil
}

// AnchorSigner signs bundles with an Ed25519 key.
type AnchorSigner struct {
	ID  string
	key ed25519.PrivateKey
}

// Sign returns the signature of msg.
func (s *AnchorSigner) Sign(msg []byte) AnchorSignature {
	return AnchorSignature{KeyID: s.ID, Sig: base64.StdEncoding.EncodeToString(ed25519.Sign(s.key, msg))}
}

// Public returns the public key.
func (s *AnchorSigner) Public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// PublicLine returns "id:base64(public key)", what verifiers are given.
func (s *AnchorSigner) PublicLine() string {
	return s.ID + ":" + base64.StdEncoding.EncodeToString(s.Public())
}

// ParseAnchorPrivateKey reads a private key line "id:base64(32-byte
// seed)". name is the setting it came from, which errors name (never the
// key).
func ParseAnchorPrivateKey(line, name string) (*AnchorSigner, error) {
	line = strings.TrimSpace(line)
	id, b64, ok := strings.Cut(line, ":")
	if !ok {
		return nil, fmt.Errorf("%s: want keyid:base64seed", name)
	}
	if !keyIDPattern.MatchString(id) {
		return nil, fmt.Errorf("%s: key id must be 1-64 characters of A-Z a-z 0-9 . _ -", name)
	}
	seed, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%s: key %q: not valid base64", name, id)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%s: key %q: %d bytes, an Ed25519 seed is %d", name, id, len(seed), ed25519.SeedSize)
	}
	return &AnchorSigner{ID: id, key: ed25519.NewKeyFromSeed(seed)}, nil
}

// ErrNoAnchorKey means no anchoring key is configured.
var ErrNoAnchorKey = errors.New("no anchor key configured: set AUDIT_ANCHOR_KEY (keyid:base64seed) or AUDIT_ANCHOR_KEY_FILE; `auditworker keys generate --kind anchor --id ID` makes one")

// AnchorKeyFromEnv reads AUDIT_ANCHOR_KEY, or the file AUDIT_ANCHOR_KEY_FILE
// (one line). It returns ErrNoAnchorKey when neither is set.
func AnchorKeyFromEnv(getenv func(string) string) (*AnchorSigner, error) {
	line, file := getenv("AUDIT_ANCHOR_KEY"), getenv("AUDIT_ANCHOR_KEY_FILE")
	switch {
	case line != "" && file != "":
		return nil, errors.New("AUDIT_ANCHOR_KEY and AUDIT_ANCHOR_KEY_FILE: set one, not both")
	case file != "":
		return ReadAnchorKeyFile(file, "AUDIT_ANCHOR_KEY_FILE")
	case line != "":
		return ParseAnchorPrivateKey(line, "AUDIT_ANCHOR_KEY")
	}
	return nil, ErrNoAnchorKey
}

// ReadAnchorKeyFile reads a private key line from a file; name is the
// setting that named the file.
func ReadAnchorKeyFile(path, name string) (*AnchorSigner, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return ParseAnchorPrivateKey(string(b), name)
}

// GenerateAnchorKey returns a new private key line "id:base64(seed)".
func GenerateAnchorKey(id string) (string, error) {
	if !keyIDPattern.MatchString(id) {
		return "", errors.New("key id must be 1-64 characters of A-Z a-z 0-9 . _ -")
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return "", err
	}
	return id + ":" + base64.StdEncoding.EncodeToString(seed), nil
}

// AnchorKeys are the public keys a verifier accepts signatures from, by id.
type AnchorKeys map[string]ed25519.PublicKey

// IDs lists the key ids, sorted.
func (k AnchorKeys) IDs() []string {
	ids := make([]string, 0, len(k))
	for id := range k {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// ParseAnchorKeys reads "id:base64pub" entries separated by commas,
// whitespace or newlines. name is the setting, which errors name.
func ParseAnchorKeys(list, name string) (AnchorKeys, error) {
	keys := AnchorKeys{}
	entries := strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
	for i, e := range entries {
		id, b64, ok := strings.Cut(e, ":")
		if !ok {
			return nil, fmt.Errorf("%s: entry %d: want keyid:base64publickey", name, i+1)
		}
		if !keyIDPattern.MatchString(id) {
			return nil, fmt.Errorf("%s: entry %d: key id must be 1-64 characters of A-Z a-z 0-9 . _ -", name, i+1)
		}
		pub, err := base64.StdEncoding.Strict().DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("%s: key %q: not valid base64", name, id)
		}
		if len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%s: key %q: %d bytes, an Ed25519 public key is %d", name, id, len(pub), ed25519.PublicKeySize)
		}
		if _, dup := keys[id]; dup {
			return nil, fmt.Errorf("%s: key id %q appears twice", name, id)
		}
		keys[id] = pub
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no keys", name)
	}
	return keys, nil
}

// VerifySignature checks one signature of msg under keys: "" when it
// verifies, else why not.
func (k AnchorKeys) VerifySignature(msg []byte, s AnchorSignature) string {
	pub, ok := k[s.KeyID]
	if !ok {
		return "signature by key id " + s.KeyID + ", which is not among the anchor keys"
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(s.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, msg, sig) {
		return "signature by key " + s.KeyID + " does not verify"
	}
	return ""
}
