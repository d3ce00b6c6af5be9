package miniotest

import "syscall"

// sysProcAttr kills MinIO when the test binary dies, so that a crashed or
// timed-out test leaves no server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
