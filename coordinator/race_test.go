//go:build race

package coordinator_test

// raceScale stretches the cluster tests' timings under the race detector,
// which slows the store client's CPU-bound request path several times over:
// with the plain timings a loaded 2-core machine misses lease deadlines
// often enough to keep the cluster moving pchannels around. Safety does not
// depend on timings; only how fast the cluster settles does.
const raceScale = 2
