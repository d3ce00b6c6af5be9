package segmentlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/cairnlog/cairn/infra/objstore"
)

// CheckpointCache reads checkpoint records like ReadCheckpoint and keeps
// the last version it read of each pchannel's, decoded, with its ETag. A
// read asks the store every time, with a conditional GET (If-None-Match:
// the kept ETag): an unchanged record costs one request and no body, a
// changed one is downloaded and decoded as by ReadCheckpoint. A read is
// therefore exactly as fresh as ReadCheckpoint's: "not modified" means the
// kept version is the current one at that instant, so every rule that
// needs a checkpoint read (docs/protocol.md) holds as before. Nothing is
// ever served without asking.
//
// It keeps one record per pchannel read through it; readers of a bounded
// set of pchannels (a flusher, a node's scanners, a status table) share
// one. Safe for concurrent use; every Read returns a copy of the kept
// record, which the caller may modify.
type CheckpointCache struct {
	store  objstore.Store
	layout Layout

	mu   sync.Mutex
	last map[string]cachedCheckpoint // by pchannel
}

type cachedCheckpoint struct {
	cp   Checkpoint
	etag string
}

// NewCheckpointCache returns an empty cache over store.
func NewCheckpointCache(store objstore.Store, layout Layout) *CheckpointCache {
	return &CheckpointCache{store: store, layout: layout, last: make(map[string]cachedCheckpoint)}
}

// Read reads the checkpoint of pchannel p with its ETag, as ReadCheckpoint
// does (a missing record is the zero checkpoint and an empty ETag), sending
// the ETag of the version it kept so that an unchanged record is not
// downloaded again.
func (c *CheckpointCache) Read(ctx context.Context, p string) (Checkpoint, string, error) {
	c.mu.Lock()
	kept, ok := c.last[p]
	c.mu.Unlock()
	obj, err := c.store.GetIfNoneMatch(ctx, c.layout.Checkpoint(p), kept.etag)
	switch {
	case ok && errors.Is(err, objstore.ErrNotModified):
		return kept.cp.clone(), kept.etag, nil
	case errors.Is(err, objstore.ErrNotFound):
		c.forget(p)
		return Checkpoint{Format: CheckpointFormat, PChannel: p}, "", nil
	case err != nil:
		return Checkpoint{}, "", fmt.Errorf("read checkpoint %s: %w", p, err)
	}
	cp, err := decodeCheckpoint(obj.Body)
	if err != nil {
		return Checkpoint{}, "", fmt.Errorf("read checkpoint %s: %w", p, err)
	}
	c.mu.Lock()
	// Of two reads racing, the slower may keep the older version: the next
	// read then downloads the record again, nothing worse.
	c.last[p] = cachedCheckpoint{cp: cp, etag: obj.ETag}
	c.mu.Unlock()
	return cp.clone(), obj.ETag, nil
}

func (c *CheckpointCache) forget(p string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.last, p)
}

// clone returns cp with slices of its own, so that a caller's changes
// never reach a kept record.
func (cp Checkpoint) clone() Checkpoint {
	cp.TermChanges = slices.Clone(cp.TermChanges)
	cp.Dedup = slices.Clone(cp.Dedup)
	cp.Segments = slices.Clone(cp.Segments)
	cp.Retired = slices.Clone(cp.Retired)
	return cp
}
