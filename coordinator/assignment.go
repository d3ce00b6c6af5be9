package coordinator

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/cairnlog/cairn/segmentlog"
)

// AssignmentState is where a pchannel stands in its hand-over between
// nodes (MEP 7 watch/release states; Milvus streaming coord).
type AssignmentState string

const (
	// PChannelUnassigned: the remaining pool; no node was alive to take it.
	PChannelUnassigned AssignmentState = "unassigned"
	// PChannelAssigning: Node should take the lease (with TakeOver, even
	// from a live holder). The assignment is confirmed only by the lease:
	// when Node holds it, a balancer moves the record to assigned.
	PChannelAssigning AssignmentState = "assigning"
	// PChannelAssigned: Node holds the lease.
	PChannelAssigned AssignmentState = "assigned"
	// PChannelUnassigning: From must release the lease (it closes its
	// writer); then Node is assigned.
	PChannelUnassigning AssignmentState = "unassigning"
)

func (s AssignmentState) valid() bool {
	switch s {
	case PChannelUnassigned, PChannelAssigning, PChannelAssigned, PChannelUnassigning:
		return true
	}
	return false
}

// Assignment is the balancer's record of one pchannel, stored as JSON at
// {prefix}/meta/assignments/{pchannel}.json and changed only by CAS, only
// by balancers. It never bumps a lease term: only the assigned node's
// acquire does. The assignment records are also the pchannel set. An
// Assignment is a plain value.
type Assignment struct {
	PChannel string          `json:"pchannel"`
	State    AssignmentState `json:"state"`
	// Node is the node that should hold the pchannel (assigning, assigned)
	// or take it once From has let go (unassigning). Empty when unassigned.
	Node string `json:"node,omitempty"`
	// From is, while unassigning, the node that must release the lease;
	// while assigning with TakeOver, the node it is taken from.
	From string `json:"from,omitempty"`
	// TakeOver, while assigning: Node takes the lease over even from a
	// live holder (a forced takeover; the new term fences the old writer,
	// docs/protocol.md "Acquire" 4) instead of waiting for it to be free.
	// Balancing moves set it; a node acts on it once per Version.
	TakeOver bool `json:"takeover,omitempty"`
	// Since is when the record entered its state (deciding clock).
	Since time.Time `json:"since"`
	// Reason says why it entered its state, for operators.
	Reason string `json:"reason,omitempty"`
	// Avoid is the last node found stuck with this pchannel (alive, but it
	// did not take the free lease); until AvoidUntil no balancer moves
	// pchannels to it, and a reassignment prefers other nodes.
	Avoid      string    `json:"avoid,omitempty"`
	AvoidUntil time.Time `json:"avoid_until,omitzero"`
	Version    uint64    `json:"version"`
}

// targets reports whether the assignment asks node to hold the pchannel.
func (a Assignment) targets(node string) bool {
	return a.Node == node && (a.State == PChannelAssigning || a.State == PChannelAssigned)
}

const assignmentFormat = 1

type assignmentRecord struct {
	Format int `json:"format"`
	Assignment
}

func encodeAssignment(a Assignment) ([]byte, error) {
	a.Since = utc(a.Since)
	if !a.AvoidUntil.IsZero() {
		a.AvoidUntil = utc(a.AvoidUntil)
	}
	return json.Marshal(assignmentRecord{Format: assignmentFormat, Assignment: a})
}

func decodeAssignment(name string, b []byte) (Assignment, error) {
	if err := checkFormat("assignment", name, b, assignmentFormat); err != nil {
		return Assignment{}, err
	}
	var rec assignmentRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return Assignment{}, fmt.Errorf("%w: assignment record of %s: %w", ErrCorrupt, name, err)
	}
	a := rec.Assignment
	switch {
	case a.PChannel != name:
		return Assignment{}, fmt.Errorf("%w: assignment record of %s names pchannel %q", ErrCorrupt, name, a.PChannel)
	case !a.State.valid():
		return Assignment{}, fmt.Errorf("%w: assignment record of %s: unknown state %q", ErrCorrupt, name, a.State)
	case a.State != PChannelUnassigned && a.Node == "":
		return Assignment{}, fmt.Errorf("%w: assignment record of %s: state %s without a node", ErrCorrupt, name, a.State)
	case a.State == PChannelUnassigning && a.From == "":
		return Assignment{}, fmt.Errorf("%w: assignment record of %s: unassigning without a from node", ErrCorrupt, name)
	}
	if err := checkTimes("assignment", name, a.Since, a.AvoidUntil); err != nil {
		return Assignment{}, err
	}
	return a, nil
}

func assignmentCodec(l segmentlog.Layout) codec[Assignment] {
	return codec[Assignment]{
		kind:    "pchannel",
		key:     func(p string) string { return assignmentKey(l, p) },
		prefix:  assignmentPrefix(l),
		encode:  encodeAssignment,
		decode:  decodeAssignment,
		version: func(a Assignment) uint64 { return a.Version },
	}
}

// newAssignment is the first record of a pchannel: in the remaining pool.
func newAssignment(p string, now time.Time) Assignment {
	return Assignment{PChannel: p, State: PChannelUnassigned, Since: now, Reason: "new pchannel", Version: 1}
}
