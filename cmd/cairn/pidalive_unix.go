//go:build unix

package main

import (
	"errors"
	"syscall"
)

// pidAlive reports whether a process with this pid runs on this host.
func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
