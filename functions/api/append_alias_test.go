package api

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"

	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// TestBinaryAppendPayloadsStayPut: the payloads of a binary append are its
// request body itself (decodeAppendBatch does not copy them), and the
// writer's cache keeps them; so appends that come later, of the same size,
// must not change what an earlier one stored — as they would if request
// bodies were read into reused buffers. The reads are served from the cache.
func TestBinaryAppendPayloadsStayPut(t *testing.T) {
	ts := newTestServer(t, testConfig(t), objstore.NewMemory())
	payload := func(i, j int) []byte { return bytes.Repeat(fmt.Appendf(nil, "%04d.%d|", i, j), 100) }
	const appends, per = 20, 3
	for i := range appends {
		b := segmentlog.Batch{Kind: segmentlog.KindData}
		for j := range per {
			b.Messages = append(b.Messages, segmentlog.Message{Type: segmentlog.TypeData, VChannel: "v0", TimeTick: uint64(j + 1), Payload: payload(i, j)})
		}
		body, err := b.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if r := ts.do("POST", "/v1/pchannels/p0/append", wire.ContentTypeBatch, body); r.status != http.StatusOK {
			t.Fatalf("append %d: %d %s", i, r.status, r.body)
		}
		clear(body) // the client's buffer, reused: no matter to the server
	}
	got := ts.mustRead("/v1/pchannels/p0/messages?from=earliest&max=100")
	if len(got.Messages) != appends*per {
		t.Fatalf("read %d messages, want %d", len(got.Messages), appends*per)
	}
	for k, m := range got.Messages {
		if want := payload(k/per, k%per); !bytes.Equal(m.Payload, want) {
			t.Fatalf("message %d reads %.20q..., was appended as %.20q...", k, m.Payload, want)
		}
	}
}
