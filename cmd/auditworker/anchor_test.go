package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/tests/harness"
)

// anchorKeyPair returns a private anchor key line and its public line.
func anchorKeyPair(t *testing.T, id string) (string, string) {
	t.Helper()
	priv, err := integrity.GenerateAnchorKey(id)
	require.NoError(t, err)
	s, err := integrity.ParseAnchorPrivateKey(priv, "test")
	require.NoError(t, err)
	return priv, s.PublicLine()
}

// resealAttack is what the holder of the database and the seal key can do:
// change a row, recompute every later chain hash and the head (the keyless
// attack of the demo), then re-seal every checkpoint of the chain at or
// after the row (the demo's resealChain), so that keyed verification finds
// nothing.
func resealAttack(t *testing.T, pool *pgxpool.Pool, keys *integrity.SealKeys, id int64, chain int16, seq int64) {
	t.Helper()
	ctx := context.Background()
	attack := strings.Replace(recomputeAttack(id, chain, seq), "SET status = 'success'", "SET action = 'fhir.patient.never.read'", 1)
	_, err := pool.Exec(ctx, attack)
	require.NoError(t, err)
	n, err := resealChain(ctx, pool, keys, chain, seq)
	require.NoError(t, err)
	require.Positive(t, n, "a checkpoint seals the rewritten rows")
}

func findingsOf(t *testing.T, out string) []integrity.Finding {
	t.Helper()
	var rep integrity.Report
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	return rep.Findings
}

func kindsAt(fs []integrity.Finding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s@%d/%d", f.Kind, f.ChainID, f.ChainSeq))
	}
	return out
}

