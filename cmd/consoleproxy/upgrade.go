package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cloudflare/tableflip"
	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/cmd/consoleproxy/admin"
	"github.com/consoleproxy/consoleproxy/loop"
)

// SIGUSR2 is a binary upgrade without downtime (CONTRACT.md "Signals"),
// built on github.com/cloudflare/tableflip (DECISIONS.md says why): the
// process starts the binary at its own path (os.Args) with the same flags
// and environment, hands it every listener (the WebSocket listener's
// SO_REUSEPORT sockets, one per event loop; --metrics-listen; a TCP or unix
// --admin-listen) as inherited descriptors, and waits until the new process
// reports ready (it has started and serves on them) or --upgrade-timeout
// passes. Ready, the old process stops accepting and drains (loop.Handover);
// a new process that exits or does not report ready in time is killed and
// the old one goes on serving.

// upgrade holds the listeners a process inherited and hands its own on.
// nil is a process without upgrades (the in-process tests): every method
// then listens afresh.
type upgrade struct {
	flip *tableflip.Upgrader
	log  *slog.Logger
	pid  string // --pid-file
}

// newUpgrade reads what the process before handed over (nothing for a
// first start). Once per process: tableflip allows one Upgrader.
func newUpgrade(o *options, log *slog.Logger) (*upgrade, error) {
	if o.upgradeTimeout <= 0 {
		return nil, errors.New("--upgrade-timeout must be positive")
	}
	f, err := tableflip.New(tableflip.Options{PIDFile: o.pidFile, UpgradeTimeout: o.upgradeTimeout})
	if err != nil {
		return nil, fmt.Errorf("binary upgrade: %w", err)
	}
	if f.HasParent() {
		log.Info("binary upgrade: started by the process before, taking over its listeners")
	}
	return &upgrade{flip: f, log: log, pid: o.pidFile}, nil
}

// listenTCP is a TCP listener on addr: the one inherited under that
// address, or a new one that the next process will inherit.
func (u *upgrade) listenTCP(addr string) (net.Listener, error) {
	if u == nil {
		return net.Listen("tcp", addr)
	}
	return u.flip.Listen("tcp", addr)
}

// listenAdmin is the admin API's listener (admin.Listen's rules):
// inherited, or opened and handed on. A unix socket is left in place when
// the listener closes after a hand-over (the next process serves it) and
// removed on a stop without one (ready.stop).
func (u *upgrade) listenAdmin(spec string) (net.Listener, error) {
	if u == nil {
		return admin.Listen(spec)
	}
	network, key := "tcp", "admin "+spec
	if path, ok := strings.CutPrefix(spec, "unix:"); ok {
		network, key = "unix", path
	}
	ln, err := u.flip.Listener(network, key)
	if ln != nil || err != nil {
		return ln, err
	}
	ln, err = admin.Listen(spec)
	if err != nil {
		return nil, err
	}
	l, ok := ln.(tableflip.Listener)
	if !ok {
		ln.Close()
		return nil, fmt.Errorf("admin listener %T cannot be handed over", ln)
	}
	if err := u.flip.AddListener(network, key, l); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// listenName names the n-th socket of --listen among the handed-over files:
// a new --listen value inherits nothing.
func listenName(listen string, n int) string { return "listen " + listen + " #" + strconv.Itoa(n) }

// startServer starts srv on the sockets of --listen handed over by the
// process before, else on new ones, and registers them for the next one.
func (u *upgrade) startServer(srv *loop.Server, listen string) error {
	if u == nil {
		return srv.Start()
	}
	fds, err := u.inherited(listen)
	if err != nil {
		return err
	}
	if len(fds) > 0 {
		u.log.Info("binary upgrade: listening on the inherited sockets", "listen", listen, "sockets", len(fds))
		err = srv.StartInherited(fds)
	} else {
		err = srv.Start()
	}
	if err != nil {
		return err
	}
	return u.handOn(srv, listen, len(fds))
}

// maxListenSockets bounds the inherited --listen sockets read (gnet has at
// most one per event loop, and at most 2^16 loops).
const maxListenSockets = 1 << 16

// inherited returns the --listen sockets the process before handed over,
// in loop order, as descriptors the caller owns.
func (u *upgrade) inherited(listen string) ([]int, error) {
	var fds []int
	for n := 0; n < maxListenSockets; n++ {
		f, err := u.flip.File(listenName(listen, n))
		if err == nil && f == nil {
			break
		}
		var fd int
		if err == nil {
			fd, err = dupFile(f)
			f.Close()
		}
		if err != nil {
			closeAll(fds)
			return nil, fmt.Errorf("inherited listener: %w", err)
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

// dupFile duplicates f's descriptor without os.File.Fd, which would make
// the open file (shared with the other process) blocking.
func dupFile(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(raw uintptr) { fd, derr = unix.FcntlInt(raw, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	return fd, derr
}

func closeAll(fds []int) {
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
}

// handOn registers srv's sockets past the first inherited ones (those are
// registered already) for the next process.
func (u *upgrade) handOn(srv *loop.Server, listen string, inherited int) error {
	fds, err := srv.ListenerFDs()
	if err != nil {
		return err
	}
	defer closeAll(fds)
	for n := inherited; n < len(fds); n++ {
		f := os.NewFile(uintptr(fds[n]), listenName(listen, n))
		err := u.flip.AddFile(listenName(listen, n), f)
		fds[n] = -1
		f.Close()
		if err != nil {
			return fmt.Errorf("hand-over of listener %d: %w", n, err)
		}
	}
	return nil
}

// handedOver reports a process started by a binary upgrade.
func (u *upgrade) handedOver() bool { return u != nil && u.flip.HasParent() }

// parentGone reports that the process before has exited (true if none).
func (u *upgrade) parentGone() bool {
	if !u.handedOver() {
		return true
	}
	// A moment's wait: an exited parent's result is there at once.
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	return u.flip.WaitForParent(ctx) != context.DeadlineExceeded
}

// ready tells the process before (if any) that this one serves, writes
// --pid-file (atomically: a temporary file renamed over it) and tells
// systemd, if it runs a first process, that it serves.
func (u *upgrade) ready() error {
	if u == nil {
		return nil
	}
	if err := u.flip.Ready(); err != nil {
		return err
	}
	u.notifyReady()
	return nil
}

// start runs the hand-over: it returns nil once the new process serves,
// and an error if it could not start, exited or was not ready within
// --upgrade-timeout (it is then killed; this process serves on).
func (u *upgrade) start() error {
	if u == nil {
		return errors.New("binary upgrade is not available in this process")
	}
	return u.flip.Upgrade()
}

// stop is the end of a process that did not hand over: no upgrade may
// start any more (one under way is killed), a unix admin socket is removed,
// and so is --pid-file if it still names this process.
func (u *upgrade) stop() {
	if u == nil {
		return
	}
	u.flip.Stop()
	if u.pid == "" {
		return
	}
	if b, err := os.ReadFile(u.pid); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
		if err := os.Remove(u.pid); err != nil {
			u.log.Warn("removing --pid-file", "err", err.Error())
		}
	}
}
