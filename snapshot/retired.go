package snapshot

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// retiredListFormat is the version of a retired list's JSON form.
const retiredListFormat = 1

// RetiredList is a retired list (docs/protocol.md "Flush, truncation, GC"
// rule 8): the segment files one merge, or one RetireTrimmed pass, takes
// out of a pchannel's manifest, at
// {prefix}/meta/retired/{pchannel}/{written:020d}-{id}.json. It is written
// once, with PutIfAbsent, before the checkpoint CAS that removes the files,
// and never changed; GC deletes it once its grace (GCConfig.OrphanAge after
// RetiredAt) is over.
//
// A retired list only protects: GC counts every file it lists as named
// until the grace ends, and deletes a file only as an orphan, that no
// checkpoint, snapshot or restore job names. So a list whose CAS lost (its
// files still in the manifest) keeps files a little longer and never makes
// GC delete one. It replaces the checkpoint's inline Retired list, which
// grew with the flush rate; records that still carry one are honoured
// until their entries expire.
type RetiredList struct {
	Format    int       `json:"format"`
	PChannel  string    `json:"pchannel"`
	RetiredAt time.Time `json:"retired_at"`
	Keys      []string  `json:"keys"`
}

// writeRetiredList stores keys as a retired list of pchannel p, retired at
// at, under a new key holding id, and returns that key.
func writeRetiredList(ctx context.Context, store objstore.Store, l segmentlog.Layout, p string, keys []string, at time.Time, id string, timeout time.Duration) (string, error) {
	body, err := json.Marshal(RetiredList{Format: retiredListFormat, PChannel: p, RetiredAt: at.UTC(), Keys: keys})
	if err != nil {
		return "", err
	}
	// Real time in the key: a flusher lists the lists written since its
	// round began (retiredHoldsFlush).
	key := retiredListKey(l, p, time.Now(), id)
	if err := putImmutable(ctx, store, key, body, nil, timeout); err != nil {
		return "", fmt.Errorf("write retired list: %w", err)
	}
	return key, nil
}

// segmentKeys returns the keys of refs.
func segmentKeys(refs []segmentlog.SegmentRef) []string {
	keys := make([]string, len(refs))
	for i, r := range refs {
		keys[i] = r.Key
	}
	return keys
}

// readRetiredLists lists the retired lists under prefix, after the key
// after, and returns them by key. A list known already (immutable, it
// cannot have changed) is taken from known; a list deleted between the
// listing and its read is left out.
func readRetiredLists(ctx context.Context, store objstore.Store, prefix, after string, known map[string]RetiredList, timeout time.Duration) (map[string]RetiredList, error) {
	var keys []string
	// A listing that fails midway is restarted after the last key seen.
	err := retry(ctx, func(context.Context) error {
		return store.List(ctx, prefix, after, func(a objstore.Attrs) error {
			if strings.HasSuffix(a.Key, ".json") {
				keys = append(keys, a.Key)
			}
			after = a.Key
			return nil
		})
	}, timeout)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	out := make(map[string]RetiredList, len(keys))
	for _, k := range keys {
		if rl, ok := known[k]; ok {
			out[k] = rl
			continue
		}
		rl, _, ok, err := readRecord[RetiredList](ctx, store, k, timeout)
		if err != nil {
			return nil, err
		}
		if ok {
			out[k] = rl
		}
	}
	return out, nil
}

// retiredCache keeps the retired lists a GC has read, so that a pass
// downloads only the lists written since the previous one. Safe for
// concurrent use.
type retiredCache struct {
	mu    sync.Mutex
	byKey map[string]RetiredList
}

// load returns the retired lists under prefix (see readRetiredLists) and
// keeps them for the next load.
func (c *retiredCache) load(ctx context.Context, store objstore.Store, prefix string, timeout time.Duration) (map[string]RetiredList, error) {
	c.mu.Lock()
	known := make(map[string]RetiredList, len(c.byKey))
	for k, rl := range c.byKey {
		known[k] = rl
	}
	c.mu.Unlock()
	lists, err := readRetiredLists(ctx, store, prefix, "", known, timeout)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byKey == nil {
		c.byKey = make(map[string]RetiredList)
	}
	for k := range c.byKey {
		if _, ok := lists[k]; !ok && strings.HasPrefix(k, prefix) {
			delete(c.byKey, k) // deleted since
		}
	}
	for k, rl := range lists {
		c.byKey[k] = rl
	}
	return lists, nil
}

// forget drops key from the cache.
func (c *retiredCache) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.byKey, key)
}

// retiredSkew is how much earlier than a flush round began a retired list
// holding its files may carry in its key: the clock skew between a
// flusher and a compactor, with room.
const retiredSkew = 5 * time.Minute

// retiredHoldsFlush reports whether a retired list of pchannel p written
// since the round that began at start names a file of flush flushID: a
// compaction merged the round's files away after its CAS landed (only a
// record that held the round can have named them). Any failure reports
// false, as a lost race.
func retiredHoldsFlush(ctx context.Context, store objstore.Store, l segmentlog.Layout, p, flushID string, start time.Time, timeout time.Duration) bool {
	prefix := retiredListPrefix(l, p)
	lists, err := readRetiredLists(ctx, store, prefix, prefix+retiredListStart(start.Add(-retiredSkew)), nil, timeout)
	if err != nil {
		return false
	}
	for _, rl := range lists {
		if slices.ContainsFunc(rl.Keys, func(k string) bool { return flushIDOf(k) == flushID }) {
			return true
		}
	}
	return false
}

// RetiredFiles returns the segment files retired from pchannel p's
// manifest whose retirement GC has not yet ended: the checkpoint's inline
// Retired entries (written before retired lists existed) and the keys of
// every retired list of p, each with its RetiredAt. GC reads the lists
// itself; this is for tools and tests.
func RetiredFiles(ctx context.Context, store objstore.Store, l segmentlog.Layout, p string) ([]segmentlog.RetiredSegment, error) {
	const timeout = 5 * time.Second
	cp, _, err := segmentlog.ReadCheckpoint(ctx, store, l, p)
	if err != nil {
		return nil, err
	}
	out := slices.Clone(cp.Retired)
	lists, err := readRetiredLists(ctx, store, retiredListPrefix(l, p), "", nil, timeout)
	if err != nil {
		return nil, fmt.Errorf("retired files of %s: %w", p, err)
	}
	for _, k := range slices.Sorted(maps.Keys(lists)) {
		for _, key := range lists[k].Keys {
			out = append(out, segmentlog.RetiredSegment{Key: key, RetiredAt: lists[k].RetiredAt})
		}
	}
	return out, nil
}
