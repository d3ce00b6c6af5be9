package lambdaemu

import "time"

// Counters count what happened to a function or one of its environments.
type Counters struct {
	Invocations    int64         // invocations handed to a runtime
	ColdStarts     int64         // environments started for a request
	InitTime       time.Duration // sum of the cold starts' init phases
	Freezes        int64         // SIGSTOPs at idle
	Thaws          int64         // SIGCONTs for a request
	ReapsGraceful  int64         // environments taken away with a Shutdown phase
	ReapsKilled    int64         // environments taken away by SIGKILL without warning
	Timeouts       int64         // invocations past the function timeout
	Throttles      int64         // requests refused with 429 (function total only)
	InitErrors     int64         // init phases that failed (init/error, exit, init timeout)
	FunctionErrors int64         // invocations answered through .../error or an error trailer
	Crashes        int64         // environments whose runtime exited unasked
}

func (c *Counters) add(o Counters) {
	c.Invocations += o.Invocations
	c.ColdStarts += o.ColdStarts
	c.InitTime += o.InitTime
	c.Freezes += o.Freezes
	c.Thaws += o.Thaws
	c.ReapsGraceful += o.ReapsGraceful
	c.ReapsKilled += o.ReapsKilled
	c.Timeouts += o.Timeouts
	c.Throttles += o.Throttles
	c.InitErrors += o.InitErrors
	c.FunctionErrors += o.FunctionErrors
	c.Crashes += o.Crashes
}

// EnvStats is one environment's state and counters.
type EnvStats struct {
	ID    int
	PID   int // the runtime's process (and process group) ID
	State State
	// IdleSince is when it last went idle (zero if it never did).
	IdleSince time.Time
	Counters
}

// Stats is a snapshot of a function: its totals and every environment it
// ever started, in start order.
type Stats struct {
	Total Counters
	Envs  []EnvStats
}

// Stats returns a snapshot of the counters. Safe for concurrent use.
func (f *Function) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := Stats{Total: Counters{Throttles: f.throttles}}
	for _, e := range f.all {
		s.Envs = append(s.Envs, EnvStats{ID: e.id, PID: e.pid, State: e.state, IdleSince: e.idleSince, Counters: e.stats})
		s.Total.add(e.stats)
	}
	return s
}
