//go:build !race

package relay

// raceEnabled skips allocation assertions: the race detector allocates.
const raceEnabled = false
