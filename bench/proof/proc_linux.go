package main

import (
	"os/exec"
	"syscall"
)

// setPdeathsig makes the kernel end the worker should this process die
// without cleaning up (SIGKILL, a crash).
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// syncDisks flushes dirty pages to disk (sync(2)).
func syncDisks() { syscall.Sync() }
