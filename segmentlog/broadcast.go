package segmentlog

import (
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"
)

// A broadcast puts one message on several vchannels; the coordinator
// appends one TypeBroadcast copy per vchannel through AppendControl, and
// may append a copy again after a crash or from a second coordinator
// instance. The writer makes that safe (docs/protocol.md, "Broadcast and
// coordinator" rule 1):
//
//   - it gives every copy the idempotency key broadcastKey(ID, vchannel),
//     kept in the dedup window for BroadcastRetention instead of the
//     window D, and carried by checkpoints and recovery like every key;
//   - it refuses a copy it has not seen yet once the copy's deadline
//     (BroadcastDeadlineProperty, set by the coordinator when it sends the
//     copy) has passed.
//
// So a copy lands at most once as long as every attempt at it is made
// within BroadcastRetention of the first (the coordinator gives up on a
// vchannel after that, see coordinator.Broadcaster), and an attempt that
// was delayed — a frozen coordinator thawing, a request stuck in a queue —
// cannot land after its sender lost the task's locks.

// BroadcastRetention is how long a writer remembers a broadcast copy it
// appended. It is a constant, not an option, because the writers and the
// flusher (which writes the window into checkpoints) must agree on it.
const BroadcastRetention = 24 * time.Hour

// BroadcastDeadlineProperty is the property of a TypeBroadcast message that
// holds the time, in Unix milliseconds, after which a writer that has not
// appended the copy yet refuses it with ErrDeadlinePassed.
const BroadcastDeadlineProperty = "cairn.broadcast.deadline"

// ErrDeadlinePassed: a broadcast copy arrived after its deadline and was not
// appended; nothing was written.
var ErrDeadlinePassed = errors.New("segmentlog: broadcast deadline passed")

const broadcastProducer = "@broadcast/"

// broadcastKey is the idempotency key of broadcast id's copy on vchannel.
func broadcastKey(id, vchannel string) IdemKey {
	return IdemKey{Producer: broadcastProducer + id + "/" + vchannel, Epoch: 1, Seq: 1}
}

func isBroadcastKey(k IdemKey) bool { return strings.HasPrefix(k.Producer, broadcastProducer) }

// prepareBroadcast checks a TypeBroadcast message and gives it its key.
func prepareBroadcast(m *Message) error {
	if err := ValidateName("broadcast ID", m.BroadcastID); err != nil {
		return err
	}
	if !m.Key.IsZero() {
		return errors.New("a broadcast message gets its idempotency key from its broadcast ID; leave Key empty")
	}
	if _, err := broadcastDeadline(m); err != nil {
		return err
	}
	m.Key = broadcastKey(m.BroadcastID, m.VChannel)
	return nil
}

// broadcastDeadline reads the deadline property of a broadcast message.
func broadcastDeadline(m *Message) (time.Time, error) {
	v, ok := m.Properties[BroadcastDeadlineProperty]
	if !ok {
		return time.Time{}, fmt.Errorf("a broadcast message needs the property %s", BroadcastDeadlineProperty)
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}, fmt.Errorf("property %s = %q: want Unix milliseconds", BroadcastDeadlineProperty, v)
	}
	return time.UnixMilli(ms), nil
}

// BroadcastCopyBytes is what the copy of broadcast id on vchannel counts
// against a writer's batch limit (WriterConfig.MaxBatchBytes) once its
// sender has added the deadline property and the writer its key: the size
// to check before a task is saved with a copy no writer would take.
func BroadcastCopyBytes(id, vchannel string, payload []byte, props map[string]string) int {
	m := Message{VChannel: vchannel, BroadcastID: id, Payload: payload, Key: broadcastKey(id, vchannel),
		Properties: maps.Clone(props)}
	if m.Properties == nil {
		m.Properties = map[string]string{}
	}
	// The longest deadline this side of the year 10000.
	m.Properties[BroadcastDeadlineProperty] = FormatBroadcastDeadline(time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC))
	return messageBytes(&m)
}

// FormatBroadcastDeadline is the value of BroadcastDeadlineProperty for t.
func FormatBroadcastDeadline(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
