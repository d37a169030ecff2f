package anchor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/auditdb/auditdb/integrity"
)

// A witness is a second party that cosigns a log's bundles, each only after
// checking it against the last bundle it cosigned: the log's signature, the
// same log, prev equal to the hash of the message it cosigned last, and no
// chain going backwards. It remembers, in its state directory, the message
// of every bundle it cosigned; a bundle n that differs from the one it
// cosigned is a fork, and from then on it refuses that log forever (the
// state keeps a FORKED record; only a person deleting it undoes that). That
// catches an operator who rewrites history and anchors it again: the
// witness has already signed the old heads.
//
// The cosignature is a sibling object of the bundle, CosigKey(log, n,
// key id), since the bundle itself is write-once; verification counts it
// with the bundle's own signatures.

// ErrForked: the sink shows a bundle that differs from one this witness
// cosigned (or a prev that contradicts it). Permanent for the log.
var ErrForked = errors.New("anchor witness: fork")

// ErrRefused: a bundle did not pass the witness's checks; nothing was
// signed from it on. Not permanent: a later run checks again.
var ErrRefused = errors.New("anchor witness: refused")

// WitnessOptions configure Cosign.
type WitnessOptions struct {
	// LogID is the log to cosign. Defaults to the only log in the sink.
	LogID string
	// LogKeys are the log's anchor public keys; a bundle needs a valid
	// signature by one of them, and no signature by any other. Required.
	LogKeys integrity.AnchorKeys
	// Signer is the witness's own key. Required.
	Signer *integrity.AnchorSigner
	// StateDir holds what the witness cosigned. Required.
	StateDir string
	// RetainUntil, when not zero, asks the sink to lock each cosignature
	// until then. Defaults to none.
	RetainUntil time.Time
}

// CosignReport is what one Cosign run did.
type CosignReport struct {
	Log string `json:"log"`
	// Cosigned lists the bundles signed by this run.
	Cosigned []int64 `json:"cosigned"`
	// Last is the newest bundle this witness has cosigned (0: none).
	Last int64 `json:"last"`
	// Checked counts earlier cosigned bundles compared with the sink.
	Checked int `json:"checked"`
}

// witnessState is <state>/<log>/state.json.
type witnessState struct {
	Log           string                 `json:"log"`
	Bundle        int64                  `json:"bundle"`
	MessageSHA256 string                 `json:"message_sha256"`
	Heads         []integrity.AnchorHead `json:"heads"`
}

