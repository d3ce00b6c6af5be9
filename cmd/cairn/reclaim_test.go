//go:build unix

package main

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/testkit"
)

// A killed process that its parent has not reaped yet (a zombie) is dead
// for reclaimDeadIncarnations; a running one, and this process, are alive.
func TestPIDAlive(t *testing.T) {
	if !pidAlive(os.Getpid()) {
		t.Fatal("this process reads as dead")
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if !pidAlive(pid) {
		t.Fatal("a running child reads as dead")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Not waited for yet: a zombie, which kill(pid, 0) still finds. The
	// state may take a moment to change after SIGKILL.
	testkit.Eventually(t, 5*time.Second, "a killed, unreaped child reads as dead", func() bool { return !pidAlive(pid) })
	_ = cmd.Wait()
	if pidAlive(pid) {
		t.Fatal("a reaped child reads as alive")
	}
}