// The attack the anchors exist for, end to end, and what the sink's
// tampering looks like: write, seal, anchor; rewrite a chain with the seal
// key and re-seal: keyed verification says intact, verification against
// the anchors says anchor_mismatch at that chain and the anchored seq.
func TestAnchorCatchesRewriteWithTheSealKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	sink := t.TempDir()
	sealEntry := sealKey(t, "k1")
	keys, err := integrity.ParseSealKeys(sealEntry, "")
	require.NoError(t, err)
	priv, pub := anchorKeyPair(t, "anchor-1")
	base := []string{"--database-url", db.URL}
	anchorArgs := append(append([]string(nil), base...), "anchor", "--seal-keys", sealEntry, "--anchor-key", priv, "--sink", sink)
	verifyArgs := func(extra ...string) []string {
		return append(append(append([]string(nil), base...), "verify", "--seal-keys", sealEntry, "--json"), extra...)
	}

	// bundle 1 anchors an empty log
	code, out, errOut := run(t, anchorArgs...)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "no Object Lock")
	fillChains(t, db.URL, 3, 50)
	code, _, errOut = run(t, append(anchorArgs, "--json")...)
	require.Equal(t, 0, code, errOut)
	fillChains(t, db.URL, 2, 20)
	code, _, errOut = run(t, anchorArgs...)
	require.Equal(t, 0, code, errOut)

	var logID string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT value FROM audit.settings WHERE key = 'log_id'`).Scan(&logID))
	files, err := filepath.Glob(filepath.Join(sink, logID, "*.json"))
	require.NoError(t, err)
	require.Len(t, files, 3, "three bundles, one file each")

	code, out, errOut = run(t, verifyArgs("--anchors", sink, "--anchor-keys", pub)...)
	require.Equal(t, 0, code, "%s%s", out, errOut)
	var rep integrity.Report
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Equal(t, 3, rep.Anchors.Trusted)
	anchored := 0
	for _, ch := range rep.Chains {
		anchored += ch.Anchors
	}
	require.Positive(t, anchored)

	// The victim: a row of a chain bundle 2 anchored, before its anchored seq.
	b2, err := os.ReadFile(filepath.Join(sink, integrity.BundleKey(logID, 2)))
	require.NoError(t, err)
	bundle2, err := integrity.ParseBundle(b2)
	require.NoError(t, err)
	var victim integrity.AnchorHead
	for _, h := range bundle2.Heads {
		if h.Seq > 10 {
			victim = h
			break
		}
	}
	require.NotZero(t, victim.Seq)
	var id int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT id FROM audit.audit_log WHERE chain_id = $1 AND chain_seq = 5`, victim.Chain).Scan(&id))
	resealAttack(t, db.Pool, keys, id, victim.Chain, 5)

	code, out, errOut = run(t, verifyArgs()...)
	require.Equal(t, 0, code, "with the seal key the rewrite passes keyed verification: %s%s", out, errOut)

	code, out, _ = run(t, verifyArgs("--anchors", sink, "--anchor-keys", pub)...)
	require.Equal(t, 2, code, out)
	fs := findingsOf(t, out)
	require.Contains(t, kindsAt(fs), fmt.Sprintf("anchor_mismatch@%d/%d", victim.Chain, victim.Seq))
	for _, f := range fs {
		require.Equal(t, integrity.AnchorMismatch, f.Kind, "%+v", f)
		require.Equal(t, victim.Chain, f.ChainID)
	}
	// the table says it too, and --incremental (after a recorded full run) still catches it
	code, out, _ = run(t, append(base, "verify", "--seal-keys", sealEntry, "--anchors", sink, "--anchor-keys", pub)...)
	require.Equal(t, 2, code)
	require.Contains(t, out, "anchor_mismatch")
	require.Contains(t, out, "anchors: log "+logID+", 3 bundle(s) read, 3 trusted")
	code, out, _ = run(t, append(base, "verify", "--seal-keys", sealEntry)...)
	require.Equal(t, 0, code, "a recorded intact run for the incremental one to start after")
	code, out, _ = run(t, verifyArgs("--incremental", "--anchors", sink, "--anchor-keys", pub)...)
	require.Equal(t, 2, code, out)
	require.Contains(t, kindsAt(findingsOf(t, out)), fmt.Sprintf("anchor_mismatch@%d/%d", victim.Chain, victim.Seq))

	// Re-anchoring the rewritten history does not help: the old bundles stay.
	code, _, errOut = run(t, anchorArgs...)
	require.Equal(t, 0, code, errOut)
	code, out, _ = run(t, verifyArgs("--anchors", sink, "--anchor-keys", pub)...)
	require.Equal(t, 2, code)
	require.Contains(t, kindsAt(findingsOf(t, out)), fmt.Sprintf("anchor_mismatch@%d/%d", victim.Chain, victim.Seq))

	// The sink's own tampering: an edited bundle is anchor_forged, a
	// deleted one anchor_gap, garbage a finding naming the object.
	edit := func(n int64, f func([]byte) []byte) {
		p := filepath.Join(sink, integrity.BundleKey(logID, n))
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		require.NoError(t, os.Chmod(p, 0o600))
		require.NoError(t, os.WriteFile(p, f(b), 0o600))
	}
	edit(3, func(b []byte) []byte { return []byte(strings.Replace(string(b), `"time_us": `, `"time_us": 1`, 1)) })
	code, out, _ = run(t, verifyArgs("--anchors", sink, "--anchor-keys", pub)...)
	require.Equal(t, 2, code)
	fs = findingsOf(t, out)
	require.Contains(t, kindsAt(fs), "anchor_forged@0/0")
	require.Contains(t, kindsAt(fs), "anchor_gap@0/0", "bundle 4's prev no longer matches bundle 3's message")
	require.NoError(t, os.Remove(filepath.Join(sink, integrity.BundleKey(logID, 2))))
	edit(3, func([]byte) []byte { return []byte("not json at all") })
	code, out, _ = run(t, verifyArgs("--anchors", sink, "--anchor-keys", pub)...)
	require.Equal(t, 2, code)
	details := ""
	for _, f := range findingsOf(t, out) {
		details += string(f.Kind) + ": " + f.Detail + "\n"
	}
	require.Contains(t, details, "anchor_gap: bundle 2 is missing from the sink before "+integrity.BundleKey(logID, 3))
	require.Contains(t, details, "anchor_forged: bundle "+integrity.BundleKey(logID, 3)+": not JSON")

	// bad settings: refused at start, naming the setting, never the value
	code, _, errOut = run(t, append(base, "verify", "--anchors", sink, "--anchor-keys", "anchor-1:c2VjcmV0")...)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `anchor-keys: key "anchor-1": 6 bytes, an Ed25519 public key is 32`)
	code, _, errOut = run(t, append(base, "verify", "--anchors", sink)...)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "anchor-keys: required with --anchors")
	code, _, errOut = run(t, append(base, "anchor", "--anchor-key", "a1:c2VjcmV0LXNlZWQ=", "--sink", sink)...)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `AUDIT_ANCHOR_KEY: key "a1": 11 bytes, an Ed25519 seed is 32`)
	require.NotContains(t, errOut, "c2VjcmV0LXNlZWQ=")
	code, _, errOut = run(t, append(base, "run", "--listen", "127.0.0.1:0", "--seal-interval", "0", "--anchor-key", "a1:!!", "--sink", sink)...)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `AUDIT_ANCHOR_KEY: key "a1": not valid base64`)
}

