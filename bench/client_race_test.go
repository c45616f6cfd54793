//go:build race

package bench

// clientRaceEnabled skips allocation assertions: the race detector allocates.
const clientRaceEnabled = true
