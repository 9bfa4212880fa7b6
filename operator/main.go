// Command operator answers an operator's questions about linked tasks and
// steers them, next to the starter:
//
//	go run ./operator status   -task <id>     the status query (JSON)
//	go run ./operator timeline -task <id>     every hop: source id, seen, written, outcome, why
//	go run ./operator resync   -task <id>     read both sides from the beginning (nothing is carried twice)
//	go run ./operator unlink   -task <id>     stop syncing; the workflow ends, nothing is deleted
//	go run ./operator relink   -task <id> [-table t] [-sys-id id]   link again (like the starter)
//	go run ./operator list     [-state broken|suspended|active|submitted|linking|unlinked]
//	go run ./operator check-map               the status map against the instance's sys_choice states
//
// Configuration is the worker's (environment; see README). Every command on
// a task that is not linked says so and exits 1.
package main

import (
	"os"

	"hpsync/internal/operate"
)

func main() {
	os.Exit(operate.Main(os.Args[1:], os.Stdout, os.Stderr))
}
