package lambdaemu

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// sysProcAttr puts a process in process group pgid (0: a group of its
// own) and kills it when the emulator dies, so that a crashed test leaves
// no environment behind.
func sysProcAttr(pgid int) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pgid: pgid, Pdeathsig: syscall.SIGKILL}
}

// stopped reports whether process pid is stopped, or gone, from
// /proc/<pid>/stat.
func stopped(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return rest == "" || strings.ContainsAny(rest[:1], "TtZX")
}
