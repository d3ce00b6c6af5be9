package segmentlog

import (
	"fmt"
	"slices"
	"strings"
)

// BatchKind says what a batch object is for. The byte values are part of
// the v1 wire format (see the package documentation) and never change.
type BatchKind uint8

const (
	// KindData carries one or more messages (data and/or control messages).
	KindData BatchKind = 1
	// KindFence is the first slot of a new term. It carries no messages.
	KindFence BatchKind = 2
	// KindFiller claims one slot of the fence window after a fence. It
	// carries no messages.
	KindFiller BatchKind = 3
	// KindTombstone replaces garbage that GC shrank in a fence window. It
	// carries no messages.
	KindTombstone BatchKind = 4
)

// String returns "data", "fence", "filler" or "tombstone", or
// "BatchKind(N)" for an unknown value.
func (k BatchKind) String() string {
	switch k {
	case KindData:
		return "data"
	case KindFence:
		return "fence"
	case KindFiller:
		return "filler"
	case KindTombstone:
		return "tombstone"
	}
	return fmt.Sprintf("BatchKind(%d)", uint8(k))
}

func (k BatchKind) valid() bool { return k >= KindData && k <= KindTombstone }

// MessageType says what a message means. Types 1-15 are data messages,
// delivered to users; types 16 and up are control messages. The byte values
// are part of the v1 wire format and never change.
type MessageType uint8

const (
	TypeData   MessageType = 1 // opaque user data
	TypeInsert MessageType = 2 // rows inserted into a collection shard
	TypeDelete MessageType = 3 // rows deleted from a collection shard

	TypeTimeTick        MessageType = 16 // a timetick with no data; VChannel may be empty
	TypeTxnBegin        MessageType = 17 // opens transaction TxnID
	TypeTxnCommit       MessageType = 18 // commits transaction TxnID
	TypeTxnRollback     MessageType = 19 // rolls transaction TxnID back
	TypeBroadcast       MessageType = 20 // one vchannel's copy of a broadcast (BroadcastID set)
	TypeFlush           MessageType = 21 // asks the flusher to seal the vchannel's data so far
	TypeCreateVChannel  MessageType = 22 // the vchannel starts here
	TypeDropVChannel    MessageType = 23 // the vchannel ends here
	firstControlMessage MessageType = TypeTimeTick
	lastControlMessage  MessageType = TypeDropVChannel
)

var messageTypeNames = [...]string{
	TypeData:           "data",
	TypeInsert:         "insert",
	TypeDelete:         "delete",
	TypeTimeTick:       "timetick",
	TypeTxnBegin:       "txn_begin",
	TypeTxnCommit:      "txn_commit",
	TypeTxnRollback:    "txn_rollback",
	TypeBroadcast:      "broadcast",
	TypeFlush:          "flush",
	TypeCreateVChannel: "create_vchannel",
	TypeDropVChannel:   "drop_vchannel",
}

// String returns the name ParseMessageType accepts ("data", "insert",
// "txn_commit", ...), or "MessageType(N)" for an unknown value.
func (t MessageType) String() string {
	if int(t) < len(messageTypeNames) && messageTypeNames[t] != "" {
		return messageTypeNames[t]
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// IsData reports whether t is a data message type (TypeData, TypeInsert or
// TypeDelete), as opposed to a control message.
func (t MessageType) IsData() bool { return t >= TypeData && t <= TypeDelete }

// ReadByDefault reports whether a reader that names no types gets
// messages of type t: the data types and broadcast copies, the messages a
// consumer of a vchannel acts on (ScannerConfig.Types).
func (t MessageType) ReadByDefault() bool { return t.IsData() || t == TypeBroadcast }

// Wanted reports whether a reader asking for types reads messages of type
// t: those of ReadByDefault when types is empty. It is the Scanner's type
// filter (ScannerConfig.Types), for readers of other sources (a restored
// history) to apply the same rule.
func (t MessageType) Wanted(types []MessageType) bool {
	if len(types) == 0 {
		return t.ReadByDefault()
	}
	return slices.Contains(types, t)
}

func (t MessageType) valid() bool {
	return t.IsData() || (t >= firstControlMessage && t <= lastControlMessage)
}

// isTxnControl reports whether t opens or closes a transaction, so that a
// message of type t must name one.
func (t MessageType) isTxnControl() bool { return t >= TypeTxnBegin && t <= TypeTxnRollback }

// ParseMessageType parses a name as printed by MessageType.String, ignoring
// ASCII case ("insert", "TXN_COMMIT"). It is meant for HTTP and CLI input.
func ParseMessageType(s string) (MessageType, error) {
	for t, name := range messageTypeNames {
		if name != "" && strings.EqualFold(s, name) {
			return MessageType(t), nil
		}
	}
	var names []string
	for _, name := range messageTypeNames {
		if name != "" {
			names = append(names, name)
		}
	}
	return 0, fmt.Errorf("segmentlog: unknown message type %q (want one of %s)", s, strings.Join(names, ", "))
}

// IdemKey is an idempotency key: a producer, the producer's epoch (a new one
// at every producer restart) and a sequence number within the epoch. The
// zero value (Producer == "") means no key; Epoch and Seq must then be 0.
type IdemKey struct {
	Producer string
	Epoch    uint64
	Seq      uint64
}

// IsZero reports whether k is "no key".
func (k IdemKey) IsZero() bool { return k.Producer == "" }

// Message is one entry of a data batch. A Message is a plain value: it is
// safe for concurrent reads, and needs outside synchronization for writes.
//
// Decoding normalizes empty values: an empty Properties map and an empty
// Payload both decode as nil, so a nil and an empty value encode to the same
// bytes.
type Message struct {
	Type     MessageType
	VChannel string // required, except for TypeTimeTick
	TimeTick uint64 // > 0; strictly increasing within a batch
	TxnID    uint64 // 0 = not in a transaction; required by the TypeTxn* types
	Key      IdemKey
	// Properties are encoded in sorted key order, so the bytes do not depend
	// on map iteration order. Keys are non-empty.
	Properties  map[string]string
	Payload     []byte
	BroadcastID string // "" = none; set on broadcast messages
}

// Batch is the content of one WAL object: the slot at Offset of a pchannel,
// written by the holder of lease Term. Only KindData batches carry
// messages, and they carry at least one. A Batch is a plain value: it is
// safe for concurrent reads, and needs outside synchronization for writes.
type Batch struct {
	Kind   BatchKind
	Term   uint64
	Offset uint64
	// Nonce is the writer's lease nonce (a UUID), so a checker can verify
	// that each term has exactly one nonce.
	Nonce    [16]byte
	Messages []Message // only for KindData
}

// FirstTimeTick returns the timetick of the first message, or 0 if the
// batch has no messages.
func (b *Batch) FirstTimeTick() uint64 {
	if len(b.Messages) == 0 {
		return 0
	}
	return b.Messages[0].TimeTick
}

// LastTimeTick returns the timetick of the last message, or 0 if the batch
// has no messages. Timeticks strictly increase within a batch, so it is the
// largest.
func (b *Batch) LastTimeTick() uint64 {
	if len(b.Messages) == 0 {
		return 0
	}
	return b.Messages[len(b.Messages)-1].TimeTick
}
