//go:build race

package bench

// histRaceEnabled skips allocation assertions: the race detector allocates.
const histRaceEnabled = true
