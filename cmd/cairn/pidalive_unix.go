//go:build unix

package main

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"syscall"
)

// pidAlive reports whether a process with this pid runs on this host. A
// zombie (killed, not yet reaped by its parent) is not running: on Linux
// its /proc stat says state Z.
func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // no /proc here (or it raced an exit): trust kill
	}
	// "pid (comm) S ...": the state follows the last ')'.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z' && stat[i+2] != 'X'
	}
	return true
}
