//go:build linux

package loop

import (
	"testing"
	"unsafe"
)

// sessionSizeMax is the most bytes a session struct may take: Go's 640-byte
// size class. Every idle session pays for it (issue 14); what only the
// handshake needs lives in the pooled handshakeState.
const sessionSizeMax = 640

func TestSessionSize(t *testing.T) {
	if n := unsafe.Sizeof(session{}); n > sessionSizeMax {
		t.Errorf("a session takes %d bytes, more than %d", n, sessionSizeMax)
	}
}
