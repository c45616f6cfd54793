package wsframe

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// RFC 6455 §5.7, byte for byte.
func TestRFC6455Examples(t *testing.T) {
	big256 := bytes.Repeat([]byte{'x'}, 256)
	big64k := bytes.Repeat([]byte{'y'}, 65536)
	tests := []struct {
		name   string
		client bool // the example is a server frame: parse it as a client
		wire   []byte
		want   string
	}{
		{"single-frame unmasked text", true,
			[]byte{0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}, `["msg 1 \"Hello\""] err=0`},
		{"single-frame masked text", false,
			[]byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}, `["msg 1 \"Hello\""] err=0`},
		{"fragmented unmasked text", true,
			[]byte{0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f}, `["msg 1 \"Hello\""] err=0`},
		{"unmasked ping", true,
			[]byte{0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}, `["ctl 9 \"Hello\""] err=0`},
		{"masked pong", false,
			[]byte{0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}, `["ctl 10 \"Hello\""] err=0`},
		{"256 bytes binary", true,
			append([]byte{0x82, 0x7E, 0x01, 0x00}, big256...), `["msg 2 \"` + string(big256) + `\""] err=0`},
		{"64KiB binary", true,
			append([]byte{0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}, big64k...), `["msg 2 \"` + string(big64k) + `\""] err=0`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Client: tc.client, MaxFrameSize: 1 << 17, MaxMessageSize: 1 << 17}
			for _, cuts := range [][]int{nil, everyByte(tc.wire), {1}, {3, 7}} {
				if got := parseSplit(cfg, tc.wire, cuts...).String(); got != tc.want {
					t.Fatalf("cuts %v:\ngot  %.200s\nwant %.200s", len(cuts), got, tc.want)
				}
			}
		})
	}
}

// The encoder writes the RFC's unmasked examples byte for byte.
func TestEncoderRFC6455Examples(t *testing.T) {
	hello := []byte("Hello")
	if got := append(AppendHeader(nil, ws.OpText, 5), hello...); !bytes.Equal(got, []byte{0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}) {
		t.Fatalf("text: % x", got)
	}
	if got := AppendControl(nil, ws.OpPing, hello); !bytes.Equal(got, []byte{0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}) {
		t.Fatalf("ping: % x", got)
	}
	if got := AppendHeader(nil, ws.OpBinary, 256); !bytes.Equal(got, []byte{0x82, 0x7E, 0x01, 0x00}) {
		t.Fatalf("256: % x", got)
	}
	if got := AppendHeader(nil, ws.OpBinary, 65536); !bytes.Equal(got, []byte{0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}) {
		t.Fatalf("64k: % x", got)
	}
	for _, n := range []int{0, 125, 126, 65535, 65536, 1 << 30} {
		if got := len(AppendHeader(nil, ws.OpBinary, n)); got != HeaderSize(n) {
			t.Fatalf("HeaderSize(%d) = %d, encoded %d", n, HeaderSize(n), got)
		}
	}
	if got := AppendClose(nil, 1001, ""); !bytes.Equal(got, []byte{0x88, 0x02, 0x03, 0xe9}) {
		t.Fatalf("close: % x", got)
	}
	if got := CloseFrame(1000); !bytes.Equal(got, []byte{0x88, 0x02, 0x03, 0xe8}) {
		t.Fatalf("close frame: % x", got)
	}
	if got := CloseFrame(4000); !bytes.Equal(got, []byte{0x88, 0x02, 0x0f, 0xa0}) {
		t.Fatalf("close frame 4000: % x", got)
	}
	long := AppendClose(nil, 1000, strings.Repeat("r", 200))
	if len(long) != 2+MaxControlPayload {
		t.Fatalf("close reason not cut to fit: %d", len(long))
	}
}

func closePayload(code uint16, reason string) []byte {
	return append([]byte{byte(code >> 8), byte(code)}, reason...)
}

