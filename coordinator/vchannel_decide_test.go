package coordinator

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/cairnlog/cairn/segmentlog"
)

func TestPickPChannel(t *testing.T) {
	vc := func(p string, s VChannelState) VChannel { return VChannel{PChannel: p, State: s} }
	tests := []struct {
		name      string
		pchannels []string
		vchannels []VChannel
		want      string
	}{
		{"empty: first by name", []string{"p2", "p0", "p1"}, nil, "p0"},
		{"fewest active", []string{"p0", "p1"}, []VChannel{vc("p0", VChannelActive)}, "p1"},
		{"dropped ones do not count", []string{"p0", "p1"},
			[]VChannel{vc("p1", VChannelActive), vc("p0", VChannelDropped), vc("p0", VChannelReclaiming)}, "p0"},
		{"tie: first by name", []string{"p1", "p0"}, []VChannel{vc("p0", VChannelActive), vc("p1", VChannelActive)}, "p0"},
		{"bound to an unknown pchannel: ignored", []string{"p0"}, []VChannel{vc("px", VChannelActive)}, "p0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := pickPChannel(tc.pchannels, tc.vchannels); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestDecideVChannel(t *testing.T) {
	active := VChannel{Name: "v", PChannel: "p1", State: VChannelActive, CreatedAt: t0, Version: 3,
		Position: Position{ID: segmentlog.MessageID{Offset: 20, Index: 1}, TimeTick: 500}}
	dropped := active
	dropped.State, dropped.DroppedAt, dropped.Position.Done, dropped.Version = VChannelDropped, t0.Add(time.Minute), true, 4
	pinned := active
	pinned.Pins = []string{"s1", "s3"}
	droppedPinned := dropped
	droppedPinned.Pins = []string{"s1"}
	reclaiming := dropped
	reclaiming.State, reclaiming.Version = VChannelReclaiming, 5
	mark := WALMark{ID: segmentlog.MessageID{Offset: 30}, TimeTick: 900}
	now := t0.Add(time.Minute)

	with := func(v VChannel, f func(*VChannel)) VChannel { f(&v); v.Version++; return v }
	ptr := func(v VChannel) *VChannel { return &v }

	tests := []struct {
		name    string
		decide  func() (VChannel, error)
		want    VChannel
		wantErr error
	}{
		{name: "create new", decide: func() (VChannel, error) { return decideCreate(nil, "v", "", "p1", t0) },
			want: VChannel{Name: "v", PChannel: "p1", State: VChannelActive, CreatedAt: t0, Version: 1}},
		{name: "create again, any binding", decide: func() (VChannel, error) { return decideCreate(ptr(active), "v", "", "p0", now) },
			want: active},
		{name: "create again, same binding", decide: func() (VChannel, error) { return decideCreate(ptr(active), "v", "p1", "p1", now) },
			want: active},
		{name: "create again, other binding", decide: func() (VChannel, error) { return decideCreate(ptr(active), "v", "p2", "p2", now) },
			wantErr: ErrBindingConflict},
		{name: "create a dropped name", decide: func() (VChannel, error) { return decideCreate(ptr(dropped), "v", "", "p1", now) },
			wantErr: ErrVChannelDropped},
		{name: "log create", decide: func() (VChannel, error) { return decideLogCreate(ptr(active), "v", mark) },
			want: with(active, func(v *VChannel) { v.Created = &mark })},
		{name: "log create twice keeps the first", decide: func() (VChannel, error) {
			v := with(active, func(v *VChannel) { v.Created = &WALMark{TimeTick: 1} })
			return decideLogCreate(&v, "v", mark)
		}, want: with(active, func(v *VChannel) { v.Created = &WALMark{TimeTick: 1} })},
		{name: "drop", decide: func() (VChannel, error) { return decideDrop(ptr(active), "v", now) }, want: dropped},
		{name: "drop again", decide: func() (VChannel, error) { return decideDrop(ptr(dropped), "v", now.Add(time.Hour)) }, want: dropped},
		{name: "drop missing", decide: func() (VChannel, error) { return decideDrop(nil, "v", now) }, wantErr: ErrNoVChannel},
		{name: "log drop", decide: func() (VChannel, error) { return decideLogDrop(ptr(dropped), "v", mark) },
			want: with(dropped, func(v *VChannel) { v.Dropped = &mark })},
		{name: "advance", decide: func() (VChannel, error) {
			return decideAdvance(ptr(active), "v", Position{ID: segmentlog.MessageID{Offset: 25}, TimeTick: 700})
		}, want: with(active, func(v *VChannel) { v.Position = Position{ID: segmentlog.MessageID{Offset: 25}, TimeTick: 700} })},
		{name: "advance backwards: unchanged", decide: func() (VChannel, error) {
			return decideAdvance(ptr(active), "v", Position{ID: segmentlog.MessageID{Offset: 20}, TimeTick: 900})
		}, want: active},
		{name: "advance after drop: refused", decide: func() (VChannel, error) {
			return decideAdvance(ptr(dropped), "v", Position{ID: segmentlog.MessageID{Offset: 99}})
		}, wantErr: ErrVChannelDropped},
		{name: "advance to done: refused", decide: func() (VChannel, error) {
			return decideAdvance(ptr(active), "v", Position{ID: segmentlog.MessageID{Offset: 99}, Done: true})
		}, wantErr: errAny},
		{name: "pin", decide: func() (VChannel, error) { return decidePin(ptr(pinned), "v", "s2") },
			want: with(pinned, func(v *VChannel) { v.Pins = []string{"s1", "s2", "s3"} })},
		{name: "pin twice", decide: func() (VChannel, error) { return decidePin(ptr(pinned), "v", "s3") }, want: pinned},
		{name: "pin dropped", decide: func() (VChannel, error) { return decidePin(ptr(dropped), "v", "s1") }, wantErr: ErrVChannelDropped},
		{name: "pin reclaiming", decide: func() (VChannel, error) { return decidePin(ptr(reclaiming), "v", "s1") }, wantErr: ErrVChannelDropped},
		{name: "unpin", decide: func() (VChannel, error) { return decideUnpin(ptr(droppedPinned), "v", "s1") },
			want: with(droppedPinned, func(v *VChannel) { v.Pins = nil })},
		{name: "unpin absent", decide: func() (VChannel, error) { return decideUnpin(ptr(pinned), "v", "s2") }, want: pinned},
		{name: "reclaim", decide: func() (VChannel, error) { return decideReclaim(ptr(dropped), "v") },
			want: with(dropped, func(v *VChannel) { v.State = VChannelReclaiming })},
		{name: "reclaim pinned", decide: func() (VChannel, error) { return decideReclaim(ptr(droppedPinned), "v") }, wantErr: ErrPinned},
		{name: "reclaim active", decide: func() (VChannel, error) { return decideReclaim(ptr(active), "v") }, wantErr: ErrVChannelActive},
		{name: "reclaim again", decide: func() (VChannel, error) { return decideReclaim(ptr(reclaiming), "v") }, want: reclaiming},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.decide()
			if tc.wantErr != nil {
				if err == nil || (tc.wantErr != errAny && !errors.Is(err, tc.wantErr)) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// errAny stands for "some error" in decision tables.
var errAny = errors.New("any error")

// TestDroppedPositionStaysDone: whatever order position updates and the
// drop arrive in, once dropped the position is done and never moves again.
func TestDroppedPositionStaysDone(t *testing.T) {
	v, _ := decideCreate(nil, "v", "", "p0", t0)
	pos := func(off uint64) Position { return Position{ID: segmentlog.MessageID{Offset: off}} }
	v, _ = decideAdvance(&v, "v", pos(10))
	v, _ = decideDrop(&v, "v", t0)
	for _, off := range []uint64{5, 10, 11, 1 << 40} {
		if _, err := decideAdvance(&v, "v", pos(off)); !errors.Is(err, ErrVChannelDropped) {
			t.Fatalf("advance to %d after drop: %v", off, err)
		}
	}
	if _, err := decidePin(&v, "v", "s"); !errors.Is(err, ErrVChannelDropped) {
		t.Fatalf("pin after drop: %v", err)
	}
	v, _ = decideReclaim(&v, "v")
	if !v.Position.Done || v.Position.ID.Offset != 10 || v.State != VChannelReclaiming {
		t.Fatalf("record %+v", v)
	}
}
