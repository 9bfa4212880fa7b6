package devserver

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the dev server exit when the process that started it
// dies without stopping it (killed, or a broken pipe), so no server is left
// holding the ports.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
