package coordinator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/cairnlog/cairn/segmentlog"
)

// Sentinel errors of broadcasts. Callers test with errors.Is.
var (
	// ErrNoBroadcast: there is no broadcast task with that ID (never
	// submitted, or collected after its tombstone retention).
	ErrNoBroadcast = errors.New("coordinator: no such broadcast")
	// ErrBroadcastConflict: a broadcast ID was submitted again with other
	// content. Nothing was written.
	ErrBroadcastConflict = errors.New("coordinator: broadcast ID taken by another broadcast")
	// ErrInvalidBroadcast: a broadcast request breaks a rule
	// (BroadcastRequest.Validate). Nothing was written.
	ErrInvalidBroadcast = errors.New("coordinator: invalid broadcast")
	// ErrBroadcastBusy: another run (another coordinator instance) holds
	// the task's resource locks; the task is in progress there.
	ErrBroadcastBusy = errors.New("coordinator: broadcast in progress elsewhere")
	// ErrVChannelNotReady: a broadcast target whose create message has not
	// landed yet (Registry.Create was interrupted); finish the create first.
	ErrVChannelNotReady = errors.New("coordinator: vchannel create not finished")
	// ErrBroadcastFailed: the task failed for good (see Broadcast.Error).
	ErrBroadcastFailed = errors.New("coordinator: broadcast failed")
)

// AckMode is when a broadcast's copy on a vchannel counts as acknowledged.
type AckMode string

const (
	// AckFast: the copy is in the WAL (appended and acknowledged).
	AckFast AckMode = "fast"
	// AckSync: the pchannel's flush checkpoint has passed the copy, so it
	// is in segments. With no flusher running, this waits.
	AckSync AckMode = "sync"
)

// BroadcastState is the lifecycle state of a broadcast task.
type BroadcastState string

const (
	// BroadcastPending: persisted; copies are being appended or synced.
	BroadcastPending BroadcastState = "pending"
	// BroadcastDone: every target acknowledged. The record is the task's
	// tombstone: it answers a repeated submission with the acks until it
	// is collected (Broadcaster.Collect).
	BroadcastDone BroadcastState = "done"
	// BroadcastFailed: a target's outcome can no longer be known (a
	// vchannel unreachable for longer than segmentlog.BroadcastRetention
	// allows retrying) or the message is refused for good. Kept, then
	// collected, like a done task.
	BroadcastFailed BroadcastState = "failed"
)

// BroadcastTarget is one vchannel of a broadcast and how far its copy got.
type BroadcastTarget struct {
	VChannel string `json:"vchannel"`
	PChannel string `json:"pchannel"`
	// FirstAttempt is when the copy was first sent. Every later attempt
	// must come within segmentlog.BroadcastRetention of it, while the
	// writers still remember the copy.
	FirstAttempt time.Time `json:"first_attempt,omitzero"`
	// Appended is where the copy landed; nil until acknowledged.
	Appended *WALMark `json:"appended,omitempty"`
	// Synced: the pchannel's flush checkpoint passed the copy (AckSync).
	Synced bool `json:"synced,omitempty"`
	// Skipped says why no copy was appended: "dropped" when the vchannel
	// was dropped before its copy was sent.
	Skipped string `json:"skipped,omitempty"`
}

// unsent reports whether the target still needs its copy appended.
func (t BroadcastTarget) unsent() bool { return t.Appended == nil && t.Skipped == "" }

// acked reports whether the target counts as acknowledged under mode.
func (t BroadcastTarget) acked(mode AckMode) bool {
	return t.Skipped != "" || t.Appended != nil && (mode == AckFast || t.Synced)
}

// Broadcast is the record of one broadcast task, stored as JSON at
// {prefix}/meta/broadcast/{id}.json and changed only by CAS. It is a plain
// value; treat its slices and maps as read-only.
type Broadcast struct {
	ID         string            `json:"id"`
	Payload    []byte            `json:"payload,omitempty"`
	Properties map[string]string `json:"properties,omitempty"`
	Ack        AckMode           `json:"ack"`
	// Resources are the resource locks the task holds while it appends:
	// "vchannel.{name}" for every target plus the request's own.
	Resources []string          `json:"resources"`
	Targets   []BroadcastTarget `json:"targets"` // in vchannel order
	State     BroadcastState    `json:"state"`
	Error     string            `json:"error,omitempty"` // why it failed
	CreatedAt time.Time         `json:"created_at"`
	// FinishedAt is when it became done or failed.
	FinishedAt time.Time `json:"finished_at,omitzero"`
	Version    uint64    `json:"version"`
}

// Target returns the target of vchannel v.
func (b Broadcast) Target(v string) (BroadcastTarget, bool) {
	i := slices.IndexFunc(b.Targets, func(t BroadcastTarget) bool { return t.VChannel == v })
	if i < 0 {
		return BroadcastTarget{}, false
	}
	return b.Targets[i], true
}

