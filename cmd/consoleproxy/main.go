//go:build linux

// Command consoleproxy is the console proxy: flags → config → start → wait
// for a signal → drain. See README.md and docs/contract.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

func run(args []string, env func(string) string, stderr io.Writer) int {
	// First of all: until signal.Notify, SIGHUP kills the process (Go's
	// default) and SIGTERM skips the drain. What arrives during start-up is
	// held for serve.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	if _, err := raiseOpenFileLimit(); err != nil { // before --max-sessions' default is read
		fmt.Fprintf(stderr, "consoleproxy: %v\n", err)
	}
	o, explicit, err := parseFlags(args, env, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err == nil {
		err = notYet(explicit)
	}
	if err == nil {
		err = applyNovaConfig(o, explicit) // flags win over nova.conf
	}
	if err != nil {
		fmt.Fprintf(stderr, "consoleproxy: %v\n", err)
		return 2
	}
	log := newLogger(o.logFormat, stderr)
	if log == nil {
		fmt.Fprintf(stderr, "consoleproxy: --log-format %q: must be text or json\n", o.logFormat)
		return 2
	}
	if err := checkOptions(o); err != nil { // before any lock or bind
		fmt.Fprintf(stderr, "consoleproxy: %v\n", err)
		return 2
	}
	spareP(env)
	up, err := newUpgrade(o, log) // what the process before handed over, if any
	if err != nil {
		log.Error("consoleproxy stopped", "err", err.Error())
		return 1
	}
	if err := serve(o, explicit, log, sigs, up); err != nil {
		up.stop()
		log.Error("consoleproxy stopped", "err", err.Error())
		return 1
	}
	return 0
}

// startProcs is GOMAXPROCS as the process started: Go's count of the
// CPUs it may use (a cgroup's CPU limit included), or the operator's
// GOMAXPROCS. One event loop each (config).
var startProcs = runtime.GOMAXPROCS(0)

// spareP raises GOMAXPROCS to one above the event loops unless the
// operator set GOMAXPROCS: with a P spare for everything else (Go's
// netpoller, timers, the admin server, the garbage collector), a sleeping
// loop keeps its own P, and sysmon has nothing to retake (loop.Server's
// holdP; DECISIONS.md "A sleeping loop keeps its P"). With GOMAXPROCS set,
// the loops take every P and wait as gnet's do. It returns GOMAXPROCS as
// it then is.
func spareP(env func(string) string) int {
	if env("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), startProcs+1))
	}
	return runtime.GOMAXPROCS(0)
}

func newLogger(format string, w io.Writer) *slog.Logger {
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, nil))
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return nil
}
