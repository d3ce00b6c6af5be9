package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cairnlog/cairn/segmentlog"
)

// ErrSessionLost: the node's session record belongs to another incarnation
// (a second process registered the same node ID). The node stops.
var ErrSessionLost = errors.New("coordinator: node session taken over")

// Session is the session record of one long-running node (a `cairn serve`
// instance), stored as JSON at {prefix}/meta/nodes/{node}.json. Only the
// node writes it; balancers read it to judge liveness. A Session is a plain
// value.
type Session struct {
	Node string `json:"node"`
	// Address is where producers send appends for the pchannels this node
	// holds (an http URL).
	Address string `json:"address"`
	// Incarnation is fresh (a UUIDv7) at every registration, so that two
	// processes with one node ID notice each other.
	Incarnation string    `json:"incarnation"`
	Started     time.Time `json:"started"`
	// Heartbeat is the node's clock reading at its last heartbeat.
	Heartbeat time.Time `json:"heartbeat"`
	// Stopped is set by a graceful shutdown, after the node released its
	// pchannels: the tombstone of the session.
	Stopped bool   `json:"stopped"`
	Version uint64 `json:"version"`
}

// Alive reports whether the session is alive at now: not stopped, and its
// last heartbeat at most ttl old. It judges liveness only: a pchannel whose
// lease is live never moves because its holder's session expired.
func (s Session) Alive(now time.Time, ttl time.Duration) bool {
	return !s.Stopped && !now.After(s.Heartbeat.Add(ttl))
}

const sessionFormat = 1

type sessionRecord struct {
	Format int `json:"format"`
	Session
}

func encodeSession(s Session) ([]byte, error) {
	s.Started, s.Heartbeat = utc(s.Started), utc(s.Heartbeat)
	return json.Marshal(sessionRecord{Format: sessionFormat, Session: s})
}

func decodeSession(name string, b []byte) (Session, error) {
	if err := checkFormat("node", name, b, sessionFormat); err != nil {
		return Session{}, err
	}
	var rec sessionRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return Session{}, fmt.Errorf("%w: node record of %s: %w", ErrCorrupt, name, err)
	}
	if rec.Node != name {
		return Session{}, fmt.Errorf("%w: node record of %s names node %q", ErrCorrupt, name, rec.Node)
	}
	if err := checkTimes("node", name, rec.Started, rec.Heartbeat); err != nil {
		return Session{}, err
	}
	return rec.Session, nil
}

func sessionCodec(l segmentlog.Layout) codec[Session] {
	return codec[Session]{
		kind:    "node",
		key:     func(n string) string { return nodeKey(l, n) },
		prefix:  nodePrefix(l),
		encode:  encodeSession,
		decode:  decodeSession,
		version: func(s Session) uint64 { return s.Version },
	}
}

// decideRegister starts a new incarnation of node, replacing whatever
// session the record held (a restarted node, or a stale record).
func decideRegister(cur *Session, node, address, incarnation string, now time.Time) Session {
	next := Session{Node: node, Address: address, Incarnation: incarnation, Started: now, Heartbeat: now, Version: 1}
	if cur != nil {
		if cur.Incarnation == incarnation && !cur.Stopped {
			return *cur // a retried registration
		}
		next.Version = cur.Version + 1
	}
	return next
}

// decideHeartbeat refreshes the heartbeat of incarnation. It fails with
// ErrSessionLost once the record belongs to another incarnation or was
// stopped. The heartbeat never moves backwards.
func decideHeartbeat(cur *Session, node, incarnation string, now time.Time) (Session, error) {
	if cur == nil || incarnation == "" || cur.Incarnation != incarnation || cur.Stopped {
		return Session{}, fmt.Errorf("%w: %s is no longer incarnation %s", ErrSessionLost, node, incarnation)
	}
	next := *cur
	next.Heartbeat = later(cur.Heartbeat, now)
	next.Version++
	return next, nil
}

// decideStop marks the session of incarnation stopped. Stopping twice
// changes nothing; a record of another incarnation is left alone.
func decideStop(cur *Session, node, incarnation string, now time.Time) (Session, error) {
	if cur == nil || cur.Incarnation != incarnation {
		return Session{}, fmt.Errorf("%w: %s is no longer incarnation %s", ErrSessionLost, node, incarnation)
	}
	if cur.Stopped {
		return *cur, nil
	}
	next := *cur
	next.Stopped = true
	next.Heartbeat = later(cur.Heartbeat, now)
	next.Version++
	return next, nil
}