// started reports whether a copy of the task may have been sent.
func (b Broadcast) started() bool {
	return slices.ContainsFunc(b.Targets, func(t BroadcastTarget) bool { return !t.FirstAttempt.IsZero() })
}

// unsent reports whether some target still needs its copy appended.
func (b Broadcast) unsent() bool { return slices.ContainsFunc(b.Targets, BroadcastTarget.unsent) }

// finished reports whether the task is done or failed.
func (b Broadcast) finished() bool { return b.State == BroadcastDone || b.State == BroadcastFailed }

// BroadcastRequest asks for one message on several vchannels.
type BroadcastRequest struct {
	// ID identifies the broadcast: submitting the same request again (by
	// the same or another coordinator) returns the same task, and its
	// copies land once per vchannel. A valid name (segmentlog.ValidateName).
	ID         string
	VChannels  []string // at least one, distinct, each active
	Payload    []byte
	Properties map[string]string
	Ack        AckMode // default AckFast
	// Resources are more resource locks to hold while appending, for
	// broadcasts that must be ordered by something other than their
	// vchannels (valid names).
	Resources []string
}

// MaxBroadcastTargets bounds the vchannels of one broadcast.
const MaxBroadcastTargets = 1024

// Validate checks a request and fills in its defaults (AckFast). A bad
// name fails with segmentlog.ErrInvalidName, oversized content with
// segmentlog.ErrTooLarge, anything else with ErrInvalidBroadcast; Submit
// calls it, and an API can call it first to answer before any request.
func (r *BroadcastRequest) Validate() error {
	if err := segmentlog.ValidateName("broadcast ID", r.ID); err != nil {
		return err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidBroadcast, fmt.Sprintf(format, args...))
	}
	if r.Ack == "" {
		r.Ack = AckFast
	}
	if r.Ack != AckFast && r.Ack != AckSync {
		return bad("ack %q: want %s or %s", r.Ack, AckFast, AckSync)
	}
	if len(r.VChannels) == 0 || len(r.VChannels) > MaxBroadcastTargets {
		return bad("a broadcast needs 1 to %d vchannels, got %d", MaxBroadcastTargets, len(r.VChannels))
	}
	seen := map[string]bool{}
	for _, v := range r.VChannels {
		if err := segmentlog.ValidateName("vchannel", v); err != nil {
			return err
		}
		if seen[v] {
			return bad("vchannel %q named twice", v)
		}
		seen[v] = true
	}
	for _, res := range r.Resources {
		if err := segmentlog.ValidateName("resource", res); err != nil {
			return err
		}
	}
	size := len(r.Payload)
	for k, v := range r.Properties {
		if k == segmentlog.BroadcastDeadlineProperty {
			return bad("property %s is set by the coordinator", k)
		}
		if k == "" || len(k) > segmentlog.MaxStringLen || len(v) > segmentlog.MaxStringLen || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return bad("property %q: keys must be 1..%d bytes and values at most %d, in UTF-8", k, segmentlog.MaxStringLen, segmentlog.MaxStringLen)
		}
		size += len(k) + len(v)
	}
	if size > MaxBroadcastBytes {
		return fmt.Errorf("%w: payload and properties of %d bytes; a broadcast copy carries at most %d",
			segmentlog.ErrTooLarge, size, MaxBroadcastBytes)
	}
	return nil
}

// MaxBroadcastBytes bounds a broadcast's payload and properties, well
// inside a writer's default batch limit (1 MiB), so that a copy is never
// refused for its size after the task was accepted.
const MaxBroadcastBytes = 512 << 10

// resources returns the lock names of a request, sorted and distinct.
func (r *BroadcastRequest) resources() []string {
	var out []string
	for _, v := range r.VChannels {
		out = append(out, "vchannel."+v)
	}
	out = append(out, r.Resources...)
	slices.Sort(out)
	return slices.Compact(out)
}

// decideSubmit creates the pending task of req, whose targets are bound to
// the pchannels in binding; an existing task with the same content is
// returned unchanged, one with other content is a conflict.
func decideSubmit(cur *Broadcast, req BroadcastRequest, binding map[string]string, now time.Time) (Broadcast, error) {
	vchans := slices.Sorted(slices.Values(req.VChannels))
	if cur != nil {
		same := cur.Ack == req.Ack && bytes.Equal(cur.Payload, req.Payload) &&
			maps.Equal(cur.Properties, req.Properties) && slices.Equal(cur.Resources, req.resources()) &&
			len(cur.Targets) == len(vchans)
		for i := 0; same && i < len(vchans); i++ {
			same = cur.Targets[i].VChannel == vchans[i]
		}
		if !same {
			return Broadcast{}, fmt.Errorf("%w: %s", ErrBroadcastConflict, req.ID)
		}
		return *cur, nil
	}
	b := Broadcast{ID: req.ID, Payload: req.Payload, Properties: req.Properties, Ack: req.Ack,
		Resources: req.resources(), State: BroadcastPending, CreatedAt: now, Version: 1}
	if len(b.Properties) == 0 {
		b.Properties = nil
	}
	for _, v := range vchans {
		b.Targets = append(b.Targets, BroadcastTarget{VChannel: v, PChannel: binding[v]})
	}
	return b, nil
}

