package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// ControlWAL appends Cairn's control messages to the WAL of a pchannel,
// through the pchannel's current lease holder: in a deployment an HTTP call
// to the node Locate names, in one process the holder's
// segmentlog.Writer.AppendControl. The registry sends every message with an
// idempotency key, so a retry after an unknown outcome, on the same writer
// or on the next holder's, lands once. Implementations must be safe for
// concurrent use.
type ControlWAL interface {
	AppendControl(ctx context.Context, pchannel string, msgs ...segmentlog.Message) ([]segmentlog.Ack, error)
}

// Registry keeps the vchannel records: create, drop, list, describe, the
// flushed position, snapshot pins, reclaim, and Locate for producers. Every
// change is a compare-and-swap decided by a pure function
// (vchannel_decide.go), so any number of Registries may serve one store.
//
// A Registry is safe for concurrent use.
type Registry struct {
	cfg    Config
	rec    records
	vcodec codec[VChannel]
	leases *Leases
	log    *slog.Logger

	mu      sync.Mutex // guards the mirrors
	vchans  *mirror[VChannel]
	assigns *mirror[Assignment]
}

// NewRegistry returns a registry over store. leases is read by Locate; its
// layout must be cfg.Layout.
func NewRegistry(cfg Config, store objstore.Store, leases *Leases) (*Registry, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil || leases == nil {
		return nil, errors.New("coordinator: new registry: nil store or leases")
	}
	if leases.layout != cfg.Layout {
		return nil, fmt.Errorf("coordinator: new registry: layout %+v differs from the leases' %+v", cfg.Layout, leases.layout)
	}
	return &Registry{
		cfg:     cfg,
		rec:     records{store: store, timeout: cfg.RequestTimeout, now: cfg.Now},
		vcodec:  vchannelCodec(cfg.Layout),
		leases:  leases,
		log:     cfg.Logger.With("component", "registry"),
		vchans:  newMirror(vchannelCodec(cfg.Layout)),
		assigns: newMirror(assignmentCodec(cfg.Layout)),
	}, nil
}

// The idempotency keys of the registry's control messages. A vchannel name
// is never reused, so (name, seq) identifies one message for good.
const (
	seqCreate = 1
	seqDrop   = 2
)

func controlKey(vchannel string, seq uint64) segmentlog.IdemKey {
	return segmentlog.IdemKey{Producer: "cairn.registry/" + vchannel, Epoch: 1, Seq: seq}
}

// Create creates vchannel name bound to pchannel, or, if pchannel is "",
// to the pchannel with the fewest active vchannels. It writes the record,
// then a create message through wal, then records where it landed
// (VChannel.Created).
//
// Creating an existing active vchannel returns its record when the binding
// matches (any binding matches pchannel ""), and fails with
// ErrBindingConflict when it does not; a dropped name fails with
// ErrVChannelDropped. If the create message cannot be appended the record
// exists without Created: call Create again to finish.
func (r *Registry) Create(ctx context.Context, wal ControlWAL, name, pchannel string) (VChannel, error) {
	if err := segmentlog.ValidateName("vchannel", name); err != nil {
		return VChannel{}, fmt.Errorf("coordinator: create: %w", err)
	}
	if wal == nil {
		return VChannel{}, fmt.Errorf("coordinator: create %s: nil ControlWAL", name)
	}
	if pchannel != "" {
		if err := segmentlog.ValidateName("pchannel", pchannel); err != nil {
			return VChannel{}, fmt.Errorf("coordinator: create %s: %w", name, err)
		}
	}
	chosen, err := r.choose(ctx, pchannel)
	if err != nil {
		return VChannel{}, fmt.Errorf("coordinator: create %s: %w", name, err)
	}
	v, err := r.update(ctx, name, func(cur *VChannel, now time.Time) (VChannel, error) {
		return decideCreate(cur, name, pchannel, chosen, now)
	})
	if err != nil || v.Created != nil {
		return v, wrapOp("create", name, err)
	}
	acks, err := wal.AppendControl(ctx, v.PChannel, segmentlog.Message{
		Type: segmentlog.TypeCreateVChannel, VChannel: name, Key: controlKey(name, seqCreate),
	})
	if err != nil {
		return v, fmt.Errorf("coordinator: create %s: record written, create message not appended to %s (call Create again): %w",
			name, v.PChannel, err)
	}
	v, err = r.update(ctx, name, func(cur *VChannel, _ time.Time) (VChannel, error) {
		return decideLogCreate(cur, name, markOf(acks[0]))
	})
	return v, wrapOp("create", name, err)
}

