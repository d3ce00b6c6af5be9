package main

import "syscall"

// childProcAttr kills a child cairn when the test binary dies, so that a
// timed-out test leaves no server behind.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
