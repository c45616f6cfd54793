package wsframe

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/gobwas/ws"
)

var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d} // the key of RFC 6455 §5.7

// clientFrame builds a masked client frame: what a browser sends.
func clientFrame(fin bool, op ws.OpCode, payload []byte) []byte {
	return rawFrame(ws.Header{Fin: fin, OpCode: op, Masked: true, Mask: testMask, Length: int64(len(payload))}, payload)
}

// rawFrame encodes any header followed by payload, masked with h.Mask if
// h.Masked. payload is copied.
func rawFrame(h ws.Header, payload []byte) []byte {
	var b [MaxHeaderSize]byte
	n := PutHeader(b[:], h)
	out := append(b[:n:n], payload...)
	if h.Masked {
		Unmask(out[n:], h.Mask, 0)
	}
	return out
}

func cat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

// transcript is a normalised record of what a parser yielded: whole messages
// and control frames, then the error's close code. Pieces of a message are
// joined, and a message cut by an error is dropped, so that any split of the
// same input gives the same transcript.
type transcript struct {
	items []string
	cur   []byte
	err   error
}

func (t *transcript) add(ev Event) {
	switch ev.Kind {
	case Control:
		t.items = append(t.items, fmt.Sprintf("ctl %d %q", ev.OpCode, ev.Payload))
	case Data:
		t.cur = append(t.cur, ev.Payload...)
		if ev.MessageEnd {
			t.items = append(t.items, fmt.Sprintf("msg %d %q", ev.OpCode, t.cur))
			t.cur = t.cur[:0]
		}
	}
}

func (t *transcript) String() string {
	code := ws.StatusCode(0)
	var pe *ProtocolError
	if errors.As(t.err, &pe) {
		code = pe.Code
	}
	return fmt.Sprintf("%q err=%d", t.items, code)
}

// parseSplit feeds input to a fresh parser in pieces cut at the given
// offsets (clamped, in order) and returns the transcript. input is copied.
func parseSplit(cfg Config, input []byte, cuts ...int) *transcript {
	buf := append([]byte(nil), input...)
	p := NewParser(cfg)
	t := &transcript{}
	prev := 0
	cuts = append(cuts, len(buf))
	for _, c := range cuts {
		c = max(prev, min(c, len(buf)))
		if !feed(p, t, buf[prev:c]) {
			break
		}
		prev = c
	}
	return t
}

// feed runs p over chunk until it is consumed or fails.
func feed(p *Parser, t *transcript, chunk []byte) bool {
	for len(chunk) > 0 {
		ev, n, err := p.Next(chunk)
		if err != nil {
			t.err = err
			return false
		}
		t.add(ev)
		chunk = chunk[n:]
	}
	return true
}

// everyByte returns cuts that feed input one byte at a time.
func everyByte(input []byte) []int {
	cuts := make([]int, len(input))
	for i := range cuts {
		cuts[i] = i + 1
	}
	return cuts
}