// Cosign checks and cosigns every bundle of the log after the last one this
// witness cosigned, in order, and stops at the first that fails (ErrRefused)
// or at a fork (ErrForked, remembered).
func Cosign(ctx context.Context, sink Sink, opts WitnessOptions) (*CosignReport, error) {
	if opts.Signer == nil || len(opts.LogKeys) == 0 || opts.StateDir == "" {
		return nil, errors.New("anchor witness: key, log keys and state directory are required")
	}
	logID := opts.LogID
	if logID == "" {
		logs, err := Logs(ctx, sink)
		if err != nil {
			return nil, err
		}
		if len(logs) != 1 {
			return nil, fmt.Errorf("anchor witness: the sink holds %d logs: name one (--log)", len(logs))
		}
		logID = logs[0]
	}
	if !integrity.ValidLogID(logID) {
		return nil, errors.New("anchor witness: log: must be a lowercase UUID")
	}
	dir := filepath.Join(opts.StateDir, logID)
	if err := os.MkdirAll(filepath.Join(dir, "signed"), 0o700); err != nil {
		return nil, fmt.Errorf("anchor witness: state: %w", err)
	}
	if why, err := os.ReadFile(filepath.Join(dir, "FORKED")); err == nil {
		return nil, fmt.Errorf("%w: log %s was seen forked earlier and is refused for good: %s", ErrForked, logID, strings.TrimSpace(string(why)))
	}
	st := witnessState{Log: logID}
	if b, err := os.ReadFile(filepath.Join(dir, "state.json")); err == nil {
		if err := json.Unmarshal(b, &st); err != nil || st.Log != logID {
			return nil, errors.New("anchor witness: state.json does not parse or names another log")
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("anchor witness: state: %w", err)
	}
	rep := &CosignReport{Log: logID, Cosigned: []int64{}, Last: st.Bundle}
	contents, err := Read(ctx, sink, logID)
	if err != nil {
		return nil, err
	}
	forked := func(format string, args ...any) error {
		why := fmt.Sprintf(format, args...)
		_ = writeFileSync(filepath.Join(dir, "FORKED"), []byte(time.Now().UTC().Format(time.RFC3339)+" "+why+"\n"))
		return fmt.Errorf("%w: %s", ErrForked, why)
	}
	next := st.Bundle + 1
	for _, o := range contents.Bundles {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if o.Number < next {
			// cosigned before: the sink must still show the same statement
			rec, err := os.ReadFile(filepath.Join(dir, "signed", fmt.Sprintf("%020d", o.Number)))
			if err != nil {
				continue // cosigned before this state directory recorded each one
			}
			rep.Checked++
			b, perr := integrity.ParseBundle(o.Data)
			if perr != nil || b.MessageSHA256() != strings.TrimSpace(string(rec)) {
				return rep, forked("bundle %d in the sink is not the bundle %d this witness cosigned", o.Number, o.Number)
			}
			continue
		}
		if o.Number > next {
			return rep, fmt.Errorf("%w: bundle %d is missing from the sink; nothing after it is cosigned", ErrRefused, next)
		}
		b, err := integrity.ParseBundle(o.Data)
		if err != nil {
			return rep, fmt.Errorf("%w: bundle %s: %v", ErrRefused, o.Name, err)
		}
		if err := checkAgainst(b, &st, opts.LogKeys); err != nil {
			if errors.Is(err, ErrForked) {
				return rep, forked("bundle %d: %v", b.Bundle, err)
			}
			return rep, fmt.Errorf("bundle %s: %w", o.Name, err)
		}
		msg := b.Message()
		sig := opts.Signer.Sign(msg)
		cs := &integrity.Cosignature{Format: integrity.CosigFormat, Version: integrity.CosigVersion, Log: logID, Bundle: b.Bundle,
			MessageSHA256: b.MessageSHA256(), KeyID: sig.KeyID, Sig: sig.Sig}
		key := integrity.CosigKey(logID, b.Bundle, sig.KeyID)
		data := integrity.MarshalCosignature(cs)
		if _, err := sink.Put(ctx, key, data, opts.RetainUntil); err != nil {
			if !errors.Is(err, ErrExists) {
				return rep, err
			}
			there, gerr := sink.Get(ctx, key)
			if gerr != nil || !bytes.Equal(there, data) {
				return rep, fmt.Errorf("anchor witness: %s exists with other content", key)
			}
		}
		if err := writeFileSync(filepath.Join(dir, "signed", fmt.Sprintf("%020d", b.Bundle)), []byte(cs.MessageSHA256+"\n")); err != nil {
			return rep, fmt.Errorf("anchor witness: state: %w", err)
		}
		st = witnessState{Log: logID, Bundle: b.Bundle, MessageSHA256: cs.MessageSHA256, Heads: b.Heads}
		sb, _ := json.Marshal(st)
		if err := writeFileSync(filepath.Join(dir, "state.json"), sb); err != nil {
			return rep, fmt.Errorf("anchor witness: state: %w", err)
		}
		rep.Cosigned = append(rep.Cosigned, b.Bundle)
		rep.Last = b.Bundle
		next++
	}
	return rep, nil
}

// checkAgainst checks bundle b against the last cosigned state: same log,
// a valid signature by the log's keys and none by others, root, prev, and
// every chain at or beyond its last seq (the same hash at the same seq).
func checkAgainst(b *integrity.Bundle, st *witnessState, keys integrity.AnchorKeys) error {
	if b.Log != st.Log {
		return fmt.Errorf("%w: names another log", ErrRefused)
	}
	if root := b.ComputeRoot(); fmt.Sprintf("%x", root) != b.Root {
		return fmt.Errorf("%w: heads do not give root", ErrRefused)
	}
	msg := b.Message()
	valid := 0
	for _, s := range b.Signatures {
		if why := keys.VerifySignature(msg, s); why != "" {
			return fmt.Errorf("%w: %s", ErrRefused, why)
		}
		valid++
	}
	if valid == 0 {
		return fmt.Errorf("%w: no signature by the log's keys", ErrRefused)
	}
	want := integrity.ZeroHash
	if st.Bundle > 0 {
		want = st.MessageSHA256
	}
	if b.Prev != want {
		if st.Bundle > 0 {
			// a bundle n+1 that does not follow what was cosigned as n:
			// the log's history was replaced
			return fmt.Errorf("%w: prev is not the message of bundle %d this witness cosigned", ErrForked, st.Bundle)
		}
		return fmt.Errorf("%w: bundle 1's prev must be 64 zeros", ErrRefused)
	}
	if st.Bundle > 0 {
		if len(b.Heads) != len(st.Heads) {
			return fmt.Errorf("%w: %d chains, bundle %d had %d", ErrRefused, len(b.Heads), st.Bundle, len(st.Heads))
		}
		for i, h := range b.Heads {
			was := st.Heads[i]
			switch {
			case h.Seq < was.Seq:
				return fmt.Errorf("%w: chain %d goes back from seq %d to %d", ErrRefused, h.Chain, was.Seq, h.Seq)
			case h.Seq == was.Seq && h.Hash != was.Hash:
				return fmt.Errorf("%w: chain %d seq %d has another hash than in bundle %d", ErrForked, h.Chain, h.Seq, st.Bundle)
			}
		}
	}
	return nil
}

// writeFileSync writes a file atomically: a temporary file, fsynced,
// renamed into place, and the folder fsynced.
func writeFileSync(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
