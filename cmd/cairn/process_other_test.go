//go:build !linux

package main

import "syscall"

// childProcAttr: only Linux can tie a child's life to its parent's; the
// test's cleanup kills the child elsewhere.
func childProcAttr() *syscall.SysProcAttr { return nil }