// Every rule a server enforces, each with a passing and a failing case.
func TestRules(t *testing.T) {
	bin := func(fin bool, op ws.OpCode, p string) []byte { return clientFrame(fin, op, []byte(p)) }
	rsv := rawFrame(ws.Header{Fin: true, Rsv: 4, OpCode: ws.OpBinary, Masked: true, Mask: testMask, Length: 1}, []byte("a"))
	unmasked := rawFrame(ws.Header{Fin: true, OpCode: ws.OpBinary, Length: 1}, []byte("a"))
	long16 := []byte{0x82, 0xFE, 0x00, 0x7D, 1, 2, 3, 4}                   // 125 in a 16-bit length
	long64 := []byte{0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4} // 65535 in a 64-bit length
	top64 := []byte{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}
	tests := []struct {
		name string
		cfg  Config
		wire []byte
		want error
	}{
		{"masked binary ok", Config{}, bin(true, ws.OpBinary, "a"), nil},
		{"unmasked refused §5.1", Config{}, unmasked, ErrUnmasked},
		{"client sees masked §5.1", Config{Client: true}, bin(true, ws.OpBinary, "a"), ErrMasked},
		{"rsv refused §5.2", Config{}, rsv, ErrReservedBits},
		{"opcode 3 reserved", Config{}, bin(true, 3, ""), ErrReservedOpcode},
		{"opcode 7 reserved", Config{}, bin(true, 7, ""), ErrReservedOpcode},
		{"opcode 0xB reserved", Config{}, bin(true, 0xB, ""), ErrReservedOpcode},
		{"opcode 0xF reserved", Config{}, bin(true, 0xF, ""), ErrReservedOpcode},
		{"ping 125 ok §5.5", Config{}, bin(true, ws.OpPing, strings.Repeat("p", 125)), nil},
		{"ping 126 refused §5.5", Config{}, bin(true, ws.OpPing, strings.Repeat("p", 126)), ErrControlTooLong},
		{"fragmented ping refused §5.5", Config{}, bin(false, ws.OpPing, "p"), ErrControlFragmented},
		{"fragmented close refused §5.5", Config{}, bin(false, ws.OpClose, ""), ErrControlFragmented},
		{"fragments ok §5.4", Config{}, cat(bin(false, ws.OpBinary, "a"), bin(false, 0, "b"), bin(true, 0, "c")), nil},
		{"ping inside fragments ok §5.4", Config{}, cat(bin(false, ws.OpText, "a"), bin(true, ws.OpPing, "x"), bin(true, 0, "c")), nil},
		{"continuation outside message §5.4", Config{}, bin(true, 0, "a"), ErrUnexpectedContinuation},
		{"continuation after final frame", Config{}, cat(bin(true, ws.OpBinary, "a"), bin(true, 0, "b")), ErrUnexpectedContinuation},
		{"new data frame inside message §5.4", Config{}, cat(bin(false, ws.OpBinary, "a"), bin(true, ws.OpBinary, "b")), ErrExpectedContinuation},
		{"non-minimal 16-bit length §5.2", Config{}, long16, ErrBadLength},
		{"non-minimal 64-bit length §5.2", Config{}, long64, ErrBadLength},
		{"64-bit length top bit §5.2", Config{}, top64, ErrBadLength},
		{"close empty ok §5.5.1", Config{}, bin(true, ws.OpClose, ""), nil},
		{"close 1000 with reason ok", Config{}, clientFrame(true, ws.OpClose, closePayload(1000, "bye ✓")), nil},
		{"close one byte §5.5.1", Config{}, bin(true, ws.OpClose, "x"), ErrBadClosePayload},
		{"close 999 §7.4.2", Config{}, clientFrame(true, ws.OpClose, closePayload(999, "")), ErrBadCloseCode},
		{"close 1004 reserved", Config{}, clientFrame(true, ws.OpClose, closePayload(1004, "")), ErrBadCloseCode},
		{"close 1005 §7.4.1", Config{}, clientFrame(true, ws.OpClose, closePayload(1005, "")), ErrBadCloseCode},
		{"close 1006 §7.4.1", Config{}, clientFrame(true, ws.OpClose, closePayload(1006, "")), ErrBadCloseCode},
		{"close 1015 §7.4.1", Config{}, clientFrame(true, ws.OpClose, closePayload(1015, "")), ErrBadCloseCode},
		{"close 1016 reserved", Config{}, clientFrame(true, ws.OpClose, closePayload(1016, "")), ErrBadCloseCode},
		{"close 2999 reserved", Config{}, clientFrame(true, ws.OpClose, closePayload(2999, "")), ErrBadCloseCode},
		{"close 3000 ok", Config{}, clientFrame(true, ws.OpClose, closePayload(3000, "")), nil},
		{"close 4999 ok", Config{}, clientFrame(true, ws.OpClose, closePayload(4999, "")), nil},
		{"close 5000 refused", Config{}, clientFrame(true, ws.OpClose, closePayload(5000, "")), ErrBadCloseCode},
		{"close 1011 ok", Config{}, clientFrame(true, ws.OpClose, closePayload(1011, "")), nil},
		{"close bad utf-8 reason §5.5.1", Config{}, clientFrame(true, ws.OpClose, closePayload(1000, "\xff")), ErrInvalidUTF8},
		{"frame after close §5.5.1", Config{}, cat(bin(true, ws.OpClose, ""), bin(true, ws.OpBinary, "a")), ErrAfterClose},
		{"text utf-8 ok §8.1", Config{}, bin(true, ws.OpText, "κόσμε"), nil},
		{"text invalid utf-8 §8.1", Config{}, bin(true, ws.OpText, "a\xc0\xafb"), ErrInvalidUTF8},
		{"text surrogate §8.1", Config{}, bin(true, ws.OpText, "\xed\xa0\x80"), ErrInvalidUTF8},
		{"text utf-8 split across fragments ok", Config{}, cat(bin(false, ws.OpText, "\xce"), bin(true, 0, "\xba")), nil},
		{"text truncated at message end", Config{}, cat(bin(false, ws.OpText, "a"), bin(true, 0, "\xce")), ErrInvalidUTF8},
		{"binary not checked for utf-8", Config{}, bin(true, ws.OpBinary, "\xff\xfe"), nil},
		{"text refused on binary session", Config{RefuseText: true}, bin(true, ws.OpText, "a"), ErrUnsupportedData},
		{"binary refused on text session", Config{RefuseBinary: true}, bin(true, ws.OpBinary, "a"), ErrUnsupportedData},
		{"frame at limit ok", Config{MaxFrameSize: 4}, bin(true, ws.OpBinary, "abcd"), nil},
		{"frame over limit", Config{MaxFrameSize: 4}, bin(true, ws.OpBinary, "abcde"), ErrFrameTooBig},
		{"message at limit ok", Config{MaxMessageSize: 4}, cat(bin(false, ws.OpBinary, "ab"), bin(true, 0, "cd")), nil},
		{"message over limit", Config{MaxMessageSize: 4}, cat(bin(false, ws.OpBinary, "ab"), bin(true, 0, "cde")), ErrMessageTooBig},
		{"limit is per message", Config{MaxMessageSize: 4}, cat(bin(true, ws.OpBinary, "abcd"), bin(true, ws.OpBinary, "abcd")), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			whole := parseSplit(tc.cfg, tc.wire)
			if !errors.Is(whole.err, tc.want) {
				t.Fatalf("err = %v, want %v", whole.err, tc.want)
			}
			if bytewise := parseSplit(tc.cfg, tc.wire, everyByte(tc.wire)...); bytewise.String() != whole.String() {
				t.Fatalf("byte at a time %s != whole %s", bytewise, whole)
			}
		})
	}
}

