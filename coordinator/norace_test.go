//go:build !race

package coordinator_test

// raceScale: see race_test.go.
const raceScale = 1
