//go:build linux

package loop

import "time"

// An idle proxy gives back the memory its handshakes churned through. Each
// handshake leaves about 1.3 KiB of garbage (results, closures, the
// accept's address), and with Go's default GOGC the heap may hold as much
// garbage as live data before a collection: right after a burst of opens,
// RSS per idle session swings between 1.5 and 3 KiB at 9,000 sessions
// depending on where the last collection fell. Once the accepts stop, the
// sweeper collects and returns the free pages to the OS
// (debug.FreeOSMemory), once per burst: DECISIONS.md "Idle memory: freed
// when the accepts stop".
const (
	// releaseAfterOpens is how many connections must have been accepted
	// since the last release before another is made: a full collection costs
	// far less than that many handshakes, and a trickle of opens never
	// causes one.
	releaseAfterOpens = 1000
	// releaseQuiet is how long no connection may have been accepted before
	// the release: the burst is over.
	releaseQuiet = 500 * time.Millisecond
)

// memRelease decides when the sweeper releases memory. Sweeper goroutine.
type memRelease struct {
	seen     uint64    // the accept count at the last tick
	seenAt   time.Time // when it last changed
	released uint64    // the accept count at the last release
}

// due reports whether memory should be released now, given the number of
// connections accepted so far, and if so counts the release.
func (m *memRelease) due(accepted uint64, now time.Time) bool {
	if accepted != m.seen {
		m.seen, m.seenAt = accepted, now
		return false
	}
	if accepted-m.released < releaseAfterOpens || now.Sub(m.seenAt) < releaseQuiet {
		return false
	}
	m.released = accepted
	return true
}
