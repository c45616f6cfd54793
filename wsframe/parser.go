package wsframe

import "github.com/gobwas/ws"

// Default limits. A console client sends keystrokes, pointer events and the
// odd clipboard paste; 1 MiB is generous for both and keeps a hostile client's
// single message from being unbounded. Data is streamed, so these limits are
// about policy, not memory: the parser never buffers a data payload.
const (
	DefaultMaxFrameSize   = 1 << 20
	DefaultMaxMessageSize = 1 << 20
)

// Config sets a Parser's limits and policy. The zero value takes the defaults
// and accepts text and binary.
type Config struct {
	MaxFrameSize   int64 // payload bytes of one frame; 0 means DefaultMaxFrameSize
	MaxMessageSize int64 // payload bytes of one message; 0 means DefaultMaxMessageSize
	RefuseText     bool  // text messages are ErrUnsupportedData (1003)
	RefuseBinary   bool  // binary messages are ErrUnsupportedData (1003)
	Client         bool  // parse server frames: unmasked is required
}

func (c Config) withDefaults() Config {
	if c.MaxFrameSize <= 0 {
		c.MaxFrameSize = DefaultMaxFrameSize
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	return c
}

// Kind says what an Event carries.
type Kind uint8

// Event kinds.
const (
	None    Kind = iota // nothing yet: feed more bytes
	Data                // a piece of a text or binary message
	Control             // a whole ping, pong or close frame
)

// Event is what the parser yields.
//
// For Data, OpCode is the message's opcode (OpText or OpBinary, also for its
// continuation frames) and Payload is an unmasked piece of the caller's
// buffer: borrowed, valid while that buffer is. For Control, Payload is the
// whole unmasked control payload held in the Parser: valid until the next call.
type Event struct {
	Kind         Kind
	OpCode       ws.OpCode
	Payload      []byte
	MessageStart bool // first event of its message
	MessageEnd   bool // last event of its message (a final frame complete)
}

// Parser is an incremental RFC 6455 frame parser: fed whatever bytes have
// arrived, one at a time if need be, it consumes them and yields events. It
// enforces every rule a server must (masking, RSV bits, opcodes, control frame
// rules, fragmentation, close codes, UTF-8 across fragments, size limits) and
// reports each violation as a *ProtocolError carrying the close code.
//
// Data payloads are unmasked in place in the caller's buffer and yielded in
// pieces as they arrive; only headers (<= 14 bytes) and control payloads
// (<= 125 bytes) are copied into the Parser. It does not allocate. A Parser is
// not safe for concurrent use; after an error it stays failed until Reset.
type Parser struct {
	cfg Config
	err error

	hdr  [MaxHeaderSize]byte // the header being collected
	hn   int                 // bytes of it so far
	h    ws.Header           // the current frame, once its header is complete
	left int64               // payload bytes of the current frame not yet seen
	mpos int                 // mask key position
	in   bool                // inside a frame's payload

	ctl  [MaxControlPayload]byte // the current control payload
	ctln int

	frag   bool      // inside a fragmented message
	msgOp  ws.OpCode // opcode of the current message
	msgLen int64     // payload bytes of the current message so far
	start  bool      // the next data event starts a message
	text   utf8Check
	closed bool // a close frame was received
}

// NewParser returns a parser with cfg.
func NewParser(cfg Config) *Parser {
	p := &Parser{}
	p.Reset(cfg)
	return p
}

// Reset makes p ready for a new connection with cfg.
func (p *Parser) Reset(cfg Config) {
	*p = Parser{cfg: cfg.withDefaults()}
}

// Closed reports whether a close frame has been received.
func (p *Parser) Closed() bool { return p.closed }

// Next consumes bytes from the front of buf and returns the number consumed
// and at most one event. Call it again with buf[n:] until buf is empty; an
// event of Kind None with n == len(buf) means more bytes are needed. Data
// payload bytes are unmasked in place in buf. err is a *ProtocolError.
func (p *Parser) Next(buf []byte) (ev Event, n int, err error) {
	if p.err != nil {
		return ev, 0, p.err
	}
	if !p.in {
		n = p.collectHeader(buf)
		if !p.in {
			if p.err != nil {
				return ev, n, p.err
			}
			return ev, n, nil
		}
		if p.left > 0 {
			// The payload continues in buf[n:]; the caller calls again.
			if n < len(buf) {
				ev, m, err := p.payload(buf[n:])
				return ev, n + m, err
			}
			return ev, n, nil
		}
		ev, err = p.finishEmpty()
		return ev, n, err
	}
	return p.payload(buf)
}

// collectHeader copies header bytes from buf into p.hdr and, once the header
// is whole, validates it and enters the frame.
func (p *Parser) collectHeader(buf []byte) int {
	if p.hn == 0 && len(buf) >= 2 && len(buf) >= headerLen(buf[1]) {
		return p.enterFrom(buf[:headerLen(buf[1])])
	}
	n := 0
	for n < len(buf) {
		if p.hn < 2 {
			p.hdr[p.hn] = buf[n]
			p.hn++
			n++
			continue
		}
		need := headerLen(p.hdr[1])
		if p.hn < need {
			k := copy(p.hdr[p.hn:need], buf[n:])
			p.hn += k
			n += k
		}
		break
	}
	if p.hn < 2 || p.hn < headerLen(p.hdr[1]) {
		return n
	}
	p.enterFrom(p.hdr[:p.hn])
	return n
}

// enterFrom decodes and checks the complete header b and enters its frame;
// it returns len(b), the bytes the header took.
func (p *Parser) enterFrom(b []byte) int {
	h, err := decodeHeader(b)
	if err == nil {
		err = p.check(h)
	}
	if err != nil {
		p.err = err
		return len(b)
	}
	p.enter(h)
	return len(b)
}

// check applies the header rules of RFC 6455 §5.2-§5.5 and the limits.
func (p *Parser) check(h ws.Header) error {
	switch {
	case p.closed:
		return ErrAfterClose
	case h.Rsv != 0:
		return ErrReservedBits
	case h.OpCode.IsReserved():
		return ErrReservedOpcode
	case !h.Masked && !p.cfg.Client:
		return ErrUnmasked
	case h.Masked && p.cfg.Client:
		return ErrMasked
	case h.OpCode.IsControl():
		return checkControl(h)
	case h.OpCode == ws.OpContinuation && !p.frag:
		return ErrUnexpectedContinuation
	case h.OpCode != ws.OpContinuation && p.frag:
		return ErrExpectedContinuation
	case h.OpCode == ws.OpText && p.cfg.RefuseText, h.OpCode == ws.OpBinary && p.cfg.RefuseBinary:
		return ErrUnsupportedData
	case h.Length > p.cfg.MaxFrameSize:
		return ErrFrameTooBig
	case p.sizeSoFar(h)+h.Length > p.cfg.MaxMessageSize:
		return ErrMessageTooBig
	}
	return nil
}

// sizeSoFar is the payload size of the message a data frame h belongs to,
// before h.
func (p *Parser) sizeSoFar(h ws.Header) int64 {
	if h.OpCode == ws.OpContinuation {
		return p.msgLen
	}
	return 0
}

func checkControl(h ws.Header) error {
	if !h.Fin {
		return ErrControlFragmented
	}
	if h.Length > MaxControlPayload {
		return ErrControlTooLong
	}
	return nil
}

// enter starts the payload of a validated frame h.
func (p *Parser) enter(h ws.Header) {
	p.h, p.left, p.mpos, p.in, p.hn = h, h.Length, 0, true, 0
	if h.OpCode.IsControl() {
		p.ctln = 0
		return
	}
	if h.OpCode != ws.OpContinuation {
		p.msgOp, p.msgLen, p.start, p.text = h.OpCode, 0, true, utf8Check{}
	}
	p.msgLen += h.Length
	p.frag = !h.Fin
}

// finishEmpty completes a frame with no payload.
func (p *Parser) finishEmpty() (Event, error) {
	if p.h.OpCode.IsControl() {
		return p.finishControl()
	}
	return p.dataEvent(nil)
}

// payload consumes payload bytes of the current frame from buf.
func (p *Parser) payload(buf []byte) (ev Event, n int, err error) {
	k := len(buf)
	if int64(k) > p.left {
		k = int(p.left)
	}
	if p.h.OpCode.IsControl() {
		copy(p.ctl[p.ctln:], buf[:k])
		p.unmask(p.ctl[p.ctln : p.ctln+k])
		p.ctln += k
		p.left -= int64(k)
		if p.left > 0 {
			return ev, k, nil
		}
		ev, err = p.finishControl()
		return ev, k, err
	}
	if k == 0 {
		return ev, 0, nil
	}
	piece := buf[:k]
	p.unmask(piece)
	p.left -= int64(k)
	ev, err = p.dataEvent(piece)
	return ev, k, err
}

func (p *Parser) unmask(b []byte) {
	if p.h.Masked {
		p.mpos = Unmask(b, p.h.Mask, p.mpos)
	}
}

// dataEvent yields piece, already unmasked, checking text as it goes.
func (p *Parser) dataEvent(piece []byte) (Event, error) {
	ev := Event{Kind: Data, OpCode: p.msgOp, Payload: piece, MessageStart: p.start}
	p.start = false
	if p.left == 0 {
		p.in = false
		ev.MessageEnd = p.h.Fin
	}
	if p.msgOp == ws.OpText {
		if !p.text.write(piece) || (ev.MessageEnd && !p.text.complete()) {
			p.err = ErrInvalidUTF8
			return Event{}, p.err
		}
	}
	return ev, nil
}

// finishControl validates and yields a complete control frame.
func (p *Parser) finishControl() (Event, error) {
	p.in = false
	pl := p.ctl[:p.ctln]
	if p.h.OpCode == ws.OpClose {
		if err := checkClose(pl); err != nil {
			p.err = err
			return Event{}, err
		}
		p.closed = true
	}
	return Event{Kind: Control, OpCode: p.h.OpCode, Payload: pl, MessageStart: true, MessageEnd: true}, nil
}
