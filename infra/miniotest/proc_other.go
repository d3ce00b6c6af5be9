//go:build !linux

package miniotest

import "syscall"

// sysProcAttr: without Pdeathsig, Stop (via RunMain) is what ends MinIO.
func sysProcAttr() *syscall.SysProcAttr { return nil }
