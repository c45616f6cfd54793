//go:build linux

package relay

import (
	"net"
	"testing"

	"github.com/consoleproxy/consoleproxy/wsframe"
)

// A full host read, framed, fits one TCP segment on loopback (IPv4 and
// IPv6, timestamps on, as Linux has them by default): a frame one byte too
// long for it goes out as a full segment and a sliver. The largest segment
// is the loopback interface's MTU less the IP header, the TCP header and
// the timestamp option; what a stream reaches below it (TCP_MAXSEG after a
// run) depends on the windows the machine's buffers let it offer, so the
// bound is taken from the interface, which is what the read size is cut to.
func TestFullReadFitsLoopbackSegment(t *testing.T) {
	frame := wsframe.HeaderSize(DefaultReadSize) + DefaultReadSize
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	mtu := 0
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback != 0 && ifc.Flags&net.FlagUp != 0 {
			mtu = ifc.MTU
		}
	}
	if mtu == 0 {
		t.Fatal("no loopback interface is up")
	}
	const tcpHeader, timestamps = 20, 12
	for _, family := range []struct {
		name     string
		ipHeader int
	}{{"IPv4", 20}, {"IPv6", 40}} {
		if mss := mtu - family.ipHeader - tcpHeader - timestamps; frame > mss {
			t.Errorf("%s: a full read makes a %d-byte frame, over the %d-byte segment of a %d-byte MTU", family.name, frame, mss, mtu)
		}
	}
	// The old read size, 64 KiB, does not fit (the reason for the cut).
	if old := wsframe.HeaderSize(64<<10) + 64<<10; old <= mtu-40-tcpHeader-timestamps {
		t.Errorf("a %d-byte frame fits the %d-byte MTU: the bound above checks nothing", old, mtu)
	}
}
