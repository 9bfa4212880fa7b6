package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// setPdeathsig makes the kernel end a child should this process die without
// cleaning up (SIGKILL, a crash).
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// findChild returns the pid of this process's child whose command line
// (arguments joined by single spaces) contains every one of parts.
func findChild(parts ...string) (int, error) {
	me := os.Getpid()
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return 0, err
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		// The command name is in parentheses and may hold spaces: the ppid
		// is the second field after the last ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err != nil || ppid != me {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue
		}
		cmdline := strings.Join(strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00"), " ")
		all := true
		for _, p := range parts {
			if !strings.Contains(cmdline, p) {
				all = false
				break
			}
		}
		if all {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no child process of %d runs %q", me, strings.Join(parts, " … "))
}

// killPid sends SIGKILL.
func killPid(pid int) error {
	if pid <= 0 {
		return errors.New("no pid")
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}
