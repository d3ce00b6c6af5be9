package segmentlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
)

// The dedup state object: the idempotency window as of a checkpoint's C,
// written by the flush that wrote the checkpoint and named by its
// DedupState field. Only a takeover's recovery reads it; readers and the
// flusher's polls never do, so the checkpoint record stays small whatever
// the message rate (docs/protocol.md, "Records"). Immutable once written.
//
// Wire format (never change; a new layout takes a new version byte):
//
//	magic    "CDDS"
//	version  1 byte = DedupStateFormat
//	nprod    uvarint: producer epochs
//	nprod ×  uvarint len, producer bytes, uvarint epoch
//	nruns    uvarint
//	nruns ×  uvarint producer index, uvarint seq0, uvarint n (≥ 1),
//	         zigzag varint offset − previous run's offset,
//	         uvarint index0, zigzag varint tick0 − previous run's tick0
//	crc      4 bytes little-endian CRC32C of everything before
//
// Runs are in the window's commit order, plain keys first, then broadcast
// keys: folding them in order into an empty window rebuilds it exactly.
// A run is about 10 bytes, whatever its number of keys.

// DedupStateFormat is the version byte of the dedup state object.
const DedupStateFormat = 1

var dedupStateMagic = [4]byte{'C', 'D', 'D', 'S'}

// maxDedupStateRun bounds a decoded run's keys: a batch never holds more
// messages (each takes bytes of MaxBatchBytes), and restoring a forged run
// stays cheap.
const maxDedupStateRun = 1 << 24

// DedupState is the key of the dedup state object written by flush flushID
// for checkpoint c of pchannel p.
func (l Layout) DedupState(p string, c uint64, flushID string) string {
	return l.join("meta", "dedup", p, fmt.Sprintf("%0*d-%s.bin", OffsetDigits, c, flushID))
}

// DedupStatePrefix is the prefix of every dedup state object of p.
func (l Layout) DedupStatePrefix(p string) string { return l.join("meta", "dedup", p) + "/" }

// DedupStatesPrefix is the prefix of every dedup state object of every
// pchannel (GC lists it for orphans).
func (l Layout) DedupStatesPrefix() string { return l.join("meta", "dedup") + "/" }

type stateRun struct {
	key producerEpoch
	run dedupRun
}

// encodeDedupState writes the window's runs.
func encodeDedupState(d *dedupWindow) []byte {
	var runs []stateRun
	d.eachRun(func(k producerEpoch, r dedupRun) { runs = append(runs, stateRun{k, r}) })
	index := make(map[producerEpoch]uint64)
	var prods []producerEpoch
	for _, r := range runs {
		if _, ok := index[r.key]; !ok {
			index[r.key] = uint64(len(prods))
			prods = append(prods, r.key)
		}
	}
	out := append([]byte(nil), dedupStateMagic[:]...)
	out = append(out, DedupStateFormat)
	out = binary.AppendUvarint(out, uint64(len(prods)))
	for _, p := range prods {
		out = binary.AppendUvarint(out, uint64(len(p.producer)))
		out = append(out, p.producer...)
		out = binary.AppendUvarint(out, p.epoch)
	}
	out = binary.AppendUvarint(out, uint64(len(runs)))
	var off, tick uint64
	for _, r := range runs {
		out = binary.AppendUvarint(out, index[r.key])
		out = binary.AppendUvarint(out, r.run.seq0)
		out = binary.AppendUvarint(out, uint64(r.run.n))
		out = binary.AppendVarint(out, int64(r.run.id0.Offset-off))
		out = binary.AppendUvarint(out, uint64(r.run.id0.Index))
		out = binary.AppendVarint(out, int64(r.run.tick0-tick))
		off, tick = r.run.id0.Offset, r.run.tick0
	}
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

// decodeDedupState parses a dedup state object. Every error wraps
// ErrCorrupt; it never panics.
func decodeDedupState(b []byte) ([]stateRun, error) {
	bad := func(what string) ([]stateRun, error) {
		return nil, fmt.Errorf("%w: dedup state: %s", ErrCorrupt, what)
	}
	if len(b) < len(dedupStateMagic)+1+4 || [4]byte(b[:4]) != dedupStateMagic {
		return bad("bad magic")
	}
	if b[4] != DedupStateFormat {
		return bad(fmt.Sprintf("unsupported format %d", b[4]))
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return bad("checksum mismatch")
	}
	r := stateReader{b: body[5:]}
	nprod := r.uvarint()
	if nprod > uint64(len(r.b)) {
		return bad("producer count beyond the object")
	}
	prods := make([]producerEpoch, 0, nprod)
	for range nprod {
		n := r.uvarint()
		name := r.bytes(n)
		prods = append(prods, producerEpoch{producer: string(name), epoch: r.uvarint()})
	}
	nruns := r.uvarint()
	if nruns > uint64(len(r.b)) {
		return bad("run count beyond the object")
	}
	runs := make([]stateRun, 0, nruns)
	var off, tick uint64
	for range nruns {
		pi := r.uvarint()
		run := dedupRun{seq0: r.uvarint()}
		n := r.uvarint()
		off += uint64(r.varint())
		run.id0 = MessageID{Offset: off, Index: uint32(r.uvarint())}
		tick += uint64(r.varint())
		run.tick0 = tick
		if r.err != nil {
			break
		}
		if pi >= uint64(len(prods)) || n == 0 || n >= maxDedupStateRun || prods[pi].producer == "" {
			return bad("bad run")
		}
		run.n = uint32(n)
		runs = append(runs, stateRun{prods[pi], run})
	}
	if r.err != nil {
		return bad(r.err.Error())
	}
	if len(r.b) != 0 {
		return bad("trailing bytes")
	}
	return runs, nil
}

type stateReader struct {
	b   []byte
	err error
}

func (r *stateReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("truncated varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *stateReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errors.New("truncated varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *stateReader) bytes(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errors.New("truncated string")
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// restoreState folds decoded runs into the window, in their order.
func (d *dedupWindow) restoreState(runs []stateRun, now time.Time) {
	for _, r := range runs {
		d.restoreRun(r.key, r.run, now)
	}
}

// ErrDedupStateGone: the dedup state object a checkpoint named is gone;
// the flush that wrote a newer checkpoint deleted it. Read the checkpoint
// again.
var ErrDedupStateGone = errors.New("segmentlog: dedup state object gone (the checkpoint moved on)")

// readDedupState reads and decodes the dedup state object key.
func readDedupState(ctx context.Context, store objstore.Store, key string) ([]stateRun, error) {
	obj, err := store.Get(ctx, key)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrDedupStateGone, key)
	}
	if err != nil {
		return nil, fmt.Errorf("read dedup state %s: %w", key, err)
	}
	runs, err := decodeDedupState(obj.Body)
	if err != nil {
		return nil, fmt.Errorf("read dedup state %s: %w", key, err)
	}
	return runs, nil
}
