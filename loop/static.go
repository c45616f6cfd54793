//go:build linux

package loop

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"
	"github.com/panjf2000/gnet/v2"

	"github.com/consoleproxy/consoleproxy/wsframe"
)

// staticStatuses are the answers a request for a --web file gets: the
// file, a path outside the site, no such file, a method other than GET
// and HEAD.
var staticStatuses = []int{200, 400, 404, 405}

// newStaticCounters registers consoleproxy_static_requests_total by status.
// A page load (noVNC's HTML, scripts, images, a favicon it lacks) is not a
// console session: it is counted here and not in
// consoleproxy_sessions_total, and logged by neither "session refused" nor
// "session end", so refusal rates and the session log show consoles only.
func newStaticCounters(set *metrics.Set) map[int]*metrics.Counter {
	m := make(map[int]*metrics.Counter, len(staticStatuses))
	for _, st := range staticStatuses {
		m[st] = set.NewCounter(fmt.Sprintf(`consoleproxy_static_requests_total{status="%d"}`, st))
	}
	return m
}

// staticAnswer counts a --web request that gets status and, for an error,
// writes its short generic answer; the caller closes. The connection's
// handshake result is settled without a session result. Runs on the loop.
func (ss *session) staticAnswer(status int) gnet.Action {
	ss.counted = true // not a session: onClose counts nothing either
	ss.srv.metrics.static[status].Inc()
	if status != 200 {
		_, _ = ss.c.Write(wsframe.AppendError(nil, status))
	}
	return gnet.Close
}
