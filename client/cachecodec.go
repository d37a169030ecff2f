package client

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/auditdb/auditdb/cache"
)

// The enhanced client stores pages and events in Redis in this compact
// binary form rather than JSON: decoding a 100-event page from JSON costs
// about as much as running its query (BENCHMARKS.md, Read cache), which
// would leave an L2 hit little faster than no cache. Strings are
// length-prefixed and decoded as slices of one string made of the whole
// value (one allocation, not one per field), times are Unix microseconds
// (what the database stores), details a tagged tree of the JSON values read
// from the database (numbers stay json.Number). The first byte is the
// format version: a value of another version fails to decode, which the
// cache treats as a miss.
const cacheCodecVersion = 1

var errCacheCodec = errors.New("client: cached value: malformed")

func pageCodec() cache.Codec[Page] {
	return cache.Codec[Page]{
		Copies: true, // cacheReader copies its input
		Encode: func(p Page) ([]byte, error) {
			w := cacheWriter{b: []byte{cacheCodecVersion}}
			w.uvarint(uint64(len(p.Events)))
			for i := range p.Events {
				if err := w.event(&p.Events[i]); err != nil {
					return nil, err
				}
			}
			if p.Next == nil {
				w.b = append(w.b, 0)
			} else {
				w.b = append(w.b, 1)
				w.varint(p.Next.Timestamp.UnixMicro())
				w.varint(p.Next.ID)
			}
			return w.b, nil
		},
		Decode: func(b []byte) (Page, error) {
			r, err := newCacheReader(b)
			if err != nil {
				return Page{}, err
			}
			var p Page
			n := r.uvarint()
			if n > uint64(len(b)) {
				return Page{}, errCacheCodec
			}
			p.Events = make([]StoredEvent, n)
			r.latencies = make([]int32, 0, n) // one allocation for every ProcessingLatency
			for i := range p.Events {
				r.event(&p.Events[i])
			}
			if r.byte() == 1 {
				p.Next = &Cursor{Timestamp: time.UnixMicro(r.varint()).UTC(), ID: r.varint()}
			}
			return p, r.done()
		},
	}
}

func eventCodec() cache.Codec[StoredEvent] {
	return cache.Codec[StoredEvent]{
		Copies: true, // cacheReader copies its input
		Encode: func(e StoredEvent) ([]byte, error) {
			w := cacheWriter{b: []byte{cacheCodecVersion}}
			err := w.event(&e)
			return w.b, err
		},
		Decode: func(b []byte) (StoredEvent, error) {
			r, err := newCacheReader(b)
			if err != nil {
				return StoredEvent{}, err
			}
			var e StoredEvent
			r.event(&e)
			return e, r.done()
		},
	}
}

func countCodec() cache.Codec[int64] {
	return cache.Codec[int64]{
		Copies: true, // cacheReader copies its input
		Encode: func(n int64) ([]byte, error) {
			return binary.AppendVarint([]byte{cacheCodecVersion}, n), nil
		},
		Decode: func(b []byte) (int64, error) {
			r, err := newCacheReader(b)
			if err != nil {
				return 0, err
			}
			n := r.varint()
			return n, r.done()
		},
	}
}

type cacheWriter struct{ b []byte }

func (w *cacheWriter) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *cacheWriter) varint(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *cacheWriter) str(s string) {
	w.uvarint(uint64(len(s)))
	w.b = append(w.b, s...)
}

func (w *cacheWriter) event(e *StoredEvent) error {
	w.varint(e.ID)
	w.varint(int64(e.ChainID))
	w.varint(e.ChainSeq)
	w.varint(e.RecordedAt.UnixMicro())
	w.str(e.Hash)
	w.varint(e.Timestamp.UnixMicro())
	for _, s := range [...]string{e.Action, string(e.Status), e.PrincipalID, e.PrincipalType, e.OrganizationID,
		e.TargetResourceType, e.TargetResourceID, e.OutcomeDescription, string(e.DataClassification),
		e.RetentionPolicy, e.EventVersion, e.CorrelationID, e.TTL} {
		w.str(s)
	}
	ip, err := e.SourceIP.MarshalBinary() // empty for the zero Addr
	if err != nil {
		return err
	}
	w.str(string(ip))
	if e.ProcessingLatency == nil {
		w.b = append(w.b, 0)
	} else {
		w.b = append(w.b, 1)
		w.varint(int64(*e.ProcessingLatency))
	}
	if e.Details == nil {
		w.b = append(w.b, 0)
		return nil
	}
	w.b = append(w.b, 1)
	if err := w.value(e.Details); err != nil {
		return fmt.Errorf("client: cache event %d: details: %w", e.ID, err)
	}
	return nil
}

// Tags of JSON values in details.
const (
	tagNull byte = iota
	tagFalse
	tagTrue
	tagString
	tagNumber
	tagArray
	tagObject
	tagJSON // anything else, as its JSON text (not produced by reads)
)

