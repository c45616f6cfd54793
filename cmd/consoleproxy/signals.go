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

// handoverGrace is stopGrace for the old process of a binary upgrade: it
// may keep an embedded store up to handoverStoreWait for its handshakes,
// and its sessions still open at --drain-timeout get
// loop.HandoverCloseGrace for their close frame (1001) before the teardown.
const handoverGrace = handoverStoreWait + loop.HandoverCloseGrace + stopGrace

type started struct {
	app *app
	err error
}

// serve runs the proxy until SIGTERM or SIGINT, reloading on SIGHUP. The
// signals are already registered (run); start runs beside them, so a
// SIGHUP during start-up is applied once started (one reload for any
// number) and a SIGTERM during start-up stops it cleanly.
func serve(o *options, explicit map[string]bool, log *slog.Logger, sigs <-chan os.Signal, up *upgrade) error {
	done := make(chan started, 1)
	go func() {
		a, err := startWith(o, explicit, log, up)
		done <- started{a, err}
	}()
	hup := false
	for {
		select {
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				log.Info("SIGHUP during start-up: reloading once started")
				hup = true
				continue
			case syscall.SIGUSR2:
				log.Warn("SIGUSR2 during start-up: ignored; send it again once started")
				continue
			}
			log.Info("stopping during start-up", "signal", sig.String())
			up.stop()
			return stopWithin(o.drainTimeout, stopGrace, func(ctx context.Context) error { return stopStarting(ctx, done, log) })
		case s := <-done:
			if s.err != nil {
				return s.err
			}
			if err := up.ready(); err != nil { // the process before, if any, stops accepting now
				_ = stopWithin(o.drainTimeout, stopGrace, s.app.stop)
				return err
			}
			if hup {
				s.app.reload()
			}
			return wait(s.app, o.drainTimeout, log, sigs)
		}
	}
}

// wait serves signals for the running app: SIGHUP reloads, SIGUSR2 starts
// a binary upgrade (upgrade.go) beside the serving, SIGTERM and SIGINT
// drain and stop.
func wait(a *app, drain time.Duration, log *slog.Logger, sigs <-chan os.Signal) error {
	upgraded := make(chan error, 1)
	upgrading := false
	for {
		select {
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				a.reload()
			case syscall.SIGUSR2:
				if upgrading {
					log.Warn("SIGUSR2: a binary upgrade is already under way")
					continue
				}
				upgrading = true
				log.Info("binary upgrade: starting the new process", "binary", os.Args[0])
				go func() { upgraded <- a.up.start() }()
			default:
				log.Info("draining", "signal", sig.String())
				a.up.stop() // kills a new process still starting
				// CONTRACT.md: SIGTERM ends sessions by --drain-timeout and
				// exits 0, also when some were left at the timeout or the
				// bound cut the stop short; the log says which.
				if err := stopWithin(drain, stopGrace, a.stop); err != nil {
					log.Warn("drain incomplete", "err", err.Error())
				}
				return nil
			}
		case err := <-upgraded:
			upgrading = false
			if err != nil {
				log.Error("binary upgrade failed; this process serves on", "err", err.Error())
				continue
			}
			log.Info("binary upgrade: the new process serves; stopping accepting and draining", "drain_timeout", drain.String())
			a.up.notifyHandedOver()
			if err := stopWithin(drain, handoverGrace, a.handover); err != nil {
				log.Warn("drain incomplete", "err", err.Error())
			}
			return nil
		}
	}
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
// result, or an error once drain plus grace has passed (stop is then left
// running: the process is about to exit).
func stopWithin(drain, grace time.Duration, stop func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	res := make(chan error, 1)
	go func() { res <- stop(ctx) }()
	bound := time.NewTimer(drain + grace)
	defer bound.Stop()
	select {
	case err := <-res:
		return err
	case <-bound.C:
		return fmt.Errorf("stopping took longer than --drain-timeout %s + %s; exiting with it unfinished", drain, grace)
	}
}
