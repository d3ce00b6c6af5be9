package client

import (
	"strconv"

	"github.com/cairnlog/cairn/functions/api/wire"
)

// MessageID is where a message lies in its pchannel: the offset of its
// batch and its index in the batch. IDs are totally ordered within a
// pchannel.
type MessageID struct {
	Offset uint64
	Index  uint32
}

// String is "OFFSET.INDEX".
func (id MessageID) String() string {
	return strconv.FormatUint(id.Offset, 10) + "." + strconv.FormatUint(uint64(id.Index), 10)
}

// Less reports whether id comes before o in the pchannel.
func (id MessageID) Less(o MessageID) bool {
	return id.Offset < o.Offset || (id.Offset == o.Offset && id.Index < o.Index)
}

// Positions are where a read starts, as the API spells them: "earliest",
// "latest", "id:OFFSET.INDEX" (that message and after), "after:id:OFFSET.INDEX"
// (the messages after that one) or "timetick:T" (the first message whose
// timetick is at least T).
const (
	Earliest = "earliest" // the oldest message still kept
	Latest   = "latest"   // only messages appended from now on
)

// AtID is the position of the message id and after.
func AtID(id MessageID) string { return "id:" + id.String() }

// After is the position right after the message id, where a reader that
// handled id resumes.
func After(id MessageID) string { return AtID(MessageID{Offset: id.Offset, Index: id.Index + 1}) }

// AfterID is the exclusive position right after the message id
// ("after:id:OFFSET.INDEX"), resolved by the server: unlike After it is
// valid for every ID, also the last message of a full batch.
func AfterID(id MessageID) string { return "after:" + AtID(id) }

// AtRestored is the position of the message id of a restored vchannel's
// history and after (reads by vchannel only): the history comes first, then
// the vchannel's own messages.
func AtRestored(id MessageID) string { return "restored:" + id.String() }

// AtTimeTick is the position of the first message whose timetick is at
// least t.
func AtTimeTick(t uint64) string { return "timetick:" + strconv.FormatUint(t, 10) }

// Key is an idempotency key. A message appended with a key that was acked
// before (within the server's dedup window, 10 minutes by default, across
// failovers) is not written again; its ack is the first copy's, marked
// Duplicate. A Producer assigns keys itself: Producer is its name, Epoch
// changes at every start, Seq counts its messages.
type Key = wire.Key

// Message is a message to append.
type Message struct {
	VChannel string // required (a Producer may supply a default)
	// Type is "data" (the default when empty), "insert" or "delete".
	Type       string
	Payload    []byte
	Properties map[string]string // keys starting with "cairn." are reserved: the server refuses them
	// Key is the message's idempotency key, for Client.Append; a Producer
	// sets keys itself and refuses messages that carry one.
	Key *Key
}

// Ack is where an appended message landed.
type Ack struct {
	ID       MessageID
	TimeTick uint64 // its timetick: strictly increasing within the pchannel
	Term     uint64 // the lease term that wrote it
	// Duplicate: the message's key was acked before; ID and TimeTick are
	// the first copy's, and nothing was written again.
	Duplicate bool
}

// Delivery is a message read from a pchannel.
type Delivery struct {
	ID         MessageID
	Term       uint64
	TimeTick   uint64
	Type       string // data, insert, delete, broadcast, or a control type if asked for
	VChannel   string
	Payload    []byte
	Properties map[string]string
	Key        *Key // nil if it was appended without one
	// BroadcastID: the broadcast a message of type broadcast is a copy of.
	BroadcastID string
	// Restored: the message is part of a restored vchannel's history (read
	// by vchannel): ID and Term are those of the snapshot's source
	// pchannel, and its position is AtRestored(ID).
	Restored bool
}

// Position is the position of d itself: AtID, or AtRestored for a message
// of a restored history.
func (d Delivery) Position() string {
	if d.Restored {
		return AtRestored(d.ID)
	}
	return AtID(d.ID)
}

// after is the position right after d.
func (d Delivery) after() string {
	next := MessageID{Offset: d.ID.Offset, Index: d.ID.Index + 1}
	if d.Restored {
		return AtRestored(next)
	}
	return AtID(next)
}

// Lease is the lease record of a pchannel: who writes it, in which term.
// Live says it is neither released nor expired, by the server's clock.
type Lease = wire.LeaseOut

// PChannelStatus is one row of the pchannel status table.
type PChannelStatus struct {
	Lease
	// Tail is the next offset: the writer's ack frontier if the answering
	// server writes the pchannel (TailSource "writer"), else the first
	// empty slot probed from the store ("store"), as Tail answers.
	Tail       uint64 `json:"tail"`
	TailSource string `json:"tail_source"`
	// Checkpoint: the offset below which the pchannel is flushed to
	// segments.
	Checkpoint uint64 `json:"checkpoint"`
	// Retention is the pchannel's retention policy, its earliest readable
	// position and the bytes its segment files hold.
	Retention Retention `json:"retention"`
}

// Tail is the next offset of a pchannel.
// Source is "writer", the ack frontier of the writer in the answering
// server, or "store", the first empty slot found in the store, which may
// sit below a remote writer's frontier while its last PUTs land.
type Tail = wire.TailResponse

// SyncResult is a timetick below which nothing more will be written to a
// pchannel: every message appended later gets a larger timetick, and every
// message with a smaller one is acknowledged.
type SyncResult = wire.SyncResponse
