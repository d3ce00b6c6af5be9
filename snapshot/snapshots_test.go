package snapshot_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	sl "github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// fakeRegistry is the vchannel registry as snapshots see it: bindings,
// dropped vchannels and pins, in memory.
type fakeRegistry struct {
	mu      sync.Mutex
	bind    map[string]string
	dropped map[string]bool
	pins    map[string]map[string]bool
}

var errDropped = errors.New("fake registry: vchannel dropped")

func newFakeRegistry(bind map[string]string) *fakeRegistry {
	return &fakeRegistry{bind: bind, dropped: map[string]bool{}, pins: map[string]map[string]bool{}}
}

func (r *fakeRegistry) Pin(_ context.Context, v, holder string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.bind[v]
	switch {
	case !ok:
		return "", fmt.Errorf("fake registry: no vchannel %s", v)
	case r.dropped[v]:
		return "", fmt.Errorf("pin %s: %w", v, errDropped)
	}
	if r.pins[v] == nil {
		r.pins[v] = map[string]bool{}
	}
	r.pins[v][holder] = true
	return p, nil
}

func (r *fakeRegistry) Unpin(_ context.Context, v, holder string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pins[v], holder)
	return nil
}

func (r *fakeRegistry) pinned(v string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.pins[v]))
}

func newSnapshots(t testing.TB, store objstore.Store, reg snapshot.VChannels) *snapshot.Snapshots {
	t.Helper()
	s, err := snapshot.NewSnapshots(snapshot.SnapshotsConfig{Layout: testLayout, Logger: quietLog}, store, reg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// drain returns a function that reads an iterator to the end.
func drain(t testing.TB) func(sl.SegmentIterator, error) []sl.Delivery {
	return func(it sl.SegmentIterator, err error) []sl.Delivery { return drainIter(t, it, err) }
}

func drainIter(t testing.TB, it sl.SegmentIterator, err error) []sl.Delivery {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []sl.Delivery
	for {
		d, err := it.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
}

func onlyVChannel(ds []sl.Delivery, v string) []sl.Delivery {
	var out []sl.Delivery
	for _, d := range ds {
		if d.VChannel == v {
			out = append(out, d)
		}
	}
	return out
}

// TestSnapshotLifecycle: create (pin, flush, cut, commit), list, describe,
// open, restore as a job, drop; idempotent calls; name reuse.
func TestSnapshotLifecycle(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store) {
		ctx := context.Background()
		reg := newFakeRegistry(map[string]string{"va": "p1", "vb": "p1", "vc": "p2", "vx": "p1"})
		w1 := openWriter(t, store, "p1", nil)
		defer w1.Close(ctx)
		w2 := openWriter(t, store, "p2", nil)
		defer w2.Close(ctx)
		appendN(t, w1, "one", 0, 30, "va", "vb", "vx")
		appendN(t, w2, "two", 0, 10, "vc")
		before1 := scanAll(t, store, "p1", sl.Earliest(), nil, nil)
		before2 := scanAll(t, store, "p2", sl.Earliest(), nil, nil)

		snaps := newSnapshots(t, store, reg)
		snap, err := snaps.Create(ctx, "snap1", []string{"vc", "vb", "va"})
		if err != nil {
			t.Fatal(err)
		}
		if snap.State != snapshot.Committed || !slices.Equal(snap.VChannels, []string{"va", "vb", "vc"}) || snap.Messages != 30 || len(snap.Cuts) != 2 {
			t.Fatalf("created %+v: want committed over va, vb, vc with 30 messages and 2 cuts", snap)
		}
		if snap.Cuts[0] != (snapshot.Cut{PChannel: "p1", C: w1.Stats().Frontier, TimeTick: before1[len(before1)-1].TimeTick}) ||
			snap.Cuts[1].C != w2.Stats().Frontier || snap.TimeTick != min(snap.Cuts[0].TimeTick, snap.Cuts[1].TimeTick) {
			t.Errorf("cuts %+v timetick %d", snap.Cuts, snap.TimeTick)
		}
		for _, ref := range snap.Segments {
			if ref.VChannel == "vx" {
				t.Errorf("manifest holds %s of vx, not in the snapshot", ref.Key)
			}
		}
		for _, v := range []string{"va", "vb", "vc"} {
			if p := reg.pinned(v); !slices.Equal(p, []string{"snap1"}) {
				t.Errorf("pins of %s: %v", v, p)
			}
		}
		if again, err := snaps.Create(ctx, "snap1", []string{"va", "vb", "vc", "va"}); err != nil || again.Version != snap.Version {
			t.Errorf("create again: %+v, %v; want the same record", again, err)
		}
		if _, err := snaps.Create(ctx, "snap1", []string{"va"}); !errors.Is(err, snapshot.ErrExists) {
			t.Errorf("create snap1 over other vchannels: %v, want ErrExists", err)
		}

		// Appends after the snapshot stay out of it.
		appendN(t, w1, "one", 30, 9, "va", "vb", "vx")
		for _, v := range []string{"va", "vb"} {
			sameDeliveries(t, "snapshot "+v, drain(t)(snaps.Open(ctx, "snap1", v)), onlyVChannel(before1, v))
		}
		sameDeliveries(t, "snapshot vc", drain(t)(snaps.Open(ctx, "snap1", "vc")), before2)

		if _, err := snaps.Create(ctx, "snap2", []string{"vc"}); err != nil {
			t.Fatal(err)
		}
		names := func(ss []snapshot.Snapshot, err error) []string {
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, s := range ss {
				out = append(out, s.Name)
			}
			return out
		}
		if got := names(snaps.List(ctx, "")); !slices.Equal(got, []string{"snap1", "snap2"}) {
			t.Errorf("list: %v", got)
		}
		if got := names(snaps.List(ctx, "va")); !slices.Equal(got, []string{"snap1"}) {
			t.Errorf("list va: %v", got)
		}
		if d, err := snaps.Describe(ctx, "snap2"); err != nil || d.Messages != 10 || d.Bytes == 0 || len(d.Segments) == 0 {
			t.Errorf("describe snap2: %+v, %v", d, err)
		}

		// Restore as a job; idempotent by its ID.
		targets := map[string]string{"va": "ra", "vb": "rb", "vc": "rc"}
		job, err := snaps.Restore(ctx, "job1", "snap1", targets)
		if err != nil {
			t.Fatal(err)
		}
		if job.State != snapshot.JobDone || job.Done != job.Total || job.Total != len(snap.Segments) || job.TimeTick != snap.TimeTick {
			t.Errorf("restore job %+v", job)
		}
		if again, err := snaps.Restore(ctx, "job1", "snap1", targets); err != nil || again.Version != job.Version {
			t.Errorf("restore again: %+v, %v; want the same job", again, err)
		}
		if _, err := snaps.Restore(ctx, "job1", "snap1", map[string]string{"va": "zz", "vb": "rb", "vc": "rc"}); !errors.Is(err, snapshot.ErrExists) {
			t.Errorf("another restore under job1: %v, want ErrExists", err)
		}
		if _, err := snaps.Restore(ctx, "job2", "snap1", map[string]string{"va": "ra"}); err == nil {
			t.Error("restore mapping only some vchannels succeeded")
		}

		// Drop: pins released, record a tombstone; the restore keeps its
		// history readable.
		if err := snaps.Drop(ctx, "snap1"); err != nil {
			t.Fatal(err)
		}
		if _, err := snaps.Describe(ctx, "snap1"); !errors.Is(err, snapshot.ErrNotFound) {
			t.Errorf("describe after drop: %v", err)
		}
		if p := reg.pinned("va"); len(p) != 0 {
			t.Errorf("va still pinned by %v", p)
		}
		if p := reg.pinned("vc"); !slices.Equal(p, []string{"snap2"}) {
			t.Errorf("vc pins %v, want snap2's only", p)
		}
		if err := snaps.Drop(ctx, "snap1"); err != nil {
			t.Errorf("drop again: %v", err)
		}
		if got := names(snaps.List(ctx, "")); !slices.Equal(got, []string{"snap2"}) {
			t.Errorf("list after drop: %v", got)
		}
		want := onlyVChannel(before1, "va")
		for i := range want {
			want[i].VChannel = "ra"
		}
		sameDeliveries(t, "restored ra after the drop", drain(t)(snaps.OpenRestored(ctx, "job1", "ra", sl.MessageID{})), want)
		// From an ID inside the history: the rest of it, nothing before.
		sameDeliveries(t, "restored ra from its third message", drain(t)(snaps.OpenRestored(ctx, "job1", "ra", want[2].ID)), want[2:])
		if id, err := snaps.RestoredFrom(ctx, "ra"); err != nil || id != "job1" {
			t.Errorf("RestoredFrom(ra) = %q, %v; want job1", id, err)
		}
		if id, err := snaps.RestoredFrom(ctx, "va"); err != nil || id != "" {
			t.Errorf("RestoredFrom(va), a source, = %q, %v; want none", id, err)
		}
		if _, err := snaps.OpenRestored(ctx, "job1", "va", sl.MessageID{}); !errors.Is(err, snapshot.ErrNotFound) {
			t.Errorf("OpenRestored of a vchannel the job does not target: %v, want ErrNotFound", err)
		}
		if _, err := snaps.Restore(ctx, "job3", "snap1", targets); !errors.Is(err, snapshot.ErrNotFound) {
			t.Errorf("restore of a dropped snapshot: %v, want ErrNotFound", err)
		}
		// The name can be used again.
		if s, err := snaps.Create(ctx, "snap1", []string{"vx"}); err != nil || s.State != snapshot.Committed {
			t.Errorf("reuse the name snap1: %+v, %v", s, err)
		}
	})
}

// TestSnapshotPinFails: a vchannel that is dropped cannot be pinned; the
// create rolls back, releasing the pins it took.
func TestSnapshotPinFails(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	reg := newFakeRegistry(map[string]string{"va": "p1", "vd": "p1"})
	reg.dropped["vd"] = true
	snaps := newSnapshots(t, store, reg)
	if _, err := snaps.Create(ctx, "s", []string{"va", "vd"}); !errors.Is(err, errDropped) {
		t.Fatalf("create over a dropped vchannel: %v", err)
	}
	if p := reg.pinned("va"); len(p) != 0 {
		t.Errorf("va still pinned by %v after the rollback", p)
	}
	if _, err := snaps.Describe(ctx, "s"); !errors.Is(err, snapshot.ErrNotFound) {
		t.Errorf("describe after a failed create: %v", err)
	}
}

// TestRestoreRollsBack: a segment gone missing fails the job, which rolls
// back and releases its references.
func TestRestoreRollsBack(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store) {
		ctx := context.Background()
		reg := newFakeRegistry(map[string]string{"va": "p1", "vb": "p1"})
		w := openWriter(t, store, "p1", nil)
		defer w.Close(ctx)
		appendN(t, w, "p", 0, 10, "va", "vb")
		snaps := newSnapshots(t, store, reg)
		snap, err := snaps.Create(ctx, "s", []string{"va", "vb"})
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Delete(ctx, snap.Segments[1].Key); err != nil {
			t.Fatal(err)
		}
		job, err := snaps.Restore(ctx, "j", "s", map[string]string{"va": "ra", "vb": "rb"})
		if !errors.Is(err, snapshot.ErrMissingSegment) {
			t.Fatalf("restore with a missing segment: %v", err)
		}
		if job.State != snapshot.JobRolledBack || job.Segments != nil || job.Error == "" || job.Done != 1 {
			t.Errorf("job after the failure %+v: want rolled back after 1 segment, references released", job)
		}
		if again, err := snaps.Restore(ctx, "j", "s", map[string]string{"va": "ra", "vb": "rb"}); err != nil || again.State != snapshot.JobRolledBack {
			t.Errorf("restore j again: %+v, %v; want the rolled-back job", again, err)
		}
	})
}

