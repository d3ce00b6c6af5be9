package main

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairnlog/cairn/functions/system"
)

// reclaimDeadIncarnations takes back, at once, the pchannels whose live
// leases a dead `cairn serve` of this host holds (a process killed with
// SIGKILL, or one that crashed): their holder is "serve-<host>-<pid>"
// (defaultNodeID) and no process <pid> runs here any more. Without it the
// restarted process waits out the dead one's lease (TTL + margin) before it
// can write. The takeover fences the dead process's writers
// (docs/protocol.md, Acquire 4), so a mistaken guess costs a takeover, never
// data. The balancer then hands the assignment to this node: the lease
// holder is alive, the assigned node is not.
func reclaimDeadIncarnations(ctx context.Context, sys *system.System, nodeID string, alive func(pid int) bool, log *slog.Logger) []string {
	prefix := nodeID[:strings.LastIndexByte(nodeID, '-')+1] // "serve-<host>-"
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	leases, err := sys.Leases().List(ctx)
	if err != nil {
		log.Warn("cannot list leases to reclaim a dead incarnation's pchannels", "err", err)
		return nil
	}
	var (
		mu   sync.Mutex
		took []string
		wg   sync.WaitGroup
	)
	for _, l := range leases {
		pid, err := strconv.Atoi(strings.TrimPrefix(l.Holder, prefix))
		if l.Released || l.Shared || !strings.HasPrefix(l.Holder, prefix) || l.Holder == nodeID || err != nil || alive(pid) {
			continue
		}
		wg.Go(func() { // the pchannels in parallel: each takeover is a few round trips
			start := time.Now()
			if err := sys.Pool().TakeOver(ctx, l.PChannel); err != nil {
				log.Warn("could not take a dead incarnation's pchannel back", "pchannel", l.PChannel, "holder", l.Holder, "err", err)
				return
			}
			log.Info("took a dead incarnation's pchannel back", "pchannel", l.PChannel, "holder", l.Holder, "term", l.Term+1, "took_ms", time.Since(start).Milliseconds())
			mu.Lock()
			took = append(took, l.PChannel)
			mu.Unlock()
		})
	}
	wg.Wait()
	return took
}
