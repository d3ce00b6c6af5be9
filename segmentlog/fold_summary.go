package segmentlog

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// foldMetaKey names the user metadata of a WAL object that summarizes what
// a writer folding the slot needs (docs/protocol.md, "Shared terms" rule 2):
// the batch's kind, nonce and last timetick and the IDs and ticks of its
// idempotency keys, so that a shared writer catching up with the slots
// other processes wrote can read them with a HEAD instead of a GET of the
// whole batch. The body stays the truth: a summary is written by the same
// PUT as the body, and a slot without one (or with one this code cannot
// read) is read whole.
//
// Format 1, space-separated: "1", the kind, the nonce in hex, the number of
// messages, the last timetick, then one run per group of consecutive keyed
// messages with one producer and epoch whose seqs, indexes and ticks each
// go up by one: "producer:epoch:seq:count:index:tick" with the producer in
// unpadded base64url.
const foldMetaKey = "fold"

// maxFoldMeta bounds a summary: S3 allows 2 KiB of user metadata in all.
const maxFoldMeta = 1536

// foldSummary is a parsed summary.
type foldSummary struct {
	kind     BatchKind
	nonce    [16]byte
	messages int
	lastTick uint64
	runs     []keyRun
}

// keyRun is count keyed messages: key.Seq+j at index+j with tick+j.
type keyRun struct {
	key   IdemKey
	count uint32
	index uint32
	tick  uint64
}

// summarize returns b's summary, or "" when it would not fit.
func summarize(b *Batch) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "1 %d %s %d %d", b.Kind, hex.EncodeToString(b.Nonce[:]), len(b.Messages), b.LastTimeTick())
	for i := 0; i < len(b.Messages); {
		m := &b.Messages[i]
		if m.Key.IsZero() {
			i++
			continue
		}
		n := 1
		for i+n < len(b.Messages) {
			x := &b.Messages[i+n]
			if x.Key.Producer != m.Key.Producer || x.Key.Epoch != m.Key.Epoch ||
				x.Key.Seq != m.Key.Seq+uint64(n) || x.TimeTick != m.TimeTick+uint64(n) {
				break
			}
			n++
		}
		fmt.Fprintf(&sb, " %s:%d:%d:%d:%d:%d", base64.RawURLEncoding.EncodeToString([]byte(m.Key.Producer)),
			m.Key.Epoch, m.Key.Seq, n, i, m.TimeTick)
		if sb.Len() > maxFoldMeta {
			return ""
		}
		i += n
	}
	return sb.String()
}

// parseSummary parses a summary; an error means the slot must be read whole.
func parseSummary(s string) (foldSummary, error) {
	f := strings.Fields(s)
	bad := func(what string) (foldSummary, error) {
		return foldSummary{}, fmt.Errorf("%w: fold summary: %s", ErrCorrupt, what)
	}
	if len(f) < 5 || f[0] != "1" {
		return bad("not format 1")
	}
	var sum foldSummary
	kind, err := strconv.ParseUint(f[1], 10, 8)
	if err != nil || !BatchKind(kind).valid() {
		return bad("kind")
	}
	sum.kind = BatchKind(kind)
	nonce, err := hex.DecodeString(f[2])
	if err != nil || len(nonce) != 16 {
		return bad("nonce")
	}
	copy(sum.nonce[:], nonce)
	if sum.messages, err = strconv.Atoi(f[3]); err != nil || sum.messages < 0 || sum.messages > MaxMessages {
		return bad("message count")
	}
	if sum.lastTick, err = strconv.ParseUint(f[4], 10, 64); err != nil {
		return bad("last tick")
	}
	for _, r := range f[5:] {
		p := strings.Split(r, ":")
		if len(p) != 6 {
			return bad("run")
		}
		prod, err := base64.RawURLEncoding.DecodeString(p[0])
		if err != nil || len(prod) == 0 {
			return bad("producer")
		}
		var n [5]uint64
		for i := range n {
			if n[i], err = strconv.ParseUint(p[i+1], 10, 64); err != nil {
				return bad("run field")
			}
		}
		if n[2] == 0 || n[2]+n[3] > uint64(sum.messages) {
			return bad("run bounds")
		}
		sum.runs = append(sum.runs, keyRun{key: IdemKey{Producer: string(prod), Epoch: n[0], Seq: n[1]}, count: uint32(n[2]), index: uint32(n[3]), tick: n[4]})
	}
	return sum, nil
}
