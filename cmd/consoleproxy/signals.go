//go:build linux

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/consoleproxy/consoleproxy/loop"
)

// stopGrace is how much longer than --drain-timeout the process may take to
// exit after SIGTERM or SIGINT: loop.StopGrace for the listener, its TLS
// goroutines and workers blocked in a lookup or a dial, plus 2 s to close
// the metrics listener and the stores. Past it the process exits anyway
// (status 0, as after any drain; the log says so), leaving what still runs
// to the exit.
const stopGrace = loop.StopGrace + 2*time.Second

type started struct {
	app *app
	err error
}

// serve runs the proxy until SIGTERM or SIGINT, reloading on SIGHUP. The
// signals are already registered (run); start runs beside them, so a
// SIGHUP during start-up is applied once started (one reload for any
// number) and a SIGTERM during start-up stops it cleanly.
func serve(o *options, explicit map[string]bool, log *slog.Logger, sigs <-chan os.Signal) error {
	done := make(chan started, 1)
	go func() {
		a, err := start(o, explicit, log)
		done <- started{a, err}
	}()
	hup := false
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				log.Info("SIGHUP during start-up: reloading once started")
				hup = true
				continue
			}
			log.Info("stopping during start-up", "signal", sig.String())
			return stopWithin(o.drainTimeout, func(ctx context.Context) error { return stopStarting(ctx, done, log) })
		case s := <-done:
			if s.err != nil {
				return s.err
			}
			if hup {
				s.app.reload()
			}
			return wait(s.app, o.drainTimeout, log, sigs)
		}
	}
}

// wait serves signals for the running app.
func wait(a *app, drain time.Duration, log *slog.Logger, sigs <-chan os.Signal) error {
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			a.reload()
			continue
		}
		log.Info("draining", "signal", sig.String())
		// docs/contract.md: SIGTERM ends sessions by --drain-timeout and exits 0,
		// also when some were left at the timeout or the bound cut the stop
		// short; the log says which.
		if err := stopWithin(drain, a.stop); err != nil {
			log.Warn("drain incomplete", "err", err.Error())
		}
		return nil
	}
	return nil
}

// stopStarting waits for start-up to end within ctx, then stops the app.
// Start-up still under way when ctx ends is left to the process exit: it
// serves nobody yet.
func stopStarting(ctx context.Context, done <-chan started, log *slog.Logger) error {
	select {
	case s := <-done:
		if s.err != nil {
			return s.err
		}
		return s.app.stop(ctx)
	case <-ctx.Done():
		log.Warn("start-up still under way after --drain-timeout; exiting without it")
		return nil
	}
}

// stopWithin runs stop with --drain-timeout as its context and returns its
// result, or an error once drain plus stopGrace has passed (stop is then
// left running: the process is about to exit).
func stopWithin(drain time.Duration, stop func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	res := make(chan error, 1)
	go func() { res <- stop(ctx) }()
	bound := time.NewTimer(drain + stopGrace)
	defer bound.Stop()
	select {
	case err := <-res:
		return err
	case <-bound.C:
		return fmt.Errorf("stopping took longer than --drain-timeout %s + %s; exiting with it unfinished", drain, stopGrace)
	}
}
