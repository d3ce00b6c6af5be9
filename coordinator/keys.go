package coordinator

import (
	"strings"

	"github.com/cairnlog/cairn/segmentlog"
)

// The coordinator's own records live beside the lease records, under
// {prefix}/meta/ (docs/architecture.md, "Bucket layout"). segmentlog.Layout names the
// objects the WAL needs; these helpers name the rest and join exactly as
// Layout does: "{prefix}/a/b", or "a/b" when the prefix is empty.
//
//	{prefix}/meta/vchannels/{vchannel}.json    VChannel, CAS
//	{prefix}/meta/nodes/{node}.json            Session, CAS (written only by the node)
//	{prefix}/meta/assignments/{pchannel}.json  Assignment, CAS (written only by balancers)

func metaKey(l segmentlog.Layout, parts ...string) string {
	if l.Prefix == "" {
		return strings.Join(parts, "/")
	}
	return l.Prefix + "/" + strings.Join(parts, "/")
}

func vchannelPrefix(l segmentlog.Layout) string   { return metaKey(l, "meta", "vchannels") + "/" }
func nodePrefix(l segmentlog.Layout) string       { return metaKey(l, "meta", "nodes") + "/" }
func assignmentPrefix(l segmentlog.Layout) string { return metaKey(l, "meta", "assignments") + "/" }

func vchannelKey(l segmentlog.Layout, v string) string   { return vchannelPrefix(l) + v + ".json" }
func nodeKey(l segmentlog.Layout, node string) string    { return nodePrefix(l) + node + ".json" }
func assignmentKey(l segmentlog.Layout, p string) string { return assignmentPrefix(l) + p + ".json" }

// nameOfKey returns the record name of key, a listed key under prefix: key
// must be prefix + name + ".json" with a valid name. Anything else (a stray
// object) is not a record.
func nameOfKey(prefix, kind, key string) (string, bool) {
	name, ok := strings.CutSuffix(strings.TrimPrefix(key, prefix), ".json")
	if !ok || !strings.HasPrefix(key, prefix) || segmentlog.ValidateName(kind, name) != nil {
		return "", false
	}
	return name, true
}