// keys generate --kind anchor, keys public: the pair verifies.
func TestAnchorKeysCommands(t *testing.T) {
	t.Parallel()
	code, out, errOut := run(t, "keys", "generate", "--kind", "anchor", "--id", "log-1")
	require.Equal(t, 0, code, errOut)
	priv := strings.TrimSpace(out)
	require.True(t, strings.HasPrefix(priv, "log-1:"))
	require.Len(t, strings.TrimPrefix(priv, "log-1:"), 44, "base64 of a 32-byte seed")
	cmd := exec.Command(os.Args[0], "keys", "public")
	cmd.Env = append(os.Environ(), "AUDITWORKER_TEST_EXEC=1")
	cmd.Stdin = strings.NewReader(priv + "\n")
	pubOut, err := cmd.Output()
	require.NoError(t, err)
	signer, err := integrity.ParseAnchorPrivateKey(priv, "test")
	require.NoError(t, err)
	require.Equal(t, signer.PublicLine()+"\n", string(pubOut))
	_, err = integrity.ParseAnchorKeys(strings.TrimSpace(string(pubOut)), "test")
	require.NoError(t, err)
	code, _, errOut = run(t, "keys", "generate", "--kind", "nope")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "kind: want seal or anchor")
}

// An anchor killed (SIGKILL, in a real process) after reserving its bundle,
// or after putting it in the sink but before recording that, never leaves
// two different bundles under one number: the next anchor finishes the
// reserved one (the same statement, byte for byte) and only then goes on.
func TestAnchorKilledMidway(t *testing.T) {
	t.Parallel()
	for _, step := range []string{"reserved", "put"} {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := harness.NewDB(t)
			sink := t.TempDir()
			priv, pub := anchorKeyPair(t, "a1")
			fillChains(t, db.URL, 2, 30)
			cmd := exec.Command(os.Args[0], "--database-url", db.URL, "anchor", "--sink", sink)
			cmd.Env = append(os.Environ(), "AUDITWORKER_TEST_EXEC=1", "AUDITWORKER_FAULT_ANCHOR_STOP="+step, "AUDIT_ANCHOR_KEY="+priv,
				"AUDIT_ANCHOR_KEY_FILE=", "AUDIT_SEAL_KEYS=", "AUDIT_SEAL_KEYS_FILE=")
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			cmd.Stderr = os.Stderr
			require.NoError(t, cmd.Start())
			line := make([]byte, 64)
			n, err := stdout.Read(line)
			require.NoError(t, err)
			require.Equal(t, "PAUSED "+step+" 1\n", string(line[:n]))
			require.NoError(t, cmd.Process.Kill()) // no deferred cleanup runs
			_ = cmd.Wait()

			var logID string
			require.NoError(t, db.Pool.QueryRow(ctx, `SELECT value FROM audit.settings WHERE key = 'log_id'`).Scan(&logID))
			var reserved, written int
			require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*), count(written_at) FROM audit.anchor_bundles`).Scan(&reserved, &written))
			require.Equal(t, []int{1, 0}, []int{reserved, written}, "reserved, not recorded as written")
			first := filepath.Join(sink, integrity.BundleKey(logID, 1))
			before, statErr := os.ReadFile(first)
			if step == "reserved" {
				require.True(t, os.IsNotExist(statErr), "killed before the put: no object")
			} else {
				require.NoError(t, statErr, "killed after the put: the object is there")
			}

			// rows written meanwhile do not change the reserved bundle
			fillChains(t, db.URL, 2, 10)
			code, out, errOut := run(t, "--database-url", db.URL, "anchor", "--sink", sink, "--anchor-key", priv, "--json")
			require.Equal(t, 0, code, errOut)
			var rep struct {
				Bundle  int64 `json:"bundle"`
				Resumed bool  `json:"resumed"`
				Written bool  `json:"written"`
			}
			require.NoError(t, json.Unmarshal([]byte(out), &rep))
			require.Equal(t, int64(1), rep.Bundle)
			require.True(t, rep.Resumed)
			require.Equal(t, step == "reserved", rep.Written, "after a put, the retry finds the same bytes there")
			after, err := os.ReadFile(first)
			require.NoError(t, err)
			if step == "put" {
				require.Equal(t, before, after, "the same bundle, byte for byte")
			}
			b1, err := integrity.ParseBundle(after)
			require.NoError(t, err)
			for _, h := range b1.Heads {
				require.LessOrEqual(t, h.Seq, int64(30), "bundle 1 anchors the heads it reserved, not the later ones")
			}

			code, _, errOut = run(t, "--database-url", db.URL, "anchor", "--sink", sink, "--anchor-key", priv)
			require.Equal(t, 0, code, errOut)
			files, err := filepath.Glob(filepath.Join(sink, logID, "*.json"))
			require.NoError(t, err)
			require.Len(t, files, 2)
			code, out, _ = run(t, "--database-url", db.URL, "verify", "--anchors", sink, "--anchor-keys", pub)
			require.Equal(t, 0, code, out)
			require.Contains(t, out, "2 bundle(s) read, 2 trusted")
		})
	}
}

// `run` anchors as a periodic job, after sealing.
func TestRunAnchorsPeriodically(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	sink := t.TempDir()
	priv, pub := anchorKeyPair(t, "a1")
	fillChains(t, db.URL, 2, 10)
	stop := runInProcess(t, "--database-url", db.URL, "run", "--listen", "127.0.0.1:0", "--seal-interval", "1s",
		"--seal-keys", sealKey(t, "k1"), "--anchor-interval", "1s", "--anchor-key", priv, "--sink", sink,
		"--verify-interval", "0", "--full-verify-interval", "0", "--optimize-interval", "0", "--alerts-interval", "0")
	deadline := time.Now().Add(30 * time.Second)
	var n int
	for time.Now().Before(deadline) {
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(written_at) FROM audit.anchor_bundles`).Scan(&n))
		if n >= 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, out := stop()
	require.Equal(t, 0, code, out)
	require.GreaterOrEqual(t, n, 2, "two periods, two bundles: %s", out)
	var unsealedAtAnchor int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.anchor_bundles b, jsonb_array_elements(b.heads) h
		WHERE (h->>'seq')::bigint > 0 AND NOT EXISTS (SELECT 1 FROM audit.integrity_checkpoints c
		WHERE c.chain_id = (h->>'chain')::int AND c.chain_seq = (h->>'seq')::bigint)`).Scan(&unsealedAtAnchor))
	require.Zero(t, unsealedAtAnchor, "every anchored head was sealed first")
	code, out, _ = run(t, "--database-url", db.URL, "verify", "--anchors", sink, "--anchor-keys", pub)
	require.Equal(t, 0, code, out)
}

// A witness cosigns with `anchor cosign` (no database), verification
// requires both signatures, and a forked bundle is refused with exit 2.
func TestWitnessCosignCommand(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	sink, state := t.TempDir(), t.TempDir()
	priv, pub := anchorKeyPair(t, "log-key")
	witPriv, witPub := anchorKeyPair(t, "witness-1")
	keyFile := filepath.Join(t.TempDir(), "witness.key")
	require.NoError(t, os.WriteFile(keyFile, []byte(witPriv+"\n"), 0o600))
	anchorArgs := []string{"--database-url", db.URL, "anchor", "--anchor-key", priv, "--sink", sink}
	cosign := []string{"anchor", "cosign", "--sink", sink, "--key-file", keyFile, "--state", state, "--anchor-keys", pub}
	both := pub + "," + witPub

	code, _, errOut := run(t, anchorArgs...)
	require.Equal(t, 0, code, errOut)
	code, out, _ := run(t, "--database-url", db.URL, "verify", "--anchors", sink, "--anchor-keys", both, "--min-signatures", "2")
	require.Equal(t, 2, code, "not cosigned yet: %s", out)
	require.Contains(t, out, "1 valid signature(s) by known keys, 2 required")

	code, out, errOut = run(t, cosign...)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "cosigned 1 bundle(s) [1]")
	fillChains(t, db.URL, 2, 10)
	code, _, errOut = run(t, anchorArgs...)
	require.Equal(t, 0, code, errOut)
	code, out, errOut = run(t, cosign...)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "cosigned 1 bundle(s) [2]")
	code, out, _ = run(t, "--database-url", db.URL, "verify", "--anchors", sink, "--anchor-keys", both, "--min-signatures", "2")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "2 trusted (2 witness cosignature(s))")

	// the operator replaces bundle 2 (a directory sink cannot stop them)
	var logID string
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT value FROM audit.settings WHERE key = 'log_id'`).Scan(&logID))
	p := filepath.Join(sink, integrity.BundleKey(logID, 2))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	forged, err := integrity.ParseBundle(b)
	require.NoError(t, err)
	forged = integrity.NewBundle(forged.Log, forged.Bundle, forged.Prev, forged.TimeUS+1, forged.Heads)
	signer, err := integrity.ParseAnchorPrivateKey(priv, "test")
	require.NoError(t, err)
	forged.Signatures = append(forged.Signatures, signer.Sign(forged.Message()))
	require.NoError(t, os.Remove(p))
	require.NoError(t, os.WriteFile(p, integrity.MarshalBundle(forged), 0o400))
	code, _, errOut = run(t, cosign...)
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "fork: bundle 2 in the sink is not the bundle 2 this witness cosigned")
	code, _, errOut = run(t, cosign...)
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "refused for good")
	// and verification: the old cosignature no longer matches bundle 2's message
	code, out, _ = run(t, "--database-url", db.URL, "verify", "--anchors", sink, "--anchor-keys", both, "--min-signatures", "2")
	require.Equal(t, 2, code)
	require.Contains(t, out, "anchor_forged")
}