// TestGCKeepsSnapshotFiles: once a manifest no longer names a file (as when
// a dropped vchannel's data is reclaimed), a snapshot still keeps it, and
// after the snapshot is dropped a restore job still does; a file nothing
// names goes.
func TestGCKeepsSnapshotFiles(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store) {
		ctx := context.Background()
		reg := newFakeRegistry(map[string]string{"va": "p1", "vb": "p1", "vc": "p1"})
		w := openWriter(t, store, "p1", nil)
		defer w.Close(ctx)
		appendN(t, w, "p", 0, 12, "va", "vb", "vc")
		snaps := newSnapshots(t, store, reg)
		if _, err := snaps.Create(ctx, "s1", []string{"va"}); err != nil {
			t.Fatal(err)
		}
		if _, err := snaps.Create(ctx, "s2", []string{"vb"}); err != nil {
			t.Fatal(err)
		}
		if _, err := snaps.Restore(ctx, "j2", "s2", map[string]string{"vb": "rb"}); err != nil {
			t.Fatal(err)
		}
		if err := snaps.Drop(ctx, "s2"); err != nil {
			t.Fatal(err)
		}
		// Empty the checkpoint's manifest, as reclaiming would.
		cp, etag, err := sl.ReadCheckpoint(ctx, store, testLayout, "p1")
		if err != nil {
			t.Fatal(err)
		}
		files := map[string]string{}
		for _, r := range cp.Segments {
			files[r.VChannel] = r.Key
		}
		cp.Segments, cp.Version = nil, cp.Version+1
		body, err := json.Marshal(cp)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.PutIfMatch(ctx, testLayout.Checkpoint("p1"), body, etag); err != nil {
			t.Fatal(err)
		}
		res, err := newGC(t, store, func(c *snapshot.GCConfig) { c.Now = clockAt(2 * time.Hour) }).CollectOrphans(ctx)
		if err != nil {
			t.Fatal(err)
		}
		left := listKeys(t, store, snapshot.SegmentsPrefix(testLayout))
		if res.Deleted != 1 || !slices.Equal(left, slices.Sorted(slices.Values([]string{files["va"], files["vb"]}))) {
			t.Errorf("gc %+v left %v: want va's file (snapshot s1) and vb's (restore j2), not vc's", res, left)
		}
	})
}

