//go:build linux

package loop

import (
	"testing"
	"time"
)

// TestNextCheck: a relaying session is checked next at the earliest
// deadline it holds, at most sweepStep away and at most half the write
// timeout (a stall that starts in between); a stall being sampled is
// checked every sweep.
func TestNextCheck(t *testing.T) {
	const now = int64(1_000*time.Second + 500*time.Millisecond)
	ms := func(d int64) int64 { return now + d*int64(time.Millisecond) }
	for _, tc := range []struct {
		name string
		cfg  Config
		set  func(ss *session)
		want int64
	}{
		{"nothing due: the step", Config{WriteTimeout: 30 * time.Second}, nil, ms(1000)},
		{"no write timeout: the step", Config{}, nil, ms(1000)},
		{"write timeout below two steps bounds it", Config{WriteTimeout: time.Second}, nil, ms(500)},
		{"idle timeout due sooner", Config{WriteTimeout: 30 * time.Second, IdleTimeout: time.Second},
			func(ss *session) { ss.lastData.Store(ms(-700)) }, ms(300) + 1},
		{"token expiry due sooner", Config{WriteTimeout: 30 * time.Second},
			func(ss *session) { ss.expires.Store(1001) }, ms(500)}, // Unix seconds
		{"token expiry far off (year 9999)", Config{WriteTimeout: 30 * time.Second},
			func(ss *session) { ss.expires.Store(253402300799) }, ms(1000)},
		{"ping due sooner", Config{WriteTimeout: 30 * time.Second, PingInterval: time.Second},
			func(ss *session) { ss.lastPing.Store(ms(-600)); ss.clientSeen.Store(now) }, ms(400)},
		{"ping timeout due sooner", Config{WriteTimeout: 30 * time.Second, PingInterval: time.Second},
			func(ss *session) { ss.lastPing.Store(now); ss.clientSeen.Store(ms(-1900)) }, ms(100) + 1},
		{"a stall's sampling due sooner", Config{WriteTimeout: 4 * time.Second},
			func(ss *session) { ss.holdSince.Store(ms(-1800)) }, ms(200) + 1},
		{"a stall being sampled: every sweep", Config{WriteTimeout: 4 * time.Second},
			func(ss *session) { ss.holdSince.Store(ms(-2100)) }, 0},
		{"past deadlines are not waited for", Config{WriteTimeout: 30 * time.Second, IdleTimeout: time.Second},
			func(ss *session) { ss.lastData.Store(ms(-5000)) }, ms(1000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ss := &session{srv: &Server{cfg: tc.cfg}}
			if tc.set != nil {
				tc.set(ss)
			}
			if got := ss.nextCheck(now); got != tc.want {
				t.Fatalf("next check %+d ms, want %+d ms", (got-now)/int64(time.Millisecond), (tc.want-now)/int64(time.Millisecond))
			}
		})
	}
}

// TestCheckSchedules: check says when next for a relaying session (a ping
// sent, the next one a ping interval on) and asks for every sweep for a
// session still in its handshake.
func TestCheckSchedules(t *testing.T) {
	now := time.Unix(1000, 0)
	s := &Server{cfg: Config{Now: func() time.Time { return now }, PingInterval: 3 * time.Second, WriteTimeout: 30 * time.Second, HandshakeTimeout: 10 * time.Second}}
	fc := &fakeConn{}
	ss := &session{srv: s, c: fc, raw: fc, accepted: now.UnixNano()}
	if next := ss.check(now); next != 0 {
		t.Fatalf("handshaking session: next %d, want 0 (every sweep)", next)
	}
	ss.phase.Store(int32(phaseRelaying))
	ss.clientSeen.Store(now.UnixNano())
	ss.lastPing.Store(now.Add(-3 * time.Second).UnixNano()) // a ping is due
	next := ss.check(now)
	if ss.lastPing.Load() != now.UnixNano() || fc.OutboundBuffered() == 0 {
		t.Fatal("the due ping was not sent")
	}
	if want := now.Add(sweepStep).UnixNano(); next != want {
		t.Fatalf("next check in %v, want %v", time.Duration(next-now.UnixNano()), sweepStep)
	}
}
