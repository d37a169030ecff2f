package integrity

import (
	"encoding/hex"
	"fmt"
	"sort"
)

// BundleObject is one bundle file as read from a sink, with the witness
// cosignatures stored next to it.
type BundleObject struct {
	// Name is the object's key in the sink, which findings name.
	Name string
	// Number is the bundle number the name gives.
	Number int64
	// Data is the file's bytes.
	Data []byte
	// Cosigs are the cosignature objects of this bundle number.
	Cosigs []CosigObject
}

// CosigObject is one cosignature file.
type CosigObject struct {
	Name  string
	KeyID string // from the name
	Data  []byte
}

// AnchorOptions for CheckBundles.
type AnchorOptions struct {
	// LogID is the log the bundles must name. Required.
	LogID string
	// Chains is the log's chain count K, which every bundle must anchor.
	// Defaults to 0: taken from the bundles (offline), each bundle then
	// only compared with its predecessor.
	Chains int
	// Keys are the public keys signatures are accepted from. Required.
	Keys AnchorKeys
	// MinSignatures is how many distinct keys of Keys must have signed a
	// bundle for its heads to be used. Defaults to 1.
	MinSignatures int
	// ExpectedLast, when positive, is the newest bundle number some other
	// record (the database's audit.anchor_bundles) says was written: a sink
	// ending before it lost its newest bundles. Defaults to 0: the sink
	// alone decides.
	ExpectedLast int64
}

// AnchoredHead is a chain position that a trusted bundle anchors.
type AnchoredHead struct {
	Seq    int64
	Hash   string
	Bundle int64
}

// AnchorReport is the outcome of checking a sink's bundles.
type AnchorReport struct {
	Log string `json:"log"`
	// Bundles is how many bundle files were read; Trusted how many passed
	// every check (signatures, root, shape) and so anchor chain positions.
	Bundles    int   `json:"bundles"`
	Trusted    int   `json:"trusted"`
	LastBundle int64 `json:"last_bundle"`
	// Cosignatures counts witness signatures that verified.
	Cosignatures int       `json:"cosignatures"`
	Findings     []Finding `json:"findings,omitempty"`
	// Heads are the anchored positions per chain, ascending by seq, from
	// trusted bundles only; seq 0 (an empty chain) is left out.
	Heads map[int16][]AnchoredHead `json:"-"`
	// Chains is K as the bundles give it.
	Chains int `json:"chains"`
}

