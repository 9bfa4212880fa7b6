package link

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"hpsync/internal/config"
	"hpsync/internal/workerapp"
)

// Main is the starter command: it parses args, links the task and prints
// one line; the result is the process exit code (0 linked, 1 refused or
// failed, 2 bad usage or configuration).
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("starter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	task := fs.String("task", "", "Hyperproof task id (required)")
	table := fs.String("table", "", "ServiceNow table for a new task (default SERVICENOW_TABLE)")
	sysID := fs.String("sys-id", "", "link this existing ServiceNow task instead of creating one")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *task == "" {
		fmt.Fprintln(stderr, "starter: -task is required")
		return 2
	}
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintln(stderr, "starter:", err)
		return 2
	}
	if *table == "" {
		*table = cfg.ServiceNowTable
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	hp, _, err := workerapp.Clients(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "starter:", err)
		return 1
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := workerapp.Dial(ctx, cfg, quiet)
	if err != nil {
		fmt.Fprintln(stderr, "starter:", err)
		return 1
	}
	defer c.Close()
	res, err := Link(ctx, c, hp, cfg.StatusMap, Request{
		HyperproofTaskID: *task, Table: *table, ExistingSysID: *sysID, TaskQueue: cfg.TemporalTaskQueue,
	})
	if err != nil {
		fmt.Fprintln(stderr, "starter:", err)
		return 1
	}
	fmt.Fprintln(stdout, res)
	return 0
}
