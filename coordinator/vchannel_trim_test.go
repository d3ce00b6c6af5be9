package coordinator

import (
	"errors"
	"reflect"
	"testing"

	"github.com/cairnlog/cairn/segmentlog"
)

func TestDecideTrim(t *testing.T) {
	at := func(off uint64, idx uint32) segmentlog.MessageID {
		return segmentlog.MessageID{Offset: off, Index: idx}
	}
	active := VChannel{Name: "v", PChannel: "p1", State: VChannelActive, CreatedAt: t0, Version: 3, Trim: at(10, 2)}
	dropped := active
	dropped.State = VChannelDropped
	reclaiming := active
	reclaiming.State = VChannelReclaiming
	moved := func(v VChannel, id segmentlog.MessageID) VChannel { v.Trim, v.Version = id, v.Version+1; return v }
	tests := []struct {
		name    string
		cur     *VChannel
		before  segmentlog.MessageID
		want    VChannel
		wantErr error
	}{
		{"up", &active, at(12, 0), moved(active, at(12, 0)), nil},
		{"up by an index", &active, at(10, 3), moved(active, at(10, 3)), nil},
		{"same point: no write", &active, at(10, 2), active, nil},
		{"lower point: no write", &active, at(9, 7), active, nil},
		{"dropped: still trimmable", &dropped, at(12, 0), moved(dropped, at(12, 0)), nil},
		{"reclaiming", &reclaiming, at(12, 0), VChannel{}, ErrVChannelDropped},
		{"no record", nil, at(1, 0), VChannel{}, ErrNoVChannel},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decideTrim(tc.cur, "v", tc.before)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
