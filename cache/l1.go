package cache

import (
	"container/list"
	"sync"
	"time"
)

// l1EntryOverhead approximates the memory of an entry beyond its key and
// value (list element, map slots, entry struct), so that many small values
// cannot exceed the byte bound by much.
const l1EntryOverhead = 160

// epoch is what an L1 store is checked against: it moves for one
// organization on its invalidation and for all on a flush.
type epoch struct{ all, org uint64 }

// maxEpochs bounds the organizations whose invalidation L1 remembers
// (about 100 bytes each). Past it, the next invalidation of a new
// organization forgets them all and moves every epoch instead: loads in
// flight then keep their results out of L1 (they could predate an
// invalidation no longer remembered), while the entries already in L1
// stay, since each was stored before any invalidation of its organization
// that came after it dropped it.
const maxEpochs = 10000

// l1Key names an L1 entry: a Key's id and the name of the view it is kept
// as. A struct rather than their concatenation, so that a lookup builds no
// string (an id is 64 hex characters: the concatenation would go to the
// heap on every L1 hit of a Typed cache).
type l1Key struct{ id, view string }

func (k l1Key) len() int { return len(k.id) + len(k.view) }

type l1Entry struct {
	key     l1Key
	org     string
	value   any // []byte for Get, T for Typed[T].Get
	expires time.Time
	size    int64
}

// l1 is a least-recently-used map bounded by bytes, with a TTL, that keeps
// an index from organization to entries so an invalidation drops exactly
// that organization's entries.
type l1 struct {
	max int64 // negative: off
	ttl time.Duration

	mu     sync.Mutex
	bytes  int64
	lru    *list.List // front: most recently used
	items  map[l1Key]*list.Element
	byOrg  map[string]map[*list.Element]struct{}
	all    uint64
	epochs map[string]uint64 // by org hash; absent is 0
	next   uint64            // source of org epochs, so a value never repeats

	evictions, expirations uint64
}

func newL1(max int64, ttl time.Duration) *l1 {
	return &l1{
		max: max, ttl: ttl, lru: list.New(),
		items:  map[l1Key]*list.Element{},
		byOrg:  map[string]map[*list.Element]struct{}{},
		epochs: map[string]uint64{},
	}
}

func (c *l1) enabled() bool { return c.max > 0 }

// get returns the live value of key; the caller must not modify it.
func (c *l1) get(key l1Key, now time.Time) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*l1Entry)
	if !now.Before(e.expires) {
		c.remove(el)
		c.expirations++
		return nil, false
	}
	c.lru.MoveToFront(el)
	return e.value, true
}

// epochOf returns the epoch that a load for org must still see when it
// stores its result.
func (c *l1) epochOf(org string) epoch {
	c.mu.Lock()
	defer c.mu.Unlock()
	return epoch{all: c.all, org: c.epochs[org]}
}

// put stores value, which encodes to encodedLen bytes (its size for the
// bound), unless org was invalidated (or L1 flushed) since ep was taken,
// which would mean value may predate the invalidation.
// ttl, when positive and below the L1 TTL, shortens the entry's life.
func (c *l1) put(key l1Key, org string, ep epoch, value any, encodedLen int, now time.Time, ttl time.Duration) {
	if !c.enabled() {
		return
	}
	size := int64(key.len()+encodedLen) + l1EntryOverhead
	if size > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.all != ep.all || c.epochs[org] != ep.org {
		return
	}
	if el, ok := c.items[key]; ok {
		c.remove(el)
	}
	for c.bytes+size > c.max {
		c.remove(c.lru.Back())
		c.evictions++
	}
	life := c.ttl
	if ttl > 0 && ttl < life {
		life = ttl
	}
	el := c.lru.PushFront(&l1Entry{key: key, org: org, value: value, expires: now.Add(life), size: size})
	c.items[key] = el
	set := c.byOrg[org]
	if set == nil {
		set = map[*list.Element]struct{}{}
		c.byOrg[org] = set
	}
	set[el] = struct{}{}
	c.bytes += size
}

// invalidate drops org's entries and moves its epoch.
func (c *l1) invalidate(org string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, known := c.epochs[org]; !known && len(c.epochs) >= maxEpochs {
		c.all++
		clear(c.epochs)
	}
	c.next++
	c.epochs[org] = c.next
	for el := range c.byOrg[org] {
		c.remove(el)
	}
}

// flush drops every entry and moves every epoch.
func (c *l1) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all++
	c.lru.Init()
	clear(c.items)
	clear(c.byOrg)
	c.bytes = 0
}

func (c *l1) remove(el *list.Element) {
	e := el.Value.(*l1Entry)
	c.lru.Remove(el)
	delete(c.items, e.key)
	if set := c.byOrg[e.org]; set != nil {
		delete(set, el)
		if len(set) == 0 {
			delete(c.byOrg, e.org)
		}
	}
	c.bytes -= e.size
}

type l1Snapshot struct {
	entries, bytes         int64
	evictions, expirations uint64
}

func (c *l1) snapshot() l1Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return l1Snapshot{entries: int64(len(c.items)), bytes: c.bytes, evictions: c.evictions, expirations: c.expirations}
}
