//go:build !race

package tokens

// raceEnabled is true under the race detector, which makes allocation counts
// meaningless; allocation tests skip themselves then.
const raceEnabled = false