// verify --offline: no database; the bundles, and the archives against
// their ranges and the anchored positions inside them; what it could not
// check is said.
func TestVerifyOffline(t *testing.T) {
	ctx := context.Background()
	db := harness.NewDB(t)
	sink, archives := t.TempDir(), t.TempDir()
	seal := sealKey(t, "k1")
	priv, pub := anchorKeyPair(t, "a1")
	base := []string{"--database-url", db.URL}
	insert := func(from int) {
		_, err := db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, principal_id, retention_policy, data_classification)
			SELECT now() - interval '200 days' + g * interval '1 minute', 'a', 'success', 'patient-' || g, 'minimal', 'PUBLIC'
			FROM generate_series($1::int, $1::int + 19) g`, from)
		require.NoError(t, err)
	}
	insert(1)
	code, _, errOut := run(t, append(base, "anchor", "--anchor-key", priv, "--sink", sink, "--seal-keys", seal)...)
	require.Equal(t, 0, code, errOut)
	insert(21)
	code, _, errOut = run(t, append(base, "anchor", "--anchor-key", priv, "--sink", sink, "--seal-keys", seal)...)
	require.Equal(t, 0, code, errOut)
	code, out, errOut := run(t, append(base, "retention", "run", "--archive-dir", archives, "--seal-keys", seal)...)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "39 row(s) archived")

	offline := []string{"verify", "--offline", "--anchors", sink, "--anchor-keys", pub, "--archives", archives}
	code, out, errOut = run(t, offline...)
	require.Equal(t, 0, code, "%s%s", out, errOut)
	require.Contains(t, out, "offline verification INTACT (no database)")
	require.Contains(t, out, "2 bundle(s) of log")
	require.Contains(t, out, "1 of 2 anchored position(s) inside them against their rows")
	require.Contains(t, out, "not checked: 1 anchored position(s) whose rows are in the database")
	code, out, _ = run(t, append(offline, "--json")...)
	require.Equal(t, 0, code)
	var rep OfflineReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Equal(t, 1, rep.InArchives)
	require.Len(t, rep.Archives, 1)
	require.Equal(t, 1, rep.Archives[0].Anchors)

	// online, the position inside the archive is counted, not checked
	code, out, _ = run(t, append(base, "verify", "--seal-keys", seal, "--anchors", sink, "--anchor-keys", pub)...)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "1 anchored in archive, not checked")

	// a bundle rewritten by someone without the anchor key
	var logID string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT value FROM audit.settings WHERE key = 'log_id'`).Scan(&logID))
	p := filepath.Join(sink, integrity.BundleKey(logID, 1))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.NoError(t, os.Chmod(p, 0o600))
	require.NoError(t, os.WriteFile(p, []byte(strings.Replace(string(b), `"seq": 20`, `"seq": 19`, 1)), 0o600))
	code, out, _ = run(t, offline...)
	require.Equal(t, 2, code, out)
	require.Contains(t, out, "offline verification TAMPERED")
	require.Contains(t, out, "heads do not give root")

	code, _, errOut = run(t, "verify", "--offline", "--anchor-keys", pub)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "anchors: required with --offline")
}

