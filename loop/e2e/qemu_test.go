//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/loop"
)

// qemuWait bounds how long a test waits for QEMU's console to say
// something: TCG on a loaded 2-core machine is slow, and a hung guest must
// fail the test, not hang it.
const qemuWait = 90 * time.Second

// startQEMU starts qemu-system-x86_64 under TCG with no disk and no network,
// plus args (the console under test). With wait set it returns once QEMU
// says it waits for its console's first connection (a chardev with
// wait=on): QEMU starts the guest only then, so no byte of the guest's
// output is lost before the proxy connects. The process is killed at the end
// of the test.
func startQEMU(t *testing.T, wait bool, args ...string) {
	t.Helper()
	bin := testutil.NeedBinary(t, "qemu-system-x86_64") // Debian's qemu-system-x86
	base := []string{"-machine", "pc,accel=tcg,graphics=off", "-m", "32", "-display", "none",
		"-nic", "none", "-monitor", "none", "-nodefaults", "-no-user-config"}
	cmd := exec.Command(bin, append(base, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	if !wait {
		go func() { _, _ = io.Copy(io.Discard, stderr) }()
		return
	}
	ready := make(chan string, 1)
	go func() {
		var seen strings.Builder
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			seen.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "waiting for connection") {
				ready <- ""
				_, _ = io.Copy(io.Discard, stderr)
				return
			}
		}
		ready <- seen.String()
	}()
	select {
	case out := <-ready:
		if out != "" {
			t.Fatalf("qemu exited before listening:\n%s", out)
		}
	case <-time.After(qemuWait):
		t.Fatal("qemu did not start listening")
	}
}

// ansi matches the terminal control sequences SeaBIOS's serial console
// writes between characters.
var ansi = regexp.MustCompile("\x1b(\\[[0-9;?]*[A-Za-z]|c)")

// readUntil reads console bytes from c until their text, with terminal
// control sequences removed, contains want; it returns that text.
func readUntil(t *testing.T, c *wsClient, want string) string {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(qemuWait))
	defer func() { _ = c.conn.SetReadDeadline(time.Time{}) }()
	var raw []byte
	for {
		m, err := c.next()
		if err != nil || m.op == ws.OpClose {
			t.Fatalf("waiting for %q: %v %v; the console said %q", want, err, m.op, ansi.ReplaceAll(raw, nil))
		}
		if m.op != ws.OpBinary {
			continue
		}
		raw = append(raw, m.payload...)
		if text := string(ansi.ReplaceAll(raw, nil)); strings.Contains(text, want) {
			return text
		}
	}
}

// nova-serialproxy's job: QEMU's serial port as a TCP socket behind a
// --console-type serial listener. SeaBIOS writes its banner to the serial
// port (graphics=off) and offers its boot menu; the Escape key typed through
// the proxy reaches the serial port and the guest answers with the menu. A
// novnc token is refused on this listener before QEMU is ever reached.
func TestSerialQEMU(t *testing.T) {
	port := testutil.FreePort(t)
	startQEMU(t, true, "-boot", "menu=on,splash-time=60000",
		"-serial", "tcp:127.0.0.1:"+strconv.Itoa(port)+",server=on,wait=on")
	p := startProxy(t, func(cfg *loop.Config) { cfg.ConsoleType = "serial" })

	vnc := dial(t, p.addr, req{token: p.mint(port, nil)})
	if vnc.resp.StatusCode != 403 {
		t.Fatalf("a novnc token on the serial listener: %d, want 403", vnc.resp.StatusCode)
	}
	c := open(t, p.addr, req{protocol: "binary", token: p.mint(port, func(r *record) { r.ConsoleType = "serial" })})
	if text := readUntil(t, c, "Press ESC for boot menu"); !strings.Contains(text, "SeaBIOS") {
		t.Fatalf("no BIOS banner on the serial console: %q", text)
	}
	c.send(ws.OpBinary, []byte{0x1b})
	readUntil(t, c, "Select boot device")
}

// nova-spicehtml5proxy's job: QEMU's SPICE server (no ticketing) behind a
// --console-type spice-html5 listener. The client sends a SPICE link message
// for the main channel and gets the server's link reply, magic REDQ and
// protocol 2, with no error, through the proxy.
func TestSpiceQEMU(t *testing.T) {
	port := testutil.FreePort(t)
	startQEMU(t, false, "-spice", "port="+strconv.Itoa(port)+",addr=127.0.0.1,disable-ticketing=on",
		"-serial", "none")
	p := startProxy(t, func(cfg *loop.Config) { cfg.ConsoleType = "spice-html5" })
	var c *wsClient
	testutil.WaitFor(t, "QEMU's SPICE port", func() bool { // QEMU listens on SPICE's port once the machine is set up
		r := dial(t, p.addr, req{protocol: "binary", token: p.mint(port, func(r *record) { r.ConsoleType = "spice-html5" })})
		if r.resp.StatusCode == 101 {
			c = r
		}
		return c != nil
	})
	c.send(ws.OpBinary, spiceLinkMess())
	_ = c.conn.SetReadDeadline(time.Now().Add(qemuWait))
	reply := c.readData(16 + 4)
	if string(reply[:4]) != "REDQ" {
		t.Fatalf("no SPICE link header: %q", reply[:4])
	}
	major, size := binary.LittleEndian.Uint32(reply[4:]), binary.LittleEndian.Uint32(reply[12:])
	if major != 2 || size < 4+162 {
		t.Fatalf("SPICE link header: major %d, size %d", major, size)
	}
	if code := binary.LittleEndian.Uint32(reply[16:]); code != 0 {
		t.Fatalf("SPICE link error %d", code)
	}
}

// spiceLinkMess is a SpiceLinkHeader (magic, major 2, minor 2, size) and a
// SpiceLinkMess for the main channel with no capabilities (spice-protocol's
// protocol.h; all little-endian, packed).
func spiceLinkMess() []byte {
	var msg bytes.Buffer
	le := func(v any) { _ = binary.Write(&msg, binary.LittleEndian, v) }
	msg.WriteString("REDQ")
	le([]uint32{2, 2, 18})
	le(uint32(0))          // connection_id: a new session
	le([]uint8{1, 0})      // channel_type main, channel_id 0
	le([]uint32{0, 0, 18}) // no common or channel caps; caps_offset
	return msg.Bytes()
}
