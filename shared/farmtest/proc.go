package farmtest

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// procStat is process pid's /proc/<pid>/stat after its command name (which
// may hold spaces): state is field 0, the parent's pid 1, user and system
// CPU ticks 11 and 12. It is nil when the process is gone (Linux only).
func procStat(pid int) []string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(data)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
}

// ProcessCPU is the user and system CPU time process pid has used so far
// (100 clock ticks a second), or 0 when it cannot be read.
func ProcessCPU(pid int) time.Duration { return statCPU(procStat(pid)) }

// statCPU is the CPU time in a procStat.
func statCPU(fields []string) time.Duration {
	if len(fields) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(fields[11], 10, 64)
	s, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

// ChildrenCPU is the CPU time the live children of process pid have used
// so far.
func ChildrenCPU(pid int) time.Duration {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var total time.Duration
	parent := strconv.Itoa(pid)
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if fields := procStat(child); len(fields) > 1 && fields[1] == parent {
			total += statCPU(fields)
		}
	}
	return total
}

// ProcessAlive says whether process pid runs (a zombie waiting for its
// reaper counts as gone).
func ProcessAlive(pid int) bool {
	fields := procStat(pid)
	return len(fields) > 0 && fields[0] != "Z"
}
