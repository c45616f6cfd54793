package bench

import (
	"fmt"
	"sort"
	"strconv"
)

// scenario is one kind of run: the consoles behind its tokens, the sessions
// it opens, and the measurement itself.
type scenario struct {
	name     string
	tokens   func(p Params, n int) []Mode    // the console behind each token
	sessions func(p Params, n int) []Session // what opens first
	measure  func(e *env) error              // fills e.res
	params   func(p Params) map[string]string
	// handshakes: the latency reported is the handshake's (time to
	// establish), not an echo round trip's.
	handshakes bool
	// hostile, when set, makes this a hostile scenario (hostile.go): run by
	// runHostile, reported in its own table; tokens, sessions and measure
	// are then unused.
	hostile *hostileSpec
	// tls, when set, makes this a TLS scenario (tls_scenario.go): run by
	// runTLS, reported in its own section; tokens, sessions and measure
	// are then unused.
	tls *tlsSpec
}

// scenarios, in report order.
var scenarios = []*scenario{
	{name: "hold", tokens: allModes(ModeEcho), sessions: probed(ModeEcho), measure: measureHold, params: noParams, handshakes: true},
	{name: "echo", tokens: allModes(ModeEcho), sessions: pacedEcho, measure: measureEcho, params: echoParams},
	{name: "stream-down", tokens: allModes(ModeFirehose), sessions: idle(ModeFirehose), measure: measureStreamDown, params: streamParams},
	{name: "stream-up", tokens: allModes(ModeSink), sessions: idle(ModeSink), measure: measureStreamUp, params: streamParams},
	{name: "churn", tokens: churnTokens, sessions: churnSessions, measure: measureChurn, params: churnParams, handshakes: true},
	{name: "mixed", tokens: mixedTokens, sessions: mixedSessions, measure: measureMixed, params: mixedParams},
}

// AllScenarios names every load scenario in report order (the hostile ones
// are listed by HostileScenarios).
func AllScenarios() []string {
	ns := make([]string, len(scenarios))
	for i, s := range scenarios {
		ns[i] = s.name
	}
	return ns
}

// HostileScenarios names the hostile scenarios in report order.
func HostileScenarios() []string {
	ns := make([]string, len(hostileScenarios))
	for i, s := range hostileScenarios {
		ns[i] = s.name
	}
	return ns
}

func scenarioByName(n string) *scenario {
	for _, s := range scenarios {
		if s.name == n {
			return s
		}
	}
	for _, s := range hostileScenarios {
		if s.name == n {
			return s
		}
	}
	for _, s := range tlsScenarios {
		if s.name == n {
			return s
		}
	}
	return nil
}

func allModes(m Mode) func(Params, int) []Mode {
	return func(_ Params, n int) []Mode {
		ms := make([]Mode, n)
		for i := range ms {
			ms[i] = m
		}
		return ms
	}
}

// sessionsOf opens one session per token.
func sessionsOf(ms []Mode, paced func(i int) bool) []Session {
	ss := make([]Session, len(ms))
	for i, m := range ms {
		ss[i] = Session{Token: i, Mode: m, Paced: paced(i)}
	}
	return ss
}

func idle(m Mode) func(Params, int) []Session {
	return func(p Params, n int) []Session {
		return sessionsOf(allModes(m)(p, n), func(int) bool { return false })
	}
}

// probed is idle sessions of console m that each send one echo message
// as soon as they are open (Session.Probe): their time to establish is
// its round trip.
func probed(m Mode) func(Params, int) []Session {
	return func(p Params, n int) []Session {
		ss := idle(m)(p, n)
		for i := range ss {
			ss[i].Probe = true
		}
		return ss
	}
}

func pacedEcho(p Params, n int) []Session {
	return sessionsOf(allModes(ModeEcho)(p, n), func(int) bool { return true })
}

// churnPool is how many tokens churn cycles through: enough that a token is
// reused only long after its last session closed (exclusive tokens).
func churnPool(n int) int { return max(4*n, 1024) }

func churnTokens(p Params, n int) []Mode { return allModes(ModeEcho)(p, churnPool(n)) }

func churnSessions(_ Params, n int) []Session {
	ss := make([]Session, n)
	for i := range ss {
		ss[i] = Session{Token: i, Mode: ModeEcho, Churn: true, Probe: true}
	}
	return ss
}

// mixedSplit is how many sessions type and how many receive bursts; the
// rest sit idle.
func mixedSplit(p Params, n int) (typing, burst int) {
	typing = int(float64(n)*p.TypingShare + 0.5)
	burst = int(float64(n)*p.BurstShare + 0.5)
	if p.TypingShare > 0 && typing == 0 {
		typing = 1
	}
	if p.BurstShare > 0 && burst == 0 && n > typing {
		burst = 1
	}
	return typing, min(burst, n-typing)
}

func mixedTokens(p Params, n int) []Mode {
	typing, burst := mixedSplit(p, n)
	ms := allModes(ModeEcho)(p, n)
	for i := typing; i < typing+burst; i++ {
		ms[i] = ModeRFB
	}
	return ms
}

func mixedSessions(p Params, n int) []Session {
	typing, _ := mixedSplit(p, n)
	return sessionsOf(mixedTokens(p, n), func(i int) bool { return i < typing })
}

func noParams(Params) map[string]string { return nil }

func echoParams(p Params) map[string]string {
	return map[string]string{"rate_per_session": ftoa(p.EchoRate), "message_bytes": strconv.Itoa(p.EchoSize)}
}

func streamParams(p Params) map[string]string {
	rate := "flat-out"
	if p.StreamRate > 0 {
		rate = strconv.FormatInt(p.StreamRate, 10)
	}
	return map[string]string{"rate_bytes_per_session": rate, "frame_bytes": strconv.Itoa(p.FrameSize)}
}

func churnParams(p Params) map[string]string {
	return map[string]string{"echoes_per_session": strconv.Itoa(p.ChurnMessages), "message_bytes": strconv.Itoa(p.EchoSize)}
}

func mixedParams(p Params) map[string]string {
	return map[string]string{"typing_share": ftoa(p.TypingShare), "burst_share": ftoa(p.BurstShare),
		"keystrokes_per_s": ftoa(p.TypingRate), "burst_bytes": strconv.Itoa(p.BurstBytes),
		"burst_interval": p.BurstInterval.String()}
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// errorList turns error counts into "kind ×count" strings, sorted.
func errorList(errs map[string]int) []string {
	var out []string
	for k, v := range errs {
		out = append(out, fmt.Sprintf("%s ×%d", k, v))
	}
	sort.Strings(out)
	return out
}
