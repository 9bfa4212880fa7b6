//go:build !linux

package main

import (
	"errors"
	"os/exec"
)

func setPdeathsig(*exec.Cmd) {}

func findChild(...string) (int, error) {
	return 0, errors.New("chaos: finding the dev server's process needs Linux (/proc)")
}

func killPid(int) error { return errors.New("chaos: Linux only") }
