package snapshot

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cairnlog/cairn/segmentlog"
)

// PChannelWide is the directory, under segments/, of the messages that
// belong to no vchannel (pchannel-wide timetick messages). The leading '_'
// is not allowed in a vchannel name, so it can never collide with one. Its
// SegmentRef.VChannel is "".
const PChannelWide = "_pchannel"

// join builds a key under the layout's prefix.
func join(l segmentlog.Layout, parts ...string) string {
	k := strings.Join(parts, "/")
	if l.Prefix == "" {
		return k
	}
	return l.Prefix + "/" + k
}

// SegmentsPrefix is the prefix of every segment file.
func SegmentsPrefix(l segmentlog.Layout) string { return join(l, "segments") + "/" }

// segmentDir is the directory of one vchannel's segment files; the
// pchannel-wide messages of pchannel p get a directory of their own.
func segmentDir(l segmentlog.Layout, pchannel, vchannel string) string {
	if vchannel == "" {
		return join(l, "segments", PChannelWide, pchannel) + "/"
	}
	return join(l, "segments", vchannel) + "/"
}

// SegmentKey is the key of a segment file (docs/architecture.md, "Bucket layout"):
// {prefix}/segments/{vchannel}/{first:020d}-{last:020d}-{flushID}.arrow,
// first and last being the offsets of its first and last message, flushID
// the UUID of the flush that wrote it (or of the compaction that merged
// it). Pchannel-wide messages go under
// segments/_pchannel/{pchannel}/.
func SegmentKey(l segmentlog.Layout, pchannel, vchannel string, first, last uint64, flushID string) string {
	return fmt.Sprintf("%s%0*d-%0*d-%s.arrow", segmentDir(l, pchannel, vchannel),
		segmentlog.OffsetDigits, first, segmentlog.OffsetDigits, last, flushID)
}

// flushIDOf returns the flush (or compaction) ID in a segment key, or "" if
// key is not one.
func flushIDOf(key string) string {
	base := key[strings.LastIndexByte(key, '/')+1:]
	base, ok := strings.CutSuffix(base, ".arrow")
	if !ok {
		return ""
	}
	parts := strings.SplitN(base, "-", 3)
	if len(parts) != 3 || len(parts[0]) != segmentlog.OffsetDigits || len(parts[1]) != segmentlog.OffsetDigits {
		return ""
	}
	if _, err := strconv.ParseUint(parts[0], 10, 64); err != nil {
		return ""
	}
	return parts[2]
}

// SnapshotKey is the key of the record of snapshot name.
func SnapshotKey(l segmentlog.Layout, name string) string { return join(l, "snapshots", name+".json") }

// SnapshotsPrefix is the prefix of every snapshot record.
func SnapshotsPrefix(l segmentlog.Layout) string { return join(l, "snapshots") + "/" }

// CheckpointsPrefix is the prefix of every checkpoint record (the directory
// of segmentlog.Layout.Checkpoint).
func CheckpointsPrefix(l segmentlog.Layout) string { return join(l, "meta", "checkpoints") + "/" }

// RestoreKey is the key of the record of restore job id. Restore jobs live
// at {prefix}/meta/restores/{id}.json (docs/architecture.md, "Bucket layout").
func RestoreKey(l segmentlog.Layout, id string) string {
	return join(l, "meta", "restores", id+".json")
}

// RestoresPrefix is the prefix of every restore job record.
func RestoresPrefix(l segmentlog.Layout) string { return join(l, "meta", "restores") + "/" }

// RetiredListsPrefix is the prefix of every retired list (RetiredList).
func RetiredListsPrefix(l segmentlog.Layout) string { return join(l, "meta", "retired") + "/" }

// retiredListPrefix is the prefix of pchannel p's retired lists.
func retiredListPrefix(l segmentlog.Layout, p string) string {
	return join(l, "meta", "retired", p) + "/"
}

// retiredListKey is the key of a retired list of pchannel p:
// {prefix}/meta/retired/{pchannel}/{written:020d}-{id}.json, written being
// the Unix milliseconds of the writer's real clock when it wrote the list,
// so that the keys list in the order the lists were written.
func retiredListKey(l segmentlog.Layout, p string, written time.Time, id string) string {
	return retiredListPrefix(l, p) + retiredListStart(written) + "-" + id + ".json"
}

// retiredListStart is the part of a retired list's key that orders it: a
// listing that starts after retiredListPrefix+retiredListStart(t) finds
// every list written from t on.
func retiredListStart(t time.Time) string { return fmt.Sprintf("%020d", t.UnixMilli()) }
