package harness

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times; 100 on every Linux build we run on.
const clockTicks = 100

// treeStat is one reading of a process tree.
type treeStat struct {
	cpuTicks uint64 // utime+stime+cutime+cstime summed over the tree
	rssKiB   int64  // resident set summed over the tree
	procs    int
}

// readTree reads every process whose ancestry reaches root (root included).
func readTree(root int) treeStat {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return treeStat{}
	}
	type info struct {
		ppid  int
		ticks uint64
	}
	infos := make(map[int]info, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The command name may hold spaces and parentheses: fields start after the last ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		// f[0]=state f[1]=ppid ... f[11]=utime f[12]=stime f[13]=cutime f[14]=cstime
		if len(f) < 15 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		var ticks uint64
		for _, k := range f[11:15] {
			v, _ := strconv.ParseUint(k, 10, 64)
			ticks += v
		}
		infos[pid] = info{ppid: ppid, ticks: ticks}
	}
	inTree := func(pid int) bool {
		for depth := 0; pid > 1 && depth < 64; depth++ {
			if pid == root {
				return true
			}
			in, ok := infos[pid]
			if !ok {
				return false
			}
			pid = in.ppid
		}
		return false
	}
	var st treeStat
	pageKiB := int64(os.Getpagesize() / 1024)
	for pid, in := range infos {
		if !inTree(pid) {
			continue
		}
		st.procs++
		st.cpuTicks += in.ticks
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) >= 2 {
			pages, _ := strconv.ParseInt(f[1], 10, 64)
			st.rssKiB += pages * pageKiB
		}
	}
	return st
}

// RSSKiB is the resident memory of root and its descendants now.
func RSSKiB(root int) int64 { return readTree(root).rssKiB }

// Usage is what one process tree used during a sampling window.
type Usage struct {
	CPUSeconds float64 `json:"cpu_seconds"`
	// CPUCores is CPUSeconds over the window: 1.0 means one core busy all the time.
	CPUCores   float64 `json:"cpu_cores"`
	PeakRSSKiB int64   `json:"peak_rss_kib"`
	EndRSSKiB  int64   `json:"end_rss_kib"`
	Procs      int     `json:"procs"`
}

// MicrosPer is the CPU time of the window in microseconds per each of n requests (0 when n is 0).
func (u Usage) MicrosPer(n int64) float64 {
	if n <= 0 {
		return 0
	}
	return u.CPUSeconds * 1e6 / float64(n)
}

// Sampler follows the CPU time and peak RSS of several process trees.
type Sampler struct {
	roots map[string]int
	stop  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	start map[string]treeStat
	peak  map[string]int64
	began time.Time
}

// StartSampler begins sampling the trees rooted at roots (name → pid) every interval.
func StartSampler(roots map[string]int, interval time.Duration) *Sampler {
	s := &Sampler{
		roots: roots, stop: make(chan struct{}),
		start: map[string]treeStat{}, peak: map[string]int64{}, began: time.Now(),
	}
	for name, pid := range roots {
		st := readTree(pid)
		s.start[name] = st
		s.peak[name] = st.rssKiB
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *Sampler) sample() map[string]treeStat {
	now := map[string]treeStat{}
	for name, pid := range s.roots {
		now[name] = readTree(pid)
	}
	s.mu.Lock()
	for name, st := range now {
		if st.rssKiB > s.peak[name] {
			s.peak[name] = st.rssKiB
		}
	}
	s.mu.Unlock()
	return now
}

// Stop ends sampling and returns each tree's usage over the window.
func (s *Sampler) Stop() map[string]Usage {
	close(s.stop)
	s.wg.Wait()
	end := s.sample()
	secs := time.Since(s.began).Seconds()
	out := map[string]Usage{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, st := range end {
		cpu := float64(st.cpuTicks-min(st.cpuTicks, s.start[name].cpuTicks)) / clockTicks
		u := Usage{CPUSeconds: cpu, PeakRSSKiB: s.peak[name], EndRSSKiB: st.rssKiB, Procs: st.procs}
		if secs > 0 {
			u.CPUCores = cpu / secs
		}
		out[name] = u
	}
	return out
}
