//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// A real browser: noVNC from Debian, served by the proxy's --web, opens a
// console of a real VNC server (x11vnc on an Xvfb display painted a known
// colour with xsetroot) through the proxy, and the known colour fills the
// console area of the screenshot. A refused token leaves the area empty.
func TestBrowserNoVNC(t *testing.T) {
	const novnc = "/usr/share/novnc"
	testutil.NeedPath(t, novnc, "noVNC")
	vncPort := startVNCDisplay(t, "#1f8a4c")
	p := startBinary(t, []string{tokenLine("browser-token", vncPort)}, "--web", novnc)
	b := startBrowser(t)

	b.page(fmt.Sprintf("http://%s/vnc_lite.html?path=%%3Ftoken%%3Dbrowser-token", p.addr))
	b.waitEval(`document.querySelector('#status') ? document.querySelector('#status').textContent : ''`,
		func(s string) bool { return bytes.Contains([]byte(s), []byte("Connected")) }, "noVNC to connect")
	rect := canvasRect(t, b)
	img := b.waitColour(rect, [3]int{0x1f, 0x8a, 0x4c}) // the first framebuffer update
	if !near(img, rect, [3]int{0x1f, 0x8a, 0x4c}) {
		t.Fatalf("the console area does not show the display's colour: centre %v", centre(img, rect))
	}

	// The same over wss://: noVNC on an https page connects with wss.
	k := newPKI(t)
	ps := startBinary(t, []string{tokenLine("browser-tls", vncPort)}, "--web", novnc, "--cert", k.certFile, "--key", k.keyFile, "--ssl-only")
	b.page(fmt.Sprintf("https://%s/vnc_lite.html?path=%%3Ftoken%%3Dbrowser-tls", ps.addr))
	b.waitEval(`document.querySelector('#status') ? document.querySelector('#status').textContent : ''`,
		func(s string) bool { return strings.Contains(s, "Connected") }, "noVNC over wss to connect")
	if img := b.waitColour(canvasRect(t, b), [3]int{0x1f, 0x8a, 0x4c}); !near(img, canvasRect(t, b), [3]int{0x1f, 0x8a, 0x4c}) {
		t.Fatal("over wss the console area does not show the display's colour")
	}
	if !strings.Contains(ps.stderr.String(), `"result":"ok"`) && !strings.Contains(metricsOf(t, ps), `consoleproxy_sessions_total{result="ok"} 1`) {
		t.Fatal("the wss session was not counted")
	}

	b.page(fmt.Sprintf("http://%s/vnc_lite.html?path=%%3Ftoken%%3Dwrong-token", p.addr))
	b.waitEval(`document.querySelector('#status') ? document.querySelector('#status').textContent : ''`,
		func(s string) bool {
			return strings.Contains(s, "closed") || strings.Contains(s, "isconnect") || strings.Contains(s, "ailed")
		}, "noVNC to give up")
	img = decodePNG(t, b.screenshot())
	if near(img, rect, [3]int{0x1f, 0x8a, 0x4c}) {
		t.Fatal("a refused token shows the console")
	}
}

// waitColour takes screenshots until rect shows colour (noVNC has drawn the
// first framebuffer update) or browserWait passes, and returns the last.
func (b *browser) waitColour(rect image.Rectangle, colour [3]int) image.Image {
	b.t.Helper()
	var img image.Image
	testutil.Eventually(browserWait, func() bool {
		img = decodePNG(b.t, b.screenshot())
		return near(img, rect, colour)
	})
	return img
}

// startVNCDisplay runs Xvfb painted colour and x11vnc on it; it returns the
// VNC port.
func startVNCDisplay(t *testing.T, colour string) int {
	t.Helper()
	display := startXvfb(t)
	run := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "DISPLAY="+display)
		if err := cmd.Start(); err != nil {
			t.Fatalf("%s: %v (scripts/deps.sh installs it)", name, err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	set := exec.Command("xsetroot", "-solid", colour)
	set.Env = append(os.Environ(), "DISPLAY="+display)
	if out, err := set.CombinedOutput(); err != nil {
		t.Fatalf("xsetroot: %v %s", err, out)
	}
	port := testutil.FreePort(t)
	run("x11vnc", "-display", display, "-rfbport", strconv.Itoa(port), "-localhost", "-nopw", "-forever", "-shared", "-quiet", "-noxdamage")
	testutil.WaitFor(t, "x11vnc", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return port
}

func metricsOf(t *testing.T, p *proc) string {
	_, body := httpGet(t, "http://"+p.metrics+"/metrics")
	return body
}

// startXvfb starts Xvfb on a display number it picks itself (-displayfd),
// so a stale lock or socket of an earlier run cannot get in the way.
func startXvfb(t *testing.T) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command("Xvfb", "-displayfd", "3", "-screen", "0", "640x400x24", "-noreset", "-nolisten", "tcp")
	cmd.ExtraFiles = []*os.File{w}
	if err := cmd.Start(); err != nil {
		t.Fatalf("Xvfb: %v (scripts/deps.sh installs it)", err)
	}
	w.Close()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	_ = r.SetReadDeadline(time.Now().Add(20 * time.Second))
	var n int
	if _, err := fmt.Fscan(r, &n); err != nil {
		t.Fatalf("Xvfb did not report its display: %v", err)
	}
	return ":" + strconv.Itoa(n)
}

func canvasRect(t *testing.T, b *browser) image.Rectangle {
	t.Helper()
	var x, y, w, h int
	s := b.eval(`(() => { const r = document.querySelector('canvas').getBoundingClientRect(); return [r.x, r.y, r.width, r.height].map(Math.round).join(' '); })()`)
	if _, err := fmt.Sscan(s, &x, &y, &w, &h); err != nil || w == 0 || h == 0 {
		t.Fatalf("no canvas: %q", s)
	}
	return image.Rect(x, y, x+w, y+h)
}

func decodePNG(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func centre(img image.Image, r image.Rectangle) [3]int {
	c := img.At((r.Min.X+r.Max.X)/2, (r.Min.Y+r.Max.Y)/2)
	cr, cg, cb, _ := c.RGBA()
	return [3]int{int(cr >> 8), int(cg >> 8), int(cb >> 8)}
}

// near reports whether nine points spread over r are all within 24 per
// channel of want (noVNC may receive JPEG-compressed tight rectangles).
func near(img image.Image, r image.Rectangle, want [3]int) bool {
	for i := 1; i <= 3; i++ {
		for j := 1; j <= 3; j++ {
			x := r.Min.X + r.Dx()*i/4
			y := r.Min.Y + r.Dy()*j/4
			cr, cg, cb, _ := img.At(x, y).RGBA()
			got := [3]int{int(cr >> 8), int(cg >> 8), int(cb >> 8)}
			for k := range got {
				if d := got[k] - want[k]; d > 24 || d < -24 {
					return false
				}
			}
		}
	}
	return true
}
