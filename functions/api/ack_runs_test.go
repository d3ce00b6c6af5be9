package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"testing"

	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/infra/objstore"
)

// TestAppendAckRunsWhenPreferred: with `Prefer: ack-runs` an append's acks
// come as runs — one for a producer's batch counting up, one for the same
// keys sent again (duplicates at the first copy's IDs) — and say so in
// Preference-Applied; without it, one ack per message, the same acks.
func TestAppendAckRunsWhenPreferred(t *testing.T) {
	ts := newTestServer(t, testConfig(t), objstore.NewMemory())
	batch := wire.AppendRequest{}
	for seq := range uint64(5) {
		batch.Messages = append(batch.Messages, wire.MessageIn{VChannel: "v", Payload: []byte{byte(seq)},
			Key: &wire.Key{Producer: "runs", Epoch: 1, Seq: seq}})
	}
	post := func(prefer string) (wire.AppendResponse, string) {
		body, _ := json.Marshal(batch)
		req, _ := http.NewRequest("POST", ts.url+"/v1/pchannels/p0/append", bytes.NewReader(body))
		req.Header.Set("Content-Type", wire.ContentTypeJSON)
		if prefer != "" {
			req.Header.Set("Prefer", prefer)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("append: %d %s", res.StatusCode, b)
		}
		var ar wire.AppendResponse
		if err := json.Unmarshal(b, &ar); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		return ar, res.Header.Get("Preference-Applied")
	}

	first, applied := post(wire.PreferAckRuns)
	if applied != wire.PreferAckRuns || first.Acks != nil || len(first.AckRuns) != 1 || first.AckRuns[0].Count != 5 || first.AckRuns[0].Duplicate {
		t.Fatalf("first append, runs preferred: applied %q, %+v; want one run of 5", applied, first)
	}
	again, _ := post("respond-async, " + wire.PreferAckRuns)
	if len(again.AckRuns) != 1 || !again.AckRuns[0].Duplicate || again.AckRuns[0].Offset != first.AckRuns[0].Offset {
		t.Fatalf("the same keys again: %+v; want one run of duplicates at %+v", again.AckRuns, first.AckRuns)
	}
	plain, applied := post("")
	want, err := wire.ExpandAckRuns(first.AckRuns, 5)
	for i := range want {
		want[i].Duplicate = true
	}
	if err != nil || applied != "" || plain.AckRuns != nil || !reflect.DeepEqual(plain.Acks, want) {
		t.Fatalf("without the preference: applied %q, %+v; want one ack per message %+v (%v)", applied, plain, want, err)
	}
}
