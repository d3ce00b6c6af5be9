//go:build !linux

package lambdaemu

import "syscall"

// sysProcAttr puts a process in process group pgid (0: a group of its
// own). Only Linux can also kill it when the emulator dies.
func sysProcAttr(pgid int) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pgid: pgid}
}

// stopped cannot look without /proc; it trusts SIGSTOP.
func stopped(int) bool { return true }
