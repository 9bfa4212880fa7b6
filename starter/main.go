// Command starter links a Hyperproof task to ServiceNow:
//
//	go run ./starter -task <hyperproof-task-id> [-table sc_task] [-sys-id <existing sys_id>]
//
// It prints one line naming the task, the ServiceNow table and number, and
// the workflow id; linking a linked task again prints the same line and
// creates nothing. An unknown task, an unreachable API or rejected
// credentials exit non-zero with one line that says which.
package main

import (
	"os"

	"hpsync/internal/link"
)

func main() {
	os.Exit(link.Main(os.Args[1:], os.Stdout, os.Stderr))
}
