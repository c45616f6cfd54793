//go:build linux

package proc

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// A process starts once Ready holds, stops on its signal, and one that
// exits during start-up is reported with its log.
func TestStartStop(t *testing.T) {
	sleep := testutil.NeedBinary(t, "sleep")
	dir := t.TempDir()
	ready := 0
	p := &Proc{Name: "sleep", Bin: sleep, Args: []string{"60"}, Dir: dir, LogPath: filepath.Join(dir, "log"),
		StopSig: syscall.SIGTERM, Timeout: testutil.WaitBound,
		Ready: func() error {
			if ready++; ready < 3 {
				return errors.New("not yet")
			}
			return nil
		}}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if ready != 3 {
		t.Fatalf("Ready polled %d times, want 3", ready)
	}
	if err := p.Start(); err == nil {
		t.Fatal("a second Start while running succeeded")
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	bad := &Proc{Name: "false", Bin: testutil.NeedBinary(t, "false"), Dir: dir, LogPath: filepath.Join(dir, "log2"),
		Timeout: time.Minute, Ready: func() error { return errors.New("never") }}
	if err := bad.Start(); err == nil {
		t.Fatal("a process that exits at once started")
	}
}
