package main

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// Under systemd (Type=notify, NotifyAccess=all; packaging/consoleproxy.service)
// a process that serves says so with READY=1 and names itself the unit's
// main process with MAINPID=: after a binary upgrade that is the new
// process, so that systemd does not take the old one's exit for the
// service's end (and kill the new one with it). Without NOTIFY_SOCKET
// (not under systemd, or another Type=) nothing is sent.

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

// readyState is what a process that serves tells systemd.
func readyState() string { return fmt.Sprintf("READY=1\nMAINPID=%d", os.Getpid()) }
