//go:build !linux

package miniotest

import "syscall"

// sysProcAttr: without Pdeathsig, Stop (via RunMain) is what ends MinIO.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// processAlive cannot tell here; assume alive so that nothing is removed
// from under a running test.
func processAlive(int) bool { return true }
