package lambdaemu_test

import (
	"slices"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/lambdaemu"
)

func TestPolicies(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	idle := []lambdaemu.Idle{{ID: 1, IdleSince: t0.Add(2 * time.Second)}, {ID: 3, IdleSince: t0.Add(5 * time.Second)}, {ID: 4, IdleSince: t0}}
	picks := func(p lambdaemu.Policy, lists ...[]lambdaemu.Idle) []int {
		var ids []int
		for _, l := range lists {
			ids = append(ids, l[p.Pick(l)].ID)
		}
		return ids
	}
	rep := func(n int) [][]lambdaemu.Idle {
		out := make([][]lambdaemu.Idle, n)
		for i := range out {
			out[i] = idle
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		policy lambdaemu.Policy
		lists  [][]lambdaemu.Idle
		want   []int
	}{
		{"most recent takes the last to go idle", lambdaemu.MostRecent(), rep(2), []int{3, 3}},
		{"round robin cycles by ID", lambdaemu.RoundRobin(), rep(4), []int{1, 3, 4, 1}},
		{"round robin goes past IDs that are busy", lambdaemu.RoundRobin(), [][]lambdaemu.Idle{idle, idle[2:], idle[:2]}, []int{1, 4, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := picks(tc.policy, tc.lists...); !slices.Equal(got, tc.want) {
				t.Fatalf("picked %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("random replays by seed and spreads", func(t *testing.T) {
		a, b := picks(lambdaemu.Random(7), rep(50)...), picks(lambdaemu.Random(7), rep(50)...)
		if !slices.Equal(a, b) {
			t.Fatalf("same seed, different picks: %v %v", a, b)
		}
		seen := map[int]bool{}
		for _, id := range a {
			seen[id] = true
		}
		if len(seen) != 3 {
			t.Fatalf("50 random picks over 3 envs reached %v", seen)
		}
		if c := picks(lambdaemu.Random(8), rep(50)...); slices.Equal(a, c) {
			t.Fatal("seeds 7 and 8 picked alike")
		}
	})
}
