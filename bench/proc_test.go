package bench

import (
	"os"
	"path/filepath"
	"testing"
)

// schedstat's nanoseconds agree with stat's ticks for this process (within
// the ticks' rounding) over a stretch of CPU, and a process whose threads
// lack schedstat falls back to stat. Both are read before and after the
// stretch: stat also counts threads that exited earlier (a locked
// goroutine's, when it returns) and the live threads' schedstat does not.
func TestProcCPU(t *testing.T) {
	pid := os.Getpid()
	// both reads this process's CPU from its live threads' schedstat and
	// from stat's ticks, in seconds.
	both := func() (sched, ticks float64) {
		sched, ok := schedCPU("/proc/self/task")
		if !ok {
			t.Skip("this kernel has no schedstat")
		}
		st, ok := readStat(pid)
		if !ok {
			t.Fatal("no /proc/self/stat")
		}
		return sched, float64(st.utime+st.stime) / clockTicks
	}
	sched0, ticks0 := both()
	x := 0
	for i := 0; i < 50_000_000; i++ { // some CPU to read
		x += i % 7
	}
	if x == 0 {
		t.Fatal("unreachable")
	}
	sched, ticks := both()
	if d, dt := sched-sched0, ticks-ticks0; d <= 0 || d < dt-0.05 {
		t.Fatalf("schedstat %.3f s, stat %.3f s over the stretch", d, dt)
	}
	if cpu, ok := pidCPU(pid, false); !ok || cpu < sched {
		t.Fatalf("pidCPU %.3f (%v), schedstat read before it %.3f", cpu, ok, sched)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, ok := schedCPU(dir); ok {
		t.Fatal("a thread without schedstat must make the caller fall back to stat")
	}
}
