package anchor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/auditdb/auditdb/integrity"
)

// Contents is what a sink holds for one log.
type Contents struct {
	// Bundles in number order, each with its cosignatures.
	Bundles []integrity.BundleObject
	// Strays are objects in the log's folder whose names are neither a
	// bundle nor a cosignature: reported, never skipped in silence.
	Strays []string
}

// Read lists and reads every bundle and cosignature of logID in sink.
func Read(ctx context.Context, sink Sink, logID string) (*Contents, error) {
	if !integrity.ValidLogID(logID) {
		return nil, errors.New("anchor: log id must be a lowercase UUID")
	}
	keys, err := sink.List(ctx, logID+"/")
	if err != nil {
		return nil, err
	}
	c := &Contents{}
	byNum := map[int64]*integrity.BundleObject{}
	var cosigs []struct {
		n   int64
		obj integrity.CosigObject
	}
	for _, k := range keys {
		if n, ok := integrity.ParseBundleKey(logID, k); ok {
			data, err := sink.Get(ctx, k)
			if err != nil {
				return nil, err
			}
			c.Bundles = append(c.Bundles, integrity.BundleObject{Name: k, Number: n, Data: data})
			continue
		}
		if n, id, ok := integrity.ParseCosigKey(logID, k); ok {
			data, err := sink.Get(ctx, k)
			if err != nil {
				return nil, err
			}
			cosigs = append(cosigs, struct {
				n   int64
				obj integrity.CosigObject
			}{n, integrity.CosigObject{Name: k, KeyID: id, Data: data}})
			continue
		}
		c.Strays = append(c.Strays, k)
	}
	sort.Slice(c.Bundles, func(i, j int) bool { return c.Bundles[i].Number < c.Bundles[j].Number })
	for i := range c.Bundles {
		byNum[c.Bundles[i].Number] = &c.Bundles[i]
	}
	for _, cs := range cosigs {
		if b, ok := byNum[cs.n]; ok {
			b.Cosigs = append(b.Cosigs, cs.obj)
		} else {
			c.Strays = append(c.Strays, cs.obj.Name)
		}
	}
	return c, nil
}

// Logs returns the log ids that have a folder in sink.
func Logs(ctx context.Context, sink Sink) ([]string, error) {
	keys, err := sink.List(ctx, "")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, k := range keys {
		id, _, ok := strings.Cut(k, "/")
		if ok && integrity.ValidLogID(id) && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}

// Check reads logID's bundles from sink and checks them
// (integrity.CheckBundles); objects that are not bundles are anchor_forged
// findings naming them.
func Check(ctx context.Context, sink Sink, opts integrity.AnchorOptions) (*integrity.AnchorReport, error) {
	c, err := Read(ctx, sink, opts.LogID)
	if err != nil {
		return nil, err
	}
	rep := integrity.CheckBundles(c.Bundles, opts)
	for _, s := range c.Strays {
		rep.Findings = append(rep.Findings, integrity.Finding{Kind: integrity.AnchorForged,
			Detail: fmt.Sprintf("object %s in the log's folder is neither a bundle of this log nor a cosignature of one", s)})
	}
	return rep, nil
}

// ErrConflict: the sink already holds another bundle under the number.
var ErrConflict = errors.New("anchor: the sink already holds a different bundle under this number")

// Publish writes a signed bundle file to sink, write-once. When the key
// exists already (a retry after a crash, or another worker), the object
// there must be the same statement: the same bytes, or a bundle with the
// same signed message (signed again with another key, say). Anything else
// is ErrConflict, and nothing is overwritten. It reports whether this call
// wrote the object and whether the sink locked it.
func Publish(ctx context.Context, sink Sink, b *integrity.Bundle, retainUntil time.Time) (written, locked bool, err error) {
	key := integrity.BundleKey(b.Log, b.Bundle)
	data := integrity.MarshalBundle(b)
	locked, err = sink.Put(ctx, key, data, retainUntil)
	if err == nil {
		return true, locked, nil
	}
	if !errors.Is(err, ErrExists) {
		return false, false, err
	}
	there, gerr := sink.Get(ctx, key)
	if gerr != nil {
		return false, false, fmt.Errorf("anchor: bundle %s exists but cannot be read back: %w", key, gerr)
	}
	if bytes.Equal(there, data) {
		return false, false, nil
	}
	if other, perr := integrity.ParseBundle(there); perr == nil && other.MessageSHA256() == b.MessageSHA256() {
		return false, false, nil
	}
	return false, false, fmt.Errorf("%w: %s", ErrConflict, key)
}