// choose returns the pchannel a new vchannel binds to: want, if it is in
// the pchannel set, else the least loaded one.
func (r *Registry) choose(ctx context.Context, want string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pchannels, err := r.pchannelsLocked(ctx)
	if err != nil {
		return "", err
	}
	if want != "" {
		if !slices.Contains(pchannels, want) {
			return "", fmt.Errorf("%w: %s (the set is %v)", ErrUnknownPChannel, want, pchannels)
		}
		return want, nil
	}
	if err := r.vchans.refreshRetrying(ctx, r.rec); err != nil {
		return "", err
	}
	return pickPChannel(pchannels, r.vchans.all()), nil
}

func (r *Registry) pchannelsLocked(ctx context.Context) ([]string, error) {
	if err := r.assigns.refreshRetrying(ctx, r.rec); err != nil {
		return nil, err
	}
	if err := ensurePChannels(ctx, r.rec, r.cfg, r.assigns); err != nil {
		return nil, err
	}
	return r.assigns.names(), nil
}

// PChannels returns the pchannel set, in name order: every pchannel with an
// assignment record (the configured ones are created if missing).
func (r *Registry) PChannels(ctx context.Context) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps, err := r.pchannelsLocked(ctx)
	if err != nil {
		return nil, fmt.Errorf("coordinator: pchannels: %w", err)
	}
	return ps, nil
}

// Drop drops vchannel name: the record becomes dropped with its position
// done (no later position update can undo that, and the pchannel's
// checkpoint is not touched), then a drop message goes through wal, then
// the record notes where it landed (VChannel.Dropped). The data stays for
// GC, which reclaims it once no snapshot pins it (MarkReclaiming). Dropping
// again is harmless and finishes a drop whose message was not appended.
func (r *Registry) Drop(ctx context.Context, wal ControlWAL, name string) (VChannel, error) {
	if err := segmentlog.ValidateName("vchannel", name); err != nil {
		return VChannel{}, fmt.Errorf("coordinator: drop: %w", err)
	}
	if wal == nil {
		return VChannel{}, fmt.Errorf("coordinator: drop %s: nil ControlWAL", name)
	}
	v, err := r.update(ctx, name, func(cur *VChannel, now time.Time) (VChannel, error) {
		return decideDrop(cur, name, now)
	})
	if err != nil || v.Dropped != nil {
		return v, wrapOp("drop", name, err)
	}
	acks, err := wal.AppendControl(ctx, v.PChannel, segmentlog.Message{
		Type: segmentlog.TypeDropVChannel, VChannel: name, Key: controlKey(name, seqDrop),
	})
	if err != nil {
		return v, fmt.Errorf("coordinator: drop %s: record dropped, drop message not appended to %s (call Drop again): %w",
			name, v.PChannel, err)
	}
	v, err = r.update(ctx, name, func(cur *VChannel, _ time.Time) (VChannel, error) {
		return decideLogDrop(cur, name, markOf(acks[0]))
	})
	return v, wrapOp("drop", name, err)
}

// Describe returns the record of vchannel name; ErrNoVChannel if none.
func (r *Registry) Describe(ctx context.Context, name string) (VChannel, error) {
	if err := segmentlog.ValidateName("vchannel", name); err != nil {
		return VChannel{}, fmt.Errorf("coordinator: describe: %w", err)
	}
	v, err := describeRecord(ctx, r.rec, r.vcodec, name)
	switch {
	case err != nil:
		return VChannel{}, fmt.Errorf("coordinator: describe vchannel %s: %w", name, err)
	case v == nil:
		return VChannel{}, fmt.Errorf("coordinator: describe vchannel: %w: %s", ErrNoVChannel, name)
	}
	return *v, nil
}

// VChannelFilter selects vchannels in List; zero fields select all.
type VChannelFilter struct {
	PChannel string
	State    VChannelState
}

// List returns the vchannels that match f, in name order, dropped ones
// included unless f.State excludes them.
func (r *Registry) List(ctx context.Context, f VChannelFilter) ([]VChannel, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.vchans.refreshRetrying(ctx, r.rec); err != nil {
		return nil, fmt.Errorf("coordinator: list vchannels: %w", err)
	}
	var out []VChannel
	for _, v := range r.vchans.all() {
		if (f.PChannel == "" || v.PChannel == f.PChannel) && (f.State == "" || v.State == f.State) {
			out = append(out, v)
		}
	}
	return out, nil
}

