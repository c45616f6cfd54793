// Package bench is the load-harness library behind bench/cmd/consolebench: it
// drives thousands of console sessions through a WebSocket-to-TCP proxy
// (consoleproxy, websockify, or haproxy as a plain TCP relay, the reference)
// and reports throughput, latency percentiles, memory per session and
// connection rate side by side.
//
// The pieces, one file each:
//   - backend.go: the compute-host side, one loopback listener per console
//     kind (echo, firehose, sink, rfb bursts, and check / slow-check, which
//     verify every byte against the clients' pattern, pattern.go), counting
//     bytes each way.
//   - client*.go: the client, a few epoll loops on locked OS threads (never a
//     goroutine per session): non-blocking connects spread over 127.0.0.x
//     source addresses, the upgrade, masked frames pre-built once, replies
//     parsed in place. Its hot path does not allocate (client_test.go).
//   - target*.go: the Target adapters that start a proxy with tokens for a
//     run and stop its whole process group.
//   - scenario*.go: hold, echo, stream-down, stream-up, churn, mixed.
//   - hostile*.go: the hostile scenarios (pong-flood, frame-storm,
//     reset-storm, slowloris, tls-silent, zero-window, upload-slow-host),
//     goroutine-per-connection clients that misbehave; resources.go reads
//     the proxy's RSS, fds and goroutines and holds the "back to baseline"
//     rule; report_hostile.go their table.
//   - soak.go, plot_soak.go: one proxy for a long run of mixed load, churn
//     and the hostile set in a loop, read every second, plotted, judged for
//     an upward drift.
//   - run.go: rounds × scenarios × sizes × targets, alternating; Result per
//     run; proc.go samples the proxy's process tree from /proc.
//   - result.go, hist.go, report*.go, plot.go: results, histograms and the
//     report (JSON Lines, Markdown, plots).
//
// Configuration flows one way: cmd/consolebench's flags fill a Config; this
// package never reads flags or the environment.
package bench
