package system

import (
	"context"

	"github.com/cairnlog/cairn/snapshot"
)

// CreateSnapshot creates snapshot name of vchannels (snapshot.Snapshots.
// Create: pinned, flushed and committed before it returns). An unknown
// vchannel is refused before the snapshot's record is written: a create
// that fails later leaves the name to a rollback.
func (s *System) CreateSnapshot(ctx context.Context, name string, vchannels []string) (snapshot.Snapshot, error) {
	for _, v := range vchannels {
		if _, err := s.registry.Describe(ctx, v); err != nil {
			return snapshot.Snapshot{}, err
		}
	}
	return s.snaps.Create(ctx, name, vchannels)
}