func (w *cacheWriter) value(v any) error {
	switch v := v.(type) {
	case nil:
		w.b = append(w.b, tagNull)
	case bool:
		tag := tagFalse
		if v {
			tag = tagTrue
		}
		w.b = append(w.b, tag)
	case string:
		w.b = append(w.b, tagString)
		w.str(v)
	case json.Number:
		w.b = append(w.b, tagNumber)
		w.str(string(v))
	case []any:
		w.b = append(w.b, tagArray)
		w.uvarint(uint64(len(v)))
		for _, x := range v {
			if err := w.value(x); err != nil {
				return err
			}
		}
	case map[string]any:
		w.b = append(w.b, tagObject)
		w.uvarint(uint64(len(v)))
		for k, x := range v {
			w.str(k)
			if err := w.value(x); err != nil {
				return err
			}
		}
	default:
		j, err := json.Marshal(v)
		if err != nil {
			return err
		}
		w.b = append(w.b, tagJSON)
		w.str(string(j))
	}
	return nil
}

// cacheReader reads what cacheWriter wrote; the first malformed read sets
// err, and every read after it returns zero values. b and s are the same
// bytes, as a slice (for varints) and as one string copied from it (whose
// substrings are the strings read, so nothing decoded points into b, which
// the cache reuses); i is the next byte to read.
type cacheReader struct {
	b         []byte
	s         string
	i         int
	latencies []int32 // where ProcessingLatency values point, when a page is read
	err       error
}

func newCacheReader(b []byte) (cacheReader, error) {
	if len(b) == 0 || b[0] != cacheCodecVersion {
		return cacheReader{}, errCacheCodec
	}
	return cacheReader{b: b, s: string(b), i: 1}, nil
}

func (r *cacheReader) fail() {
	r.err = errCacheCodec
	r.i = len(r.b)
}

func (r *cacheReader) done() error {
	if r.err == nil && r.i != len(r.b) {
		r.fail()
	}
	return r.err
}

func (r *cacheReader) byte() byte {
	if r.i >= len(r.b) {
		r.fail()
		return 0
	}
	r.i++
	return r.b[r.i-1]
}

func (r *cacheReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b[r.i:])
	if n <= 0 {
		r.fail()
		return 0
	}
	r.i += n
	return v
}

func (r *cacheReader) varint() int64 {
	v, n := binary.Varint(r.b[r.i:])
	if n <= 0 {
		r.fail()
		return 0
	}
	r.i += n
	return v
}

// span consumes a length-prefixed run of bytes and returns where it starts
// and ends.
func (r *cacheReader) span() (int, int) {
	n := r.uvarint()
	if n > uint64(len(r.b)-r.i) {
		r.fail()
		return r.i, r.i
	}
	r.i += int(n)
	return r.i - int(n), r.i
}

func (r *cacheReader) bytes() []byte {
	from, to := r.span()
	return r.b[from:to]
}

func (r *cacheReader) str() string {
	from, to := r.span()
	return r.s[from:to]
}

// value reads a details value; depth bounds nesting (jsonb allows deep
// trees, but a cached value is ours: a deep one is malformed).
func (r *cacheReader) value(depth int) any {
	if depth > 1000 {
		r.fail()
		return nil
	}
	switch r.byte() {
	case tagNull:
		return nil
	case tagFalse:
		return false
	case tagTrue:
		return true
	case tagString:
		return r.str()
	case tagNumber:
		return json.Number(r.str())
	case tagArray:
		n := r.uvarint()
		if n > uint64(len(r.b)-r.i) {
			r.fail()
			return nil
		}
		a := make([]any, n)
		for i := range a {
			a[i] = r.value(depth + 1)
		}
		return a
	case tagObject:
		n := r.uvarint()
		if n > uint64(len(r.b)-r.i) {
			r.fail()
			return nil
		}
		m := make(map[string]any, n)
		for range n {
			k := r.str()
			m[k] = r.value(depth + 1)
		}
		return m
	case tagJSON:
		var v any
		dec := json.NewDecoder(bytes.NewReader(r.bytes()))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			r.fail()
		}
		return v
	}
	r.fail()
	return nil
}

func (r *cacheReader) event(e *StoredEvent) {
	e.ID = r.varint()
	e.ChainID = int16(r.varint())
	e.ChainSeq = r.varint()
	e.RecordedAt = time.UnixMicro(r.varint()).UTC()
	e.Hash = r.str()
	e.Timestamp = time.UnixMicro(r.varint()).UTC()
	e.Action = r.str()
	e.Status = Status(r.str())
	e.PrincipalID = r.str()
	e.PrincipalType = r.str()
	e.OrganizationID = r.str()
	e.TargetResourceType = r.str()
	e.TargetResourceID = r.str()
	e.OutcomeDescription = r.str()
	e.DataClassification = DataClassification(r.str())
	e.RetentionPolicy = r.str()
	e.EventVersion = r.str()
	e.CorrelationID = r.str()
	e.TTL = r.str()
	if ip := r.bytes(); len(ip) > 0 {
		if err := e.SourceIP.UnmarshalBinary(ip); err != nil {
			r.fail()
		}
	} else {
		e.SourceIP = netip.Addr{}
	}
	if r.byte() == 1 {
		if len(r.latencies) < cap(r.latencies) {
			r.latencies = append(r.latencies, int32(r.varint()))
			e.ProcessingLatency = &r.latencies[len(r.latencies)-1]
		} else {
			l := int32(r.varint())
			e.ProcessingLatency = &l
		}
	}
	if r.byte() == 1 {
		if m, ok := r.value(0).(map[string]any); ok {
			e.Details = m
		} else {
			r.fail()
		}
	}
}
