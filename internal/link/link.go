// Package link starts (or finds) the workflow of a Hyperproof task and waits
// until its ServiceNow task exists. The starter command and the demo use it.
package link

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"hpsync/internal/hyperproof"
	"hpsync/internal/servicenow"
	"hpsync/internal/statusmap"
	"hpsync/workflows"
)

// Request names the task to link.
type Request struct {
	HyperproofTaskID string
	Table            string
	ExistingSysID    string
	TaskQueue        string
}

// Result is the link as the starter prints it.
type Result struct {
	HyperproofTaskID string
	Table            string
	Number           string
	WorkflowID       string
	AlreadyLinked    bool
}

func (r Result) String() string {
	return fmt.Sprintf("linked Hyperproof task %s to ServiceNow %s %s (workflow %s)", r.HyperproofTaskID, r.Table, r.Number, r.WorkflowID)
}

// Link checks the Hyperproof task, starts its workflow unless one is already
// running, and waits until the workflow reports the ServiceNow task. Nothing
// is started when the task is unknown, closed or cancelled, or the API
// refuses the credentials.
func Link(ctx context.Context, c client.Client, hp *hyperproof.Client, m statusmap.Map, req Request) (Result, error) {
	res := Result{HyperproofTaskID: req.HyperproofTaskID, Table: req.Table, WorkflowID: workflows.WorkflowID(req.HyperproofTaskID)}
	if req.HyperproofTaskID == "" {
		return res, errors.New("a Hyperproof task id is required (-task)")
	}
	if _, ok := m.First(req.Table, statusmap.GroupInProgress); !ok {
		return res, fmt.Errorf("table %q is not in the status map", req.Table)
	}
	if req.ExistingSysID != "" && !servicenow.IsSysID(req.ExistingSysID) {
		return res, fmt.Errorf("-sys-id %q is not a ServiceNow sys_id (32 hex digits)", req.ExistingSysID)
	}

	// Already linked: report the existing link, create nothing.
	if st, ok, err := runningStatus(ctx, c, res.WorkflowID); err != nil {
		return res, err
	} else if ok && st.Linked {
		if req.Table != st.Table || (req.ExistingSysID != "" && !strings.EqualFold(req.ExistingSysID, st.SysID)) {
			return res, fmt.Errorf("Hyperproof task %s is already linked to ServiceNow %s %s (sys_id %s); unlink it first to link another record",
				req.HyperproofTaskID, st.Table, st.Number, st.SysID)
		}
		res.Table, res.Number, res.AlreadyLinked = st.Table, st.Number, true
		return res, nil
	}

	task, err := hp.GetTask(ctx, req.HyperproofTaskID)
	if err != nil {
		var apiErr *hyperproof.APIError
		if errors.As(err, &apiErr) && apiErr.StatusCode == 404 {
			return res, fmt.Errorf("unknown Hyperproof task %s", req.HyperproofTaskID)
		}
		return res, fmt.Errorf("cannot read Hyperproof task %s: %w", req.HyperproofTaskID, err)
	}
	statuses, err := hp.ListTaskStatuses(ctx)
	if err != nil {
		return res, fmt.Errorf("cannot read Hyperproof task statuses: %w", err)
	}
	for _, s := range statuses {
		if s.ID == task.TaskStatusID && (s.Type == hyperproof.StatusClosed || s.Type == hyperproof.StatusCancelled) {
			return res, fmt.Errorf("Hyperproof task %s is %s (%s): a closed or cancelled task is not linked", task.ID, s.Name, s.Type)
		}
	}

	_, err = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       res.WorkflowID,
		TaskQueue:                req.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		// A link that failed may be tried again; a running one is reused.
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		// The UI's summary line; the workflow adds the ServiceNow number and
		// the sync state as its current details.
		StaticSummary: "Hyperproof task: " + task.Title,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.AttrHyperproofTaskID.ValueSet(req.HyperproofTaskID),
			workflows.AttrSyncState.ValueSet(workflows.PhaseLinking),
		),
	}, workflows.TaskSyncWorkflowName, workflows.TaskSyncInput{
		HyperproofTaskID: req.HyperproofTaskID, Table: req.Table, ExistingSysID: req.ExistingSysID,
	})
	if err != nil {
		return res, fmt.Errorf("cannot start workflow %s: %w", res.WorkflowID, err)
	}
	return waitLinked(ctx, c, res)
}

// waitLinked polls the status query until the ServiceNow task exists, or
// the workflow ends (a link that failed for good).
func waitLinked(ctx context.Context, c client.Client, res Result) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		st, running, err := runningStatus(ctx, c, res.WorkflowID)
		if err != nil {
			return res, err
		}
		if running && st.Linked {
			res.Table, res.Number = st.Table, st.Number
			return res, nil
		}
		if !running {
			cause := c.GetWorkflow(ctx, res.WorkflowID, "").Get(ctx, nil)
			var appErr *temporal.ApplicationError
			if errors.As(cause, &appErr) {
				return res, fmt.Errorf("link failed: %s", appErr.Message())
			}
			return res, fmt.Errorf("link failed: %v", cause)
		}
		select {
		case <-ctx.Done():
			if st.LastError != "" {
				return res, fmt.Errorf("link not done in time: %s", st.LastError)
			}
			return res, errors.New("link not done in time: is a worker running on the task queue?")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// runningStatus queries a running workflow's status; ok is false when no
// workflow of that id is running.
func runningStatus(ctx context.Context, c client.Client, id string) (workflows.Status, bool, error) {
	var st workflows.Status
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return st, false, nil
		}
		return st, false, fmt.Errorf("cannot reach Temporal: %w", err)
	}
	if desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return st, false, nil
	}
	v, err := c.QueryWorkflow(ctx, id, "", workflows.QueryStatus)
	if err != nil {
		return st, true, nil // not answered yet (no worker?): treat as not linked yet
	}
	if err := v.Get(&st); err != nil {
		return st, true, err
	}
	return st, true, nil
}