// A tail removed with the seal key in hand (rows, their checkpoints and the
// head put back) passes keyed verification; the anchor names the seq the
// chain no longer reaches: tail_truncated.
func TestAnchorCatchesATailRemovedWithTheSealKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	sink := t.TempDir()
	seal := sealKey(t, "k1")
	priv, pub := anchorKeyPair(t, "a1")
	fillChains(t, db.URL, 1, 30)
	code, _, errOut := run(t, "--database-url", db.URL, "anchor", "--anchor-key", priv, "--sink", sink, "--seal-keys", seal)
	require.Equal(t, 0, code, errOut)
	var chain int16
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT chain_id FROM audit.chain_heads WHERE head_seq = 30`).Scan(&chain))
	_, err := db.Pool.Exec(ctx, fmt.Sprintf(`BEGIN; SET LOCAL session_replication_role = replica;
		DELETE FROM audit.audit_log WHERE chain_id = %[1]d AND chain_seq > 20;
		DELETE FROM audit.integrity_checkpoints WHERE chain_id = %[1]d AND chain_seq > 20;
		UPDATE audit.chain_heads SET head_seq = 20, head_hash = (SELECT decode(hash, 'hex') FROM audit.audit_log
			WHERE chain_id = %[1]d AND chain_seq = 20) WHERE chain_id = %[1]d;
		COMMIT`, chain))
	require.NoError(t, err)
	code, out, _ := run(t, "--database-url", db.URL, "verify", "--seal-keys", seal)
	require.Equal(t, 0, code, "the keyed check cannot see a tail removed with its checkpoints: %s", out)
	code, out, _ = run(t, "--database-url", db.URL, "verify", "--seal-keys", seal, "--anchors", sink, "--anchor-keys", pub, "--json")
	require.Equal(t, 2, code, out)
	require.Equal(t, []string{fmt.Sprintf("tail_truncated@%d/30", chain)}, kindsAt(findingsOf(t, out)))
}