// dyingAfter is a store whose process dies after n HEADs: from then on every
// call fails, as for a process killed mid-restore.
type dyingAfter struct {
	objstore.Store
	heads, n int
}

var errKilled = errors.New("test: process killed")

func (d *dyingAfter) Head(ctx context.Context, key string) (objstore.Attrs, error) {
	if d.heads++; d.heads > d.n {
		return objstore.Attrs{}, errKilled
	}
	return d.Store.Head(ctx, key)
}

func (d *dyingAfter) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	if d.heads > d.n {
		return "", errKilled
	}
	return d.Store.PutIfMatch(ctx, key, body, etag)
}

// TestRestoreKilledHalfwayResumes: a restore whose process dies after its
// first segment is left running with its progress; the same job ID, run by
// another process, resumes there and ends with exactly the snapshot's data.
func TestRestoreKilledHalfwayResumes(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store) {
		ctx := context.Background()
		reg := newFakeRegistry(map[string]string{"va": "p1", "vb": "p1"})
		w := openWriter(t, store, "p1", nil)
		defer w.Close(ctx)
		appendN(t, w, "p", 0, 10, "va", "vb")
		snap, err := newSnapshots(t, store, reg).Create(ctx, "s", []string{"va", "vb"})
		if err != nil {
			t.Fatal(err)
		}
		if len(snap.Segments) < 2 {
			t.Fatalf("snapshot has %d segments; the test needs 2 or more", len(snap.Segments))
		}
		targets := map[string]string{"va": "ra", "vb": "rb"}
		dying := &dyingAfter{Store: store, n: 1}
		if _, err := newSnapshots(t, dying, reg).Restore(ctx, "j", "s", targets); err == nil {
			t.Fatal("restore succeeded in a process that died halfway")
		}
		snaps := newSnapshots(t, store, reg)
		half, err := snaps.RestoreStatus(ctx, "j")
		if err != nil || half.State != snapshot.JobRunning || half.Done != 1 {
			t.Fatalf("job after the kill: %+v %v; want running with 1 segment done", half, err)
		}
		job, err := snaps.Restore(ctx, "j", "s", targets)
		if err != nil || job.State != snapshot.JobDone || job.Done != job.Total {
			t.Fatalf("resumed job: %+v %v", job, err)
		}
		for src, dst := range targets {
			want := drain(t)(snaps.Open(ctx, "s", src))
			got := drain(t)(snaps.OpenRestored(ctx, "j", dst, sl.MessageID{}))
			if len(got) != len(want) || len(want) == 0 {
				t.Fatalf("restored %s: %d messages, want the snapshot's %d", dst, len(got), len(want))
			}
			for i := range want {
				if got[i].ID != want[i].ID || string(got[i].Payload) != string(want[i].Payload) || got[i].VChannel != dst {
					t.Fatalf("restored %s message %d: %+v, want %+v as %s", dst, i, got[i], want[i], dst)
				}
			}
		}
	})
}