// CheckBundles checks a sink's bundles in number order: each one's shape,
// log id, root and signatures (with the witnesses' cosignatures), numbering
// and prev links, and that no chain goes backwards from one trusted bundle
// to the next. A bundle that cannot be read is a finding that names it,
// never skipped. objs need not be sorted.
func CheckBundles(objs []BundleObject, opts AnchorOptions) *AnchorReport {
	rep := &AnchorReport{Log: opts.LogID, Findings: []Finding{}, Heads: map[int16][]AnchoredHead{}, Chains: opts.Chains}
	minSigs := max(opts.MinSignatures, 1)
	objs = append([]BundleObject(nil), objs...)
	sort.Slice(objs, func(i, j int) bool { return objs[i].Number < objs[j].Number })
	add := func(n int64, chain int16, seq int64, kind Kind, detail string) {
		rep.Findings = append(rep.Findings, Finding{Bundle: n, ChainID: chain, ChainSeq: seq, Kind: kind, Detail: detail})
	}
	var (
		expect     int64   = 1
		prevParsed *Bundle // bundle expect-1, when it parsed
		lastTrust  *Bundle // the newest trusted bundle
	)
	for _, o := range objs {
		rep.Bundles++
		rep.LastBundle = o.Number
		if o.Number > expect {
			if expect == o.Number-1 {
				add(o.Number, 0, 0, AnchorGap, fmt.Sprintf("bundle %d is missing from the sink before %s", expect, o.Name))
			} else {
				add(o.Number, 0, 0, AnchorGap, fmt.Sprintf("bundles %d..%d are missing from the sink before %s", expect, o.Number-1, o.Name))
			}
			prevParsed = nil
		}
		expect = o.Number + 1
		b, err := ParseBundle(o.Data)
		if err != nil {
			add(o.Number, 0, 0, AnchorForged, fmt.Sprintf("bundle %s: %v", o.Name, err))
			prevParsed = nil
			continue
		}
		trusted := true
		forged := func(detail string) {
			add(o.Number, 0, 0, AnchorForged, fmt.Sprintf("bundle %s: %s", o.Name, detail))
			trusted = false
		}
		switch {
		case b.Bundle != o.Number:
			forged(fmt.Sprintf("says it is bundle %d", b.Bundle))
		case b.Log != opts.LogID:
			forged("names another log id")
		case opts.Chains > 0 && len(b.Heads) != opts.Chains:
			forged(fmt.Sprintf("anchors %d chains, the log has %d", len(b.Heads), opts.Chains))
		}
		if trusted {
			if root := b.ComputeRoot(); hex.EncodeToString(root[:]) != b.Root {
				forged("heads do not give root")
			}
		}
		if trusted {
			msg := b.Message()
			valid := map[string]bool{}
			for _, s := range b.Signatures {
				if why := opts.Keys.VerifySignature(msg, s); why != "" {
					forged(why)
				} else {
					valid[s.KeyID] = true
				}
			}
			msgHash := b.MessageSHA256()
			for _, c := range o.Cosigs {
				cs, err := ParseCosignature(c.Data)
				switch {
				case err != nil:
					forged(fmt.Sprintf("cosignature %s: %v", c.Name, err))
					continue
				case cs.Log != b.Log || cs.Bundle != b.Bundle || cs.MessageSHA256 != msgHash || cs.KeyID != c.KeyID:
					forged(fmt.Sprintf("cosignature %s is not of this bundle's message (log, bundle, message_sha256 or key id differ)", c.Name))
					continue
				}
				if why := opts.Keys.VerifySignature(msg, AnchorSignature{KeyID: cs.KeyID, Sig: cs.Sig}); why != "" {
					forged(fmt.Sprintf("cosignature %s: %s", c.Name, why))
					continue
				}
				if !valid[cs.KeyID] {
					rep.Cosignatures++
				}
				valid[cs.KeyID] = true
			}
			if trusted && len(valid) < minSigs {
				add(o.Number, 0, 0, AnchorForged, fmt.Sprintf("bundle %s: %d valid signature(s) by known keys, %d required", o.Name, len(valid), minSigs))
				trusted = false
			}
		}
		// the chain of bundles: prev must be the previous message's hash
		switch {
		case b.Bundle == 1 && b.Prev != ZeroHash:
			add(o.Number, 0, 0, AnchorGap, fmt.Sprintf("bundle %s: bundle 1's prev must be 64 zeros", o.Name))
		case b.Bundle > 1 && prevParsed != nil && b.Prev != prevParsed.MessageSHA256():
			add(o.Number, 0, 0, AnchorGap, fmt.Sprintf("bundle %s: prev is not the SHA-256 of bundle %d's message", o.Name, b.Bundle-1))
		}
		prevParsed = b
		if !trusted {
			continue
		}
		rep.Trusted++
		if rep.Chains == 0 {
			rep.Chains = len(b.Heads)
		}
		for _, h := range b.Heads {
			if h.Seq == 0 {
				if g := Genesis(h.Chain); hex.EncodeToString(g[:]) != h.Hash {
					add(o.Number, h.Chain, 0, AnchorMismatch, fmt.Sprintf("bundle %s anchors chain %d empty (seq 0) with a hash other than its genesis", o.Name, h.Chain))
				}
				continue
			}
			rep.Heads[h.Chain] = append(rep.Heads[h.Chain], AnchoredHead{Seq: h.Seq, Hash: h.Hash, Bundle: b.Bundle})
		}
		if lastTrust != nil && len(lastTrust.Heads) == len(b.Heads) {
			for i, h := range b.Heads {
				was := lastTrust.Heads[i]
				switch {
				case h.Seq < was.Seq:
					add(o.Number, h.Chain, h.Seq, AnchorRollback, fmt.Sprintf("bundle %s anchors chain %d at seq %d, bundle %d at %d", o.Name, h.Chain, h.Seq, lastTrust.Bundle, was.Seq))
				case h.Seq == was.Seq && h.Hash != was.Hash:
					add(o.Number, h.Chain, h.Seq, AnchorMismatch, fmt.Sprintf("bundle %s anchors chain %d seq %d with another hash than bundle %d", o.Name, h.Chain, h.Seq, lastTrust.Bundle))
				}
			}
		}
		lastTrust = b
	}
	if opts.ExpectedLast > rep.LastBundle {
		add(opts.ExpectedLast, 0, 0, AnchorGap, fmt.Sprintf("the sink ends at bundle %d, but bundles up to %d were written (audit.anchor_bundles)", rep.LastBundle, opts.ExpectedLast))
	}
	for c, hs := range rep.Heads {
		sort.SliceStable(hs, func(i, j int) bool { return hs[i].Seq < hs[j].Seq })
		// one entry per (seq, hash): later bundles repeat an idle chain's head
		out := hs[:0]
		for _, h := range hs {
			if n := len(out); n > 0 && out[n-1].Seq == h.Seq && out[n-1].Hash == h.Hash {
				continue
			}
			out = append(out, h)
		}
		rep.Heads[c] = out
	}
	return rep
}
