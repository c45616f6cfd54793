//go:build linux

// Package proc runs a server process for tests (a database, Redis): in
// its own directory, with its output in a log file, killed with its parent
// (Pdeathsig), stopped by its PID. It is a test helper; nothing in the proxy
// imports it.
package proc

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// Proc is a server process. Set the fields, then Start; Stop and Start may
// be called in turn (an outage in the middle of a test).
type Proc struct {
	Name    string              // for errors: "mariadb", "redis-server", …
	Bin     string              // the executable
	Args    []string            // its arguments
	Dir     string              // its working directory
	LogPath string              // standard output and error go here
	Cred    *syscall.Credential // nil: run as ourselves
	StopSig syscall.Signal      // how Stop asks it to end; 0 means SIGKILL
	Ready   func() error        // polled after the start until it returns nil
	Timeout time.Duration       // bounds the start-up and the stop

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

// Start starts the process and waits until Ready holds.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s: already running", p.Name)
	}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o666)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = p.Dir, logf, logf
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "LC_ALL=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: p.Cred}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(p.exited)
	return p.waitReady()
}

// waitReady polls Ready until it holds, the process exits or the timeout
// passes. Must hold p.mu.
func (p *Proc) waitReady() error {
	exited := false
	err := testutil.CheckWithin(p.Timeout, func() error {
		err := p.Ready()
		if err != nil {
			select {
			case <-p.exited:
				exited = true
				return nil // stop polling: it will never be ready
			default:
			}
		}
		return err
	})
	switch {
	case exited:
		p.cmd = nil
		return fmt.Errorf("%s exited during start-up\n%s", p.Name, p.LogTail())
	case err != nil:
		p.killLocked()
		return fmt.Errorf("%s not ready after %s: %v\n%s", p.Name, p.Timeout, err, p.LogTail())
	}
	return nil
}

// Stop ends the process (StopSig, then SIGKILL after Timeout) and waits.
func (p *Proc) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	if p.StopSig == 0 {
		p.killLocked()
		return nil
	}
	_ = p.cmd.Process.Signal(p.StopSig)
	select {
	case <-p.exited:
	case <-time.After(p.Timeout):
		p.killLocked()
		return fmt.Errorf("%s did not stop in %s", p.Name, p.Timeout)
	}
	p.cmd = nil
	return nil
}

// killLocked kills the process by its PID and waits. Must hold p.mu.
func (p *Proc) killLocked() {
	_ = p.cmd.Process.Kill()
	<-p.exited
	p.cmd = nil
}

// LogTail returns the end of the process's log, for start-up errors.
func (p *Proc) LogTail() string {
	b, _ := os.ReadFile(p.LogPath)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(bytes.TrimSpace(b))
}
