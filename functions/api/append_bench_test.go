package api

import (
	"fmt"
	"testing"

	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/segmentlog"
)

// BenchmarkDecodeAppendBatch decodes and validates a binary append body as
// the append route does (one SDK Producer batch, as full as MaxBatchBytes lets it be: 980 keyed messages of
// 1 KiB, 60 of 16 KiB). B/op and allocs/op are per body.
func BenchmarkDecodeAppendBatch(b *testing.B) {
	for _, c := range []struct{ n, size int }{{980, 1 << 10}, {60, 16 << 10}} {
		body := benchAppendBody(b, c.n, c.size)
		b.Run(fmt.Sprintf("%dx%dKiB", c.n, c.size>>10), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			lim := limits{DefaultMaxAppendMessages, system.DefaultMaxBatchBytes}
			for b.Loop() {
				if _, err := decodeAppend(wire.ContentTypeBatch, body, lim); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchAppendBody is the body an SDK Producer sends for n keyed messages
// of size payload bytes.
func benchAppendBody(b *testing.B, n, size int) []byte {
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i)
	}
	batch := segmentlog.Batch{Kind: segmentlog.KindData}
	for i := range n {
		batch.Messages = append(batch.Messages, segmentlog.Message{Type: segmentlog.TypeData, VChannel: "v", TimeTick: uint64(i + 1),
			Key: segmentlog.IdemKey{Producer: "go-host-1234", Epoch: 1 << 50, Seq: uint64(1_000_000 + i)}, Payload: payload})
	}
	body, err := batch.Encode()
	if err != nil {
		b.Fatal(err)
	}
	return body
}