// Each violation maps to the close code of docs/contract.md.
func TestCloseCodes(t *testing.T) {
	want := map[*ProtocolError]ws.StatusCode{
		ErrUnmasked: 1002, ErrReservedBits: 1002, ErrReservedOpcode: 1002, ErrControlTooLong: 1002,
		ErrControlFragmented: 1002, ErrUnexpectedContinuation: 1002, ErrExpectedContinuation: 1002,
		ErrBadCloseCode: 1002, ErrUnsupportedData: 1003, ErrInvalidUTF8: 1007,
		ErrFrameTooBig: 1009, ErrMessageTooBig: 1009,
	}
	for e, code := range want {
		if e.Code != code {
			t.Errorf("%v: code %d, want %d", e, e.Code, code)
		}
	}
}

// A large payload is yielded in pieces as it arrives, without waiting for the
// whole frame, unmasked in the caller's buffer.
func TestStreamsPiecesInPlace(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789"), 1000)
	wire := clientFrame(true, ws.OpBinary, payload)
	p := NewParser(Config{})
	hdr := len(wire) - len(payload)
	ev, n, err := p.Next(wire[:hdr+100])
	if err != nil || ev.Kind != Data || n != hdr+100 || !bytes.Equal(ev.Payload, payload[:100]) || !ev.MessageStart || ev.MessageEnd {
		t.Fatalf("first piece: %+v n=%d err=%v", ev, n, err)
	}
	if &ev.Payload[0] != &wire[hdr] {
		t.Fatal("payload is not a slice of the caller's buffer")
	}
	ev, n, err = p.Next(wire[hdr+100:])
	if err != nil || n != len(payload)-100 || !bytes.Equal(ev.Payload, payload[100:]) || ev.MessageStart || !ev.MessageEnd {
		t.Fatalf("second piece: n=%d err=%v", n, err)
	}
}

// After an error the parser stays failed; Reset revives it.
func TestErrorIsSticky(t *testing.T) {
	p := NewParser(Config{})
	bad := rawFrame(ws.Header{Fin: true, OpCode: ws.OpBinary, Length: 1}, []byte("a"))
	if _, _, err := p.Next(bad); err != ErrUnmasked {
		t.Fatalf("err = %v", err)
	}
	good := clientFrame(true, ws.OpBinary, []byte("a"))
	if _, _, err := p.Next(good); err != ErrUnmasked {
		t.Fatalf("after error: %v", err)
	}
	p.Reset(Config{})
	if ev, _, err := p.Next(good); err != nil || string(ev.Payload) != "a" {
		t.Fatalf("after reset: %+v %v", ev, err)
	}
}

func TestParseClose(t *testing.T) {
	code, reason := ParseClose(closePayload(1001, "away"))
	if code != 1001 || string(reason) != "away" {
		t.Fatalf("%d %q", code, reason)
	}
	if code, _ := ParseClose(nil); code != ws.StatusNoStatusRcvd {
		t.Fatalf("empty: %d", code)
	}
}
