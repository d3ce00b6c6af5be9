package snapshot

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/infra/objstore/cas"
	"github.com/cairnlog/cairn/segmentlog"
)

// JobState is the state of a restore job.
type JobState string

const (
	JobRunning    JobState = "running"     // segments being checked; a GC root
	JobDone       JobState = "done"        // the targets' history is in place; a GC root
	JobRolledBack JobState = "rolled_back" // failed; references released
)

// restoreFormat is the version of the restore job record's JSON form.
const restoreFormat = 1

// RestoreJob is the record of one restore at
// {prefix}/meta/restores/{id}.json, changed only by CAS. Its manifest is
// the restored vchannels' history: it references the snapshot's segment
// files, so dropping the snapshot does not free them (docs/protocol.md
// "Snapshots" rule 2). A RestoreJob is a plain value.
type RestoreJob struct {
	Format   int    `json:"format"`
	ID       string `json:"id"`
	Snapshot string `json:"snapshot"`
	// Targets maps each vchannel of the snapshot to the new vchannel whose
	// history it becomes.
	Targets map[string]string `json:"targets"`
	State   JobState          `json:"state"`
	// Done and Total count the segment files checked (progress).
	Done     int                     `json:"done"`
	Total    int                     `json:"total"`
	TimeTick uint64                  `json:"timetick"` // the snapshot's
	Segments []segmentlog.SegmentRef `json:"segments,omitempty"`
	// Starts is the snapshot's: where each source vchannel's history
	// begins in Segments.
	Starts  map[string]segmentlog.MessageID `json:"starts,omitempty"`
	Error   string                          `json:"error,omitempty"`
	Version uint64                          `json:"version"`
}

// root reports whether the job's manifest keeps its files from GC.
func (j RestoreJob) root() bool { return j.State == JobRunning || j.State == JobDone }

// Restore runs restore job id: the snapshot's vchannels become the target
// vchannels' history (targets maps snapshot vchannel → new name, every
// snapshot vchannel mapped). The job is a record with a state and progress
// (RestoreStatus); it is idempotent by id: calling it again resumes a
// running job or returns a finished one, and a different request under the
// same id fails with ErrExists. On failure it rolls back (state
// rolled_back, references released) and returns the error.
//
// Not done here, because they belong to the coordinator's vchannel
// registry: creating the target vchannels' records, and raising the target
// pchannel's timetick floor above the job's TimeTick before they accept
// appends (docs/protocol.md "Snapshots" rule 3).
func (s *Snapshots) Restore(ctx context.Context, id, name string, targets map[string]string) (RestoreJob, error) {
	if err := segmentlog.ValidateName("restore job", id); err != nil {
		return RestoreJob{}, err
	}
	for _, t := range targets {
		if err := segmentlog.ValidateName("vchannel", t); err != nil {
			return RestoreJob{}, err
		}
	}
	key := RestoreKey(s.cfg.Layout, id)
	job, err := update(ctx, s.store, key, s.cfg.Timeout, func(cur RestoreJob, exists bool) (RestoreJob, error) {
		if exists {
			if cur.Snapshot != name || !maps.Equal(cur.Targets, targets) {
				return cur, fmt.Errorf("restore job %s restores %s to %v: %w", id, cur.Snapshot, cur.Targets, ErrExists)
			}
			return cur, cas.ErrUnchanged
		}
		snap, err := s.Describe(ctx, name)
		if err != nil {
			return cur, err
		}
		if snap.State != Committed {
			return cur, fmt.Errorf("snapshot %s: %w: it is %s", name, ErrState, snap.State)
		}
		if !slices.Equal(slices.Sorted(maps.Keys(targets)), snap.VChannels) {
			return cur, fmt.Errorf("restore %s: targets %v must map exactly the snapshot's vchannels %v", name, targets, snap.VChannels)
		}
		return RestoreJob{Format: restoreFormat, ID: id, Snapshot: name, Targets: maps.Clone(targets), State: JobRunning,
			Total: len(snap.Segments), TimeTick: snap.TimeTick, Segments: snap.Segments, Starts: snap.Starts, Version: 1}, nil
	})
	if err != nil {
		return RestoreJob{}, fmt.Errorf("restore job %s: %w", id, err)
	}
	if job.State != JobRunning {
		return job, nil
	}
	if err := s.runRestore(ctx, job); err != nil {
		rolled, rerr := update(context.WithoutCancel(ctx), s.store, key, s.cfg.Timeout, func(cur RestoreJob, exists bool) (RestoreJob, error) {
			if !exists || cur.State != JobRunning {
				return cur, cas.ErrUnchanged
			}
			next := cur
			next.State, next.Segments, next.Error, next.Version = JobRolledBack, nil, err.Error(), cur.Version+1
			return next, nil
		})
		if rerr != nil {
			err = errors.Join(err, fmt.Errorf("roll back: %w", rerr))
		}
		return rolled, fmt.Errorf("restore job %s: %w", id, err)
	}
	return s.RestoreStatus(ctx, id)
}

