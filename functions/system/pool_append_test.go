package system

import (
	"context"
	"log/slog"
	"reflect"
	"testing"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// TestPoolAppendLeavesTheCallersMessages: Pool.Append does not copy msgs
// (the writers stamp copies of their own), so in either write mode the
// caller's messages must come back as they went in: no timetick stamped.
func TestPoolAppendLeavesTheCallersMessages(t *testing.T) {
	for _, mode := range []WriteMode{WriteExclusive, WriteShared} {
		t.Run(string(mode), func(t *testing.T) {
			ctx := context.Background()
			sys, err := New(Config{Logger: slog.New(slog.DiscardHandler), TimeTickInterval: -1, WriteMode: mode}, objstore.NewMemory())
			if err != nil {
				t.Fatal(err)
			}
			defer sys.Close(ctx)
			msgs := []segmentlog.Message{
				{Type: segmentlog.TypeData, VChannel: "v", Payload: []byte("one"), Key: segmentlog.IdemKey{Producer: "p", Epoch: 1, Seq: 1}},
				{Type: segmentlog.TypeInsert, VChannel: "v", Payload: []byte("two"), Properties: map[string]string{"k": "v"}},
			}
			want := []segmentlog.Message{msgs[0], msgs[1]}
			for _, expect := range []*uint64{nil, new(uint64)} {
				if expect != nil {
					tail, _, _ := sys.Pool().Frontier("p0")
					*expect = tail
				}
				_, acks, err := sys.Pool().Append(ctx, "p0", msgs, expect, nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(acks) != 2 || acks[0].TimeTick == 0 {
					t.Fatalf("acks %+v", acks)
				}
				if !reflect.DeepEqual(msgs, want) {
					t.Fatalf("the caller's messages changed: %+v, sent %+v", msgs, want)
				}
			}
		})
	}
}
