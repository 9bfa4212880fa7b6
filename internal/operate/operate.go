// Package operate implements the operator command: status, timeline,
// resync, unlink, relink, list and check-map.
package operate

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"hpsync/internal/config"
	"hpsync/internal/link"
	"hpsync/internal/workerapp"
	"hpsync/workflows"
)

const usage = `usage: operator <command> [flags]
  status   -task <id>    the task's status query
  timeline -task <id>    every hop of the task
  resync   -task <id>    read both sides again from the beginning
  unlink   -task <id>    stop syncing the task (nothing is deleted)
  relink   -task <id> [-table t] [-sys-id id]
  list     [-state s]    linked tasks, optionally in one sync state
  check-map              check the status map against the instance`

// Main runs one operator command; the result is the exit code (0 done, 1
// refused or failed, 2 usage or configuration).
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	if cmd == "relink" {
		return link.Main(args, stdout, stderr)
	}
	fs := flag.NewFlagSet("operator "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	task := fs.String("task", "", "Hyperproof task id")
	state := fs.String("state", "", "sync state to list (list only)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	needsTask := map[string]bool{"status": true, "timeline": true, "resync": true, "unlink": true}
	if _, known := map[string]bool{"status": true, "timeline": true, "resync": true, "unlink": true, "list": true, "check-map": true}[cmd]; !known {
		fmt.Fprintf(stderr, "operator: unknown command %q\n%s\n", cmd, usage)
		return 2
	}
	if needsTask[cmd] && *task == "" {
		fmt.Fprintf(stderr, "operator %s: -task is required\n", cmd)
		return 2
	}
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintln(stderr, "operator:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if cmd == "check-map" {
		return checkMap(ctx, cfg, stdout, stderr)
	}
	c, err := workerapp.Dial(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		fmt.Fprintln(stderr, "operator:", err)
		return 1
	}
	defer c.Close()
	if cmd == "list" {
		return list(ctx, c, *state, stdout, stderr)
	}
	id := workflows.WorkflowID(*task)
	if err := requireLinked(ctx, c, id, *task); err != nil {
		fmt.Fprintln(stderr, "operator:", err)
		return 1
	}
	switch cmd {
	case "status":
		return query(ctx, c, id, workflows.QueryStatus, &workflows.Status{}, stdout, stderr)
	case "timeline":
		return query(ctx, c, id, workflows.QueryTimeline, &workflows.Timeline{}, stdout, stderr)
	case "resync":
		return signal(ctx, c, id, workflows.SignalResync, "resync requested for "+*task, stdout, stderr)
	default: // unlink
		return signal(ctx, c, id, workflows.SignalUnlink, "unlinked Hyperproof task "+*task+" (nothing was deleted; relink with: operator relink -task "+*task+")", stdout, stderr)
	}
}

// requireLinked refuses a task without a running workflow.
func requireLinked(ctx context.Context, c client.Client, id, task string) error {
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return fmt.Errorf("Hyperproof task %s is not linked", task)
	case err != nil:
		return fmt.Errorf("cannot reach Temporal: %w", err)
	case desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return fmt.Errorf("Hyperproof task %s is not linked (its workflow is %s)", task,
			strings.ToLower(strings.TrimPrefix(desc.GetWorkflowExecutionInfo().GetStatus().String(), "WORKFLOW_EXECUTION_STATUS_")))
	}
	return nil
}

func query(ctx context.Context, c client.Client, id, name string, into any, stdout, stderr io.Writer) int {
	v, err := c.QueryWorkflow(ctx, id, "", name)
	if err == nil {
		err = v.Get(into)
	}
	if err != nil {
		fmt.Fprintf(stderr, "operator: %s query: %v\n", name, err)
		return 1
	}
	b, _ := json.MarshalIndent(into, "", "  ")
	fmt.Fprintln(stdout, string(b))
	return 0
}

func signal(ctx context.Context, c client.Client, id, name, done string, stdout, stderr io.Writer) int {
	if err := c.SignalWorkflow(ctx, id, "", name, nil); err != nil {
		fmt.Fprintf(stderr, "operator: %s: %v\n", name, err)
		return 1
	}
	fmt.Fprintln(stdout, done)
	return 0
}

func list(ctx context.Context, c client.Client, state string, stdout, stderr io.Writer) int {
	q := fmt.Sprintf("WorkflowType = '%s'", workflows.TaskSyncWorkflowName)
	if state != "" {
		q += fmt.Sprintf(" AND %s = '%s'", workflows.AttrSyncState.GetName(), strings.ReplaceAll(state, "'", ""))
	} else {
		q += " AND ExecutionStatus = 'Running'"
	}
	var token []byte
	n := 0
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, NextPageToken: token})
		if err != nil {
			fmt.Fprintln(stderr, "operator: list:", err)
			return 1
		}
		for _, e := range resp.GetExecutions() {
			task, _ := workflows.TaskIDFromWorkflowID(e.GetExecution().GetWorkflowId())
			fields := e.GetSearchAttributes().GetIndexedFields()
			var number, st string
			_ = jsonString(fields[workflows.AttrServiceNowNumber.GetName()].GetData(), &number)
			_ = jsonString(fields[workflows.AttrSyncState.GetName()].GetData(), &st)
			fmt.Fprintf(stdout, "%s\t%s\t%s\n", task, number, st)
			n++
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	fmt.Fprintf(stderr, "%d task(s)\n", n)
	return 0
}

func jsonString(b []byte, into *string) error {
	if len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, into)
}

func checkMap(ctx context.Context, cfg config.Config, stdout, stderr io.Writer) int {
	_, sn, err := workerapp.Clients(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "operator:", err)
		return 1
	}
	rep, err := workerapp.CheckMap(ctx, sn, cfg.StatusMap)
	if err != nil {
		fmt.Fprintln(stderr, "operator:", err)
		return 1
	}
	for table, states := range rep.Ungrouped {
		fmt.Fprintf(stdout, "%s: states in no group (tasks in them keep their Hyperproof status): %s\n", table, strings.Join(states, ", "))
	}
	if err := rep.Err(); err != nil {
		fmt.Fprintln(stderr, "operator:", err)
		return 1
	}
	fmt.Fprintln(stdout, "status map matches the instance's states")
	return 0
}