// runRestore checks every segment of the job (it exists, at its size:
// invariant I10), recording progress, then marks the job done.
func (s *Snapshots) runRestore(ctx context.Context, job RestoreJob) error {
	key := RestoreKey(s.cfg.Layout, job.ID)
	for i := job.Done; i < len(job.Segments); i++ {
		ref := job.Segments[i]
		var a objstore.Attrs
		err := retry(ctx, func(actx context.Context) error {
			var err error
			a, err = s.store.Head(actx, ref.Key)
			return err
		}, s.cfg.Timeout)
		switch {
		case errors.Is(err, objstore.ErrNotFound):
			return fmt.Errorf("segment %s: %w", ref.Key, ErrMissingSegment)
		case err != nil:
			return err
		case a.Size != ref.Bytes:
			return fmt.Errorf("segment %s: %w: %d bytes, the manifest says %d", ref.Key, ErrCorrupt, a.Size, ref.Bytes)
		}
		if _, err := update(ctx, s.store, key, s.cfg.Timeout, func(cur RestoreJob, exists bool) (RestoreJob, error) {
			if !exists || cur.State != JobRunning || cur.Done > i {
				return cur, cas.ErrUnchanged
			}
			next := cur
			next.Done, next.Version = i+1, cur.Version+1
			return next, nil
		}); err != nil {
			return err
		}
	}
	_, err := update(ctx, s.store, key, s.cfg.Timeout, func(cur RestoreJob, exists bool) (RestoreJob, error) {
		if !exists || cur.State != JobRunning {
			return cur, cas.ErrUnchanged
		}
		next := cur
		next.State, next.Done, next.Version = JobDone, len(cur.Segments), cur.Version+1
		return next, nil
	})
	return err
}

// RestoreStatus returns restore job id; ErrNotFound if there is none.
func (s *Snapshots) RestoreStatus(ctx context.Context, id string) (RestoreJob, error) {
	job, _, ok, err := readRecord[RestoreJob](ctx, s.store, RestoreKey(s.cfg.Layout, id), s.cfg.Timeout)
	if err != nil {
		return RestoreJob{}, fmt.Errorf("restore job %s: %w", id, err)
	}
	if !ok {
		return RestoreJob{}, fmt.Errorf("restore job %s: %w", id, ErrNotFound)
	}
	return job, nil
}

// OpenRestored iterates the restored history of target vchannel from a
// finished job, in the source's ID order, from ID from on (the zero ID:
// from its start); deliveries carry the target's name. IDs and terms are
// those of the snapshot's source pchannel. A job not done fails with
// ErrState, a target the job does not name with ErrNotFound.
func (s *Snapshots) OpenRestored(ctx context.Context, id, target string, from segmentlog.MessageID) (segmentlog.SegmentIterator, error) {
	job, err := s.RestoreStatus(ctx, id)
	if err != nil {
		return nil, err
	}
	if job.State != JobDone {
		return nil, fmt.Errorf("restore job %s: %w: it is %s", id, ErrState, job.State)
	}
	source := ""
	for src, t := range job.Targets {
		if t == target {
			source = src
		}
	}
	if source == "" {
		return nil, fmt.Errorf("restore job %s: %w: no target %s", id, ErrNotFound, target)
	}
	if start := job.Starts[source]; from.Less(start) {
		from = start // the snapshot holds the source's messages from there
	}
	it, err := s.reader.open(ctx, job.Segments, ^uint64(0), from, []string{source})
	if err != nil {
		return nil, err
	}
	return renamed{it, target}, nil
}

// RestoredFrom returns the ID of the done restore job whose targets name
// vchannel, or "" if none does: one LIST of the restore jobs and a GET per
// job, in ID order. Should two done jobs name it, the lowest ID wins. A
// caller may keep the answer once it is not "": a job creates its target
// vchannels only after it is done, and a done job never changes.
func (s *Snapshots) RestoredFrom(ctx context.Context, vchannel string) (string, error) {
	var ids []string
	err := s.store.List(ctx, RestoresPrefix(s.cfg.Layout), "", func(a objstore.Attrs) error {
		if id, ok := strings.CutSuffix(path.Base(a.Key), ".json"); ok {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	for _, id := range ids { // listed in key order: the lowest ID first
		j, err := s.RestoreStatus(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		if j.State != JobDone {
			continue
		}
		for _, t := range j.Targets {
			if t == vchannel {
				return id, nil
			}
		}
	}
	return "", nil
}

// renamed delivers an iterator's messages under another vchannel name.
type renamed struct {
	*segmentIter
	vchannel string
}

func (r renamed) Next(ctx context.Context) (segmentlog.Delivery, error) {
	d, err := r.segmentIter.Next(ctx)
	d.VChannel = r.vchannel
	return d, err
}
