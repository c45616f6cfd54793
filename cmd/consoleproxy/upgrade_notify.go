package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// Under systemd (Type=notify; packaging/consoleproxy.service) the first
// process says READY=1 once it serves. After a binary upgrade the old
// process, still the unit's main process, names the new one as the main
// process (MAINPID=, the PID the new one wrote to --pid-file) before it
// drains: systemd then does not take the old one's exit for the service's
// end (and kill the new one with it), and NotifyAccess= can stay "main"
// (the new process is not one systemd started). Without NOTIFY_SOCKET (not
// under systemd, or another Type=) nothing is sent.

// sdNotify sends state to systemd's notification socket, if any.
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if strings.HasPrefix(path, "@") { // the abstract namespace
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	return nil
}

// notifyReady tells systemd that a process it started serves; a process
// started by a binary upgrade leaves that to the process before
// (notifyHandedOver).
func (u *upgrade) notifyReady() {
	if u.handedOver() {
		return
	}
	if err := sdNotify("READY=1"); err != nil {
		u.log.Warn("systemd not told", "err", err.Error())
	}
}

// notifyHandedOver names the new process, which serves now, systemd's main
// process.
func (u *upgrade) notifyHandedOver() {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return
	}
	b, err := os.ReadFile(u.pid)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if u.pid == "" || err != nil || pid <= 0 {
		u.log.Warn("binary upgrade: systemd not told the new main PID: it is read from --pid-file", "pid_file", u.pid)
		return
	}
	if err := sdNotify(fmt.Sprintf("MAINPID=%d", pid)); err != nil {
		u.log.Warn("binary upgrade: systemd not told the new main PID", "err", err.Error())
	}
}
