package client

import (
	"fmt"
	"testing"
)

// BenchmarkEncodeBatch encodes one Producer batch of keyed messages as the
// Producer sends it (1,000 messages of 1 KiB, 64 of 16 KiB), into a fresh
// buffer (as Client.Append does) and into a reused one (as a Producer
// does). B/op and allocs/op are per batch; bytes/msg is the allocation per
// message.
func BenchmarkEncodeBatch(b *testing.B) {
	for _, c := range []struct{ n, size int }{{1000, 1 << 10}, {64, 16 << 10}} {
		msgs := benchMessages(c.n, c.size)
		b.Run(fmt.Sprintf("%dx%dKiB/fresh", c.n, c.size>>10), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(c.n * c.size))
			for b.Loop() {
				if _, ok := encodeBatch(nil, msgs); !ok {
					b.Fatal("refused")
				}
			}
		})
		b.Run(fmt.Sprintf("%dx%dKiB/reused", c.n, c.size>>10), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(c.n * c.size))
			var buf []byte
			for b.Loop() {
				var ok bool
				if buf, ok = encodeBatch(buf[:0], msgs); !ok {
					b.Fatal("refused")
				}
			}
		})
	}
}

// benchMessages are n keyed messages of size payload bytes, as a Producer
// keys them.
func benchMessages(n, size int) []Message {
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i)
	}
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i] = Message{VChannel: "v", Payload: payload, Key: &Key{Producer: "go-host-1234", Epoch: 1 << 50, Seq: uint64(1_000_000 + i)}}
	}
	return msgs
}