// AdvancePosition moves the flushed position of vchannel name forward to
// pos (the flusher calls it). A position at or below the recorded one
// changes nothing. Once the vchannel is dropped it fails with
// ErrVChannelDropped and writes nothing.
func (r *Registry) AdvancePosition(ctx context.Context, name string, pos Position) (VChannel, error) {
	v, err := r.update(ctx, name, func(cur *VChannel, _ time.Time) (VChannel, error) {
		return decideAdvance(cur, name, pos)
	})
	return v, wrapOp("advance position of", name, err)
}

// AdvanceFlushed is AdvancePosition for the flusher (snapshot.PositionSink):
// it moves vchannel name's position to id with timetick tick, and ignores a
// dropped vchannel, whose position is done.
func (r *Registry) AdvanceFlushed(ctx context.Context, name string, id segmentlog.MessageID, tick uint64) error {
	_, err := r.AdvancePosition(ctx, name, Position{ID: id, TimeTick: tick})
	if errors.Is(err, ErrVChannelDropped) || errors.Is(err, ErrNoVChannel) {
		return nil
	}
	return err
}

// Pin records that holder (a snapshot, or a restore job) pins vchannel
// name, and returns the pchannel it is bound to (docs/protocol.md, "Snapshots"
// rule 1). It fails with ErrVChannelDropped once the vchannel is dropped or
// being reclaimed. Pinning twice is harmless. Pin and Unpin are the
// snapshot package's VChannels.
func (r *Registry) Pin(ctx context.Context, name, holder string) (string, error) {
	if err := segmentlog.ValidateName("pin holder", holder); err != nil {
		return "", fmt.Errorf("coordinator: pin %s: %w", name, err)
	}
	v, err := r.update(ctx, name, func(cur *VChannel, _ time.Time) (VChannel, error) {
		return decidePin(cur, name, holder)
	})
	if err != nil {
		return "", wrapOp("pin", name, err)
	}
	return v.PChannel, nil
}

// Unpin removes holder's pin from vchannel name, in any state. Removing a
// pin that is not there is harmless, also from a vchannel that does not
// exist: a snapshot whose create failed on an unknown vchannel unpins all
// its vchannels on the way out, and must not be stuck there.
func (r *Registry) Unpin(ctx context.Context, name, holder string) error {
	_, err := r.update(ctx, name, func(cur *VChannel, _ time.Time) (VChannel, error) {
		return decideUnpin(cur, name, holder)
	})
	if errors.Is(err, ErrNoVChannel) {
		return nil
	}
	return wrapOp("unpin", name, err)
}

// MarkReclaiming moves a dropped vchannel with no pins to reclaiming; GC
// may delete its data once it reported true (also for a vchannel already
// reclaiming). While a snapshot pins it, it reports false and no error. It
// fails with ErrVChannelActive before the drop. MarkReclaiming and Dropped
// are the snapshot package's Reclaimer.
func (r *Registry) MarkReclaiming(ctx context.Context, name string) (bool, error) {
	_, err := r.update(ctx, name, func(cur *VChannel, _ time.Time) (VChannel, error) {
		return decideReclaim(cur, name)
	})
	switch {
	case errors.Is(err, ErrPinned):
		return false, nil
	case err != nil:
		return false, wrapOp("reclaim", name, err)
	}
	return true, nil
}

// Dropped returns the vchannels bound to pchannel that are dropped or
// reclaiming, in name order.
func (r *Registry) Dropped(ctx context.Context, pchannel string) ([]string, error) {
	vs, err := r.List(ctx, VChannelFilter{PChannel: pchannel})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range vs {
		if v.State != VChannelActive {
			out = append(out, v.Name)
		}
	}
	return out, nil
}

// update runs a registry decision on the record of name.
func (r *Registry) update(ctx context.Context, name string, decide func(cur *VChannel, now time.Time) (VChannel, error)) (VChannel, error) {
	if err := segmentlog.ValidateName("vchannel", name); err != nil {
		return VChannel{}, err
	}
	v, etag, err := updateRecord(ctx, r.rec, r.vcodec, name, decide)
	if err != nil {
		return VChannel{}, err
	}
	r.mu.Lock()
	r.vchans.set(name, v, etag)
	r.mu.Unlock()
	return v, nil
}

func wrapOp(op, name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("coordinator: %s vchannel %s: %w", op, name, err)
}
