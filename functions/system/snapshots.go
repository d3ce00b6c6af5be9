package system

import (
	"context"
	"errors"
	"fmt"

	"github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// CreateSnapshot creates snapshot name of vchannels (snapshot.Snapshots.
// Create: pinned, flushed and committed before it returns). An invalid
// name (segmentlog.ErrInvalidName), no vchannels (ErrInvalid) and an
// unknown vchannel are refused before the snapshot's record is written: a
// create that fails later leaves the name to a rollback.
func (s *System) CreateSnapshot(ctx context.Context, name string, vchannels []string) (snapshot.Snapshot, error) {
	if err := segmentlog.ValidateName("snapshot", name); err != nil {
		return snapshot.Snapshot{}, err
	}
	if len(vchannels) == 0 {
		return snapshot.Snapshot{}, fmt.Errorf("%w: a snapshot needs at least one vchannel", ErrInvalid)
	}
	for _, v := range vchannels {
		if _, err := s.registry.Describe(ctx, v); err != nil {
			return snapshot.Snapshot{}, err
		}
	}
	return s.snaps.Create(ctx, name, vchannels)
}

// DropSnapshot drops snapshot name: snapshot.ErrNotFound if there is none,
// but not if a drop running beside this one removed it first. Files that a
// restored vchannel uses stay.
func (s *System) DropSnapshot(ctx context.Context, name string) error {
	if _, err := s.snaps.Describe(ctx, name); err != nil {
		return err
	}
	if err := s.snaps.Drop(ctx, name); err != nil && !errors.Is(err, snapshot.ErrNotFound) {
		return err
	}
	return nil
}
