package coordinator_test

import (
	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/snapshot"
)

// The snapshot package declares the registry calls it consumes; the
// Registry is what a deployment passes it.
var (
	_ snapshot.VChannels = (*coordinator.Registry)(nil)
	_ snapshot.Reclaimer = (*coordinator.Registry)(nil)
)