// decideTargets applies change to every target of a pending task; change
// reports whether it changed the target. A finished task is left as it is.
func decideTargets(cur *Broadcast, id string, change func(t *BroadcastTarget) bool) (Broadcast, error) {
	if cur == nil {
		return Broadcast{}, fmt.Errorf("%w: %s", ErrNoBroadcast, id)
	}
	if cur.finished() {
		return *cur, nil
	}
	next := *cur
	next.Targets = slices.Clone(cur.Targets)
	changed := false
	for i := range next.Targets {
		changed = change(&next.Targets[i]) || changed
	}
	if !changed {
		return *cur, nil
	}
	next.Version++
	return next, nil
}

// decideFinish marks a pending task done if every target is acknowledged,
// or failed with reason if reason is not "".
func decideFinish(cur *Broadcast, id, reason string, now time.Time) (Broadcast, error) {
	if cur == nil {
		return Broadcast{}, fmt.Errorf("%w: %s", ErrNoBroadcast, id)
	}
	if cur.finished() {
		return *cur, nil
	}
	next := *cur
	switch {
	case reason != "":
		next.State, next.Error = BroadcastFailed, reason
	case slices.ContainsFunc(cur.Targets, func(t BroadcastTarget) bool { return !t.acked(cur.Ack) }):
		return Broadcast{}, fmt.Errorf("coordinator: broadcast %s: a target is not acknowledged yet", id)
	default:
		next.State = BroadcastDone
	}
	next.FinishedAt = now
	next.Version++
	return next, nil
}

const broadcastFormat = 1

type broadcastRecord struct {
	Format int `json:"format"`
	Broadcast
}

func broadcastPrefix(l segmentlog.Layout) string         { return metaKey(l, "meta", "broadcast") + "/" }
func broadcastKey(l segmentlog.Layout, id string) string { return broadcastPrefix(l) + id + ".json" }

func encodeBroadcast(b Broadcast) ([]byte, error) {
	b.CreatedAt = utc(b.CreatedAt)
	if !b.FinishedAt.IsZero() {
		b.FinishedAt = utc(b.FinishedAt)
	}
	b.Targets = slices.Clone(b.Targets)
	for i := range b.Targets {
		if !b.Targets[i].FirstAttempt.IsZero() {
			b.Targets[i].FirstAttempt = utc(b.Targets[i].FirstAttempt)
		}
	}
	return json.Marshal(broadcastRecord{Format: broadcastFormat, Broadcast: b})
}

func decodeBroadcast(id string, b []byte) (Broadcast, error) {
	if err := checkFormat("broadcast", id, b, broadcastFormat); err != nil {
		return Broadcast{}, err
	}
	var rec broadcastRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return Broadcast{}, fmt.Errorf("%w: broadcast record of %s: %w", ErrCorrupt, id, err)
	}
	t := rec.Broadcast
	switch {
	case t.ID != id:
		return Broadcast{}, fmt.Errorf("%w: broadcast record of %s names broadcast %q", ErrCorrupt, id, t.ID)
	case t.State != BroadcastPending && t.State != BroadcastDone && t.State != BroadcastFailed:
		return Broadcast{}, fmt.Errorf("%w: broadcast record of %s: unknown state %q", ErrCorrupt, id, t.State)
	case t.Ack != AckFast && t.Ack != AckSync:
		return Broadcast{}, fmt.Errorf("%w: broadcast record of %s: unknown ack mode %q", ErrCorrupt, id, t.Ack)
	case len(t.Targets) == 0:
		return Broadcast{}, fmt.Errorf("%w: broadcast record of %s has no targets", ErrCorrupt, id)
	}
	for _, tg := range t.Targets {
		if segmentlog.ValidateName("vchannel", tg.VChannel) != nil || segmentlog.ValidateName("pchannel", tg.PChannel) != nil {
			return Broadcast{}, fmt.Errorf("%w: broadcast record of %s: bad target %+v", ErrCorrupt, id, tg)
		}
		if err := checkTimes("broadcast", id, tg.FirstAttempt); err != nil {
			return Broadcast{}, err
		}
	}
	if err := checkTimes("broadcast", id, t.CreatedAt, t.FinishedAt); err != nil {
		return Broadcast{}, err
	}
	return t, nil
}

func broadcastCodec(l segmentlog.Layout) codec[Broadcast] {
	return codec[Broadcast]{
		kind:    "broadcast",
		key:     func(id string) string { return broadcastKey(l, id) },
		prefix:  broadcastPrefix(l),
		encode:  encodeBroadcast,
		decode:  decodeBroadcast,
		version: func(b Broadcast) uint64 { return b.Version },
	}
}
