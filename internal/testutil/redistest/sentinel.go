package redistest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/internal/testutil/proc"
)

// Sentinel is a redis-sentinel process the test started, monitoring one
// primary under a master name.
type Sentinel struct {
	Port int
	Dir  string

	proc proc.Proc
}

// SentinelTimes bound a failover in tests: the primary is down after
// DownAfter without an answer, and a failover that stalls is retried after
// FailoverTimeout.
type SentinelTimes struct {
	DownAfter       time.Duration
	FailoverTimeout time.Duration
}

// StartSentinel starts redis-sentinel on a free port, monitoring primary as
// master with quorum. It needs the redis-sentinel binary (Debian's
// redis-sentinel package; scripts/deps.sh installs it).
func StartSentinel(master string, primary *Server, quorum int, times SentinelTimes) (*Sentinel, error) {
	bin, err := testutil.LookBinary("redis-sentinel", "/usr/sbin", "/usr/bin")
	if err != nil {
		return nil, err // wraps testutil.ErrNotInstalled: testutil.Need skips
	}
	dir, err := os.MkdirTemp("", "redistest-sentinel-")
	if err != nil {
		return nil, err
	}
	s := &Sentinel{Dir: dir}
	if s.Port, err = testutil.PickPort(); err == nil {
		conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\n"+
			"sentinel monitor %s 127.0.0.1 %d %d\n"+
			"sentinel down-after-milliseconds %s %d\n"+
			"sentinel failover-timeout %s %d\n"+
			"sentinel parallel-syncs %s 1\n",
			s.Port, dir, master, primary.Port, quorum,
			master, times.DownAfter.Milliseconds(), master, times.FailoverTimeout.Milliseconds(), master)
		if primary.Password != "" {
			conf += fmt.Sprintf("sentinel auth-pass %s %s\n", master, primary.Password)
		}
		path := filepath.Join(dir, "sentinel.conf")
		if err = os.WriteFile(path, []byte(conf), 0o600); err == nil {
			probe := &Server{Port: s.Port}
			s.proc = proc.Proc{Name: "redis-sentinel", Bin: bin, Args: []string{path}, Dir: dir,
				LogPath: filepath.Join(dir, "sentinel.log"), Ready: probe.ping, Timeout: startTimeout}
			err = s.proc.Start()
		}
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// Addr is host:port.
func (s *Sentinel) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// Close stops the sentinel by its PID and removes its directory.
func (s *Sentinel) Close() error {
	_ = s.proc.Stop()
	return os.RemoveAll(s.Dir)
}

// LogTail is the end of the sentinel's log (for a failed test).
func (s *Sentinel) LogTail() string { return s.proc.LogTail() }
