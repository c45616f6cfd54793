package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ProcSample is one reading of a process tree from /proc: a root and all its
// live descendants (websockify forks one child per session).
type ProcSample struct {
	CPUSeconds float64 // user+system of live processes, plus reaped children of the root
	RSSBytes   int64
	PSSBytes   int64
	FDs        int
	Procs      int
}

var clockTicks = 100.0 // USER_HZ on Linux

// SampleTree reads root and its descendants: CPU, memory and fds. A process
// that exits while it is read is skipped; a tree whose root is gone reads as
// zero. Reading the memory of hundreds of processes takes a while: time CPU
// with TreeCPU.
func SampleTree(root int) ProcSample {
	var s ProcSample
	for _, pid := range treePIDs(root) {
		cpu, ok := pidCPU(pid, pid == root)
		if !ok {
			continue
		}
		s.Procs++
		s.CPUSeconds += cpu
		rss, pss := readMemory(pid)
		s.RSSBytes += rss
		s.PSSBytes += pss
		s.FDs += countFDs(pid)
	}
	return s
}

// TreeCPU is the CPU seconds of root and its live descendants, plus the
// children root has reaped.
func TreeCPU(root int) float64 {
	var sum float64
	for _, pid := range treePIDs(root) {
		cpu, _ := pidCPU(pid, pid == root)
		sum += cpu
	}
	return sum
}

// pidCPU is the CPU seconds of one process: its threads' on-CPU time from
// schedstat, in nanoseconds (a websockify child that answered a few echoes
// runs well under one clock tick, which /proc/PID/stat rounds to zero; 500 of
// them then read as an idle proxy), else utime+stime from stat. withReaped
// adds the children the process has reaped (whole ticks: all stat has).
func pidCPU(pid int, withReaped bool) (float64, bool) {
	st, ok := readStat(pid)
	if !ok {
		return 0, false
	}
	cpu, ok := schedCPU("/proc/" + strconv.Itoa(pid) + "/task")
	if !ok {
		cpu = float64(st.utime+st.stime) / clockTicks
	}
	if withReaped {
		cpu += float64(st.cutime+st.cstime) / clockTicks
	}
	return cpu, true
}

// schedCPU sums the first field of schedstat (time on a CPU, ns) over the
// threads in dir (a /proc/PID/task folder); false if the kernel has no
// schedstat. A thread that exits meanwhile is skipped.
func schedCPU(dir string) (float64, bool) {
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		return 0, false
	}
	var ns int64
	for _, e := range ents {
		v, ok := schedNanos(dir + "/" + e.Name() + "/schedstat")
		if !ok {
			if _, err := os.Stat(dir + "/" + e.Name()); err == nil {
				return 0, false // there, but no schedstat: fall back
			}
			continue
		}
		ns += v
	}
	return float64(ns) / 1e9, true
}

// schedNanos reads one schedstat file's on-CPU nanoseconds.
func schedNanos(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, false
	}
	v, err := strconv.ParseInt(f[0], 10, 64)
	return v, err == nil
}

type procStat struct {
	ppid                         int
	utime, stime, cutime, cstime int64
}

// readStat parses /proc/PID/stat past the parenthesised command name.
func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return procStat{}, false
	}
	num := func(k int) int64 { v, _ := strconv.ParseInt(f[k], 10, 64); return v }
	// Fields after the name: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
	return procStat{ppid: int(num(1)), utime: num(11), stime: num(12), cutime: num(13), cstime: num(14)}, true
}

// treePIDs lists root and every live descendant, found through ppid links.
func treePIDs(root int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return []int{root}
	}
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok {
			children[st.ppid] = append(children[st.ppid], pid)
		}
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// readMemory returns RSS and PSS in bytes from smaps_rollup.
func readMemory(pid int) (rss, pss int64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "Rss:":
			rss = kb << 10
		case "Pss:":
			pss = kb << 10
		}
	}
	return rss, pss
}

func countFDs(pid int) int {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}

// threadCPU is the user+system CPU seconds of one thread of this process
// (the client loops run on locked OS threads, so their CPU is told apart
// from the backend goroutines sharing the process).
func threadCPU(tid int) float64 {
	if ns, ok := schedNanos("/proc/self/task/" + strconv.Itoa(tid) + "/schedstat"); ok {
		return float64(ns) / 1e9
	}
	b, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(tid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return float64(u+s) / clockTicks
}

// RaiseFileLimit sets RLIMIT_NOFILE's soft limit to its hard limit, for this
// process and the proxies it starts; it returns the new limit.
func RaiseFileLimit() (uint64, error) {
	// syscall (not x/sys/unix) so that the runtime passes the raised limit on
	// to the processes it starts instead of restoring the original.
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	r.Cur = r.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, fmt.Errorf("setrlimit: %w", err)
	}
	return r.Cur, nil
}
