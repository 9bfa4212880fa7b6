package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"hpsync/internal/hyperproof"
	"hpsync/internal/sandbox/seed"
	"hpsync/workflows"
)

// recordDir is where histories are written when RECORD_HISTORIES is set
// (the README tells when to do that); "" records nothing.
func recordDir() string { return os.Getenv("RECORD_HISTORIES") }

// history fetches one run's history ("" = the latest run).
func (s *stack) history(t *testing.T, ctx context.Context, wfID, runID string) *historypb.History {
	t.Helper()
	hist := &historypb.History{}
	it := s.w.Client.GetWorkflowHistory(ctx, wfID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		hist.Events = append(hist.Events, ev)
	}
	return hist
}

// record writes a history as JSON when recording is on.
func record(t *testing.T, name string, hist *historypb.History) {
	t.Helper()
	dir := recordDir()
	if dir == "" {
		return
	}
	b, err := protojson.MarshalOptions{Indent: " "}.Marshal(hist)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s (%d events)", name, len(hist.Events))
}

// TestSignalsAroundContinueAsNew_CancelResumeAndContinueAsNew drives the paths the demo story
// does not: cancel, changes during suspension, resume with carry-over, and
// continue-as-new with signals arriving around the hand-over. It checks
// them end to end and records their histories when asked.
func TestSignalsAroundContinueAsNew_CancelResumeAndContinueAsNew(t *testing.T) {
	s := startStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Cancel, activity on both sides while Canceled, then resume.
	taskID, sn := s.linkedTask(t, ctx, "control", seed.ControlID)
	s.setStatus(t, ctx, taskID, hyperproof.StatusCancelled)
	eventually(t, "suspended as cancelled, ServiceNow Completed", 30*time.Second, func() (bool, error) {
		st := s.status(t, ctx, taskID)
		got, err := s.assignee.GetTask(ctx, sn.Table, sn.SysID)
		return st.Suspended && st.SuspendedAs == "cancelled" && got.State == "3", err
	})
	if err := s.assignee.AddComment(ctx, sn.Table, sn.SysID, "asked while cancelled"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.creator.AddComment(ctx, taskID, hyperproof.NewComment{Text: "answered while cancelled"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.assignee.UpdateTask(ctx, sn.Table, sn.SysID, map[string]string{"state": "1"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // several poll cycles: nothing may be carried
	if st := s.status(t, ctx, taskID); st.CommentsToHyperproof != 0 || st.CommentsToServiceNow != 0 || st.HyperproofStatus != "cancelled" {
		t.Fatalf("carried during suspension: %+v", st)
	}
	s.setStatus(t, ctx, taskID, hyperproof.StatusInProgress)
	eventually(t, "resumed with the suspended period carried once", 30*time.Second, func() (bool, error) {
		st := s.status(t, ctx, taskID)
		got, err := s.assignee.GetTask(ctx, sn.Table, sn.SysID)
		return !st.Suspended && st.CommentsToHyperproof == 1 && st.CommentsToServiceNow == 1 && got.State == "2" && st.HyperproofStatus == "inProgress", err
	})
	record(t, "cancel-suspend-resume", s.history(t, ctx, workflows.WorkflowID(taskID), ""))

	// Continue-as-new after two rounds, with hints arriving meanwhile.
	task, err := s.creator.CreateTask(ctx, hyperproof.NewTask{Title: "long life", TargetType: "control", TargetID: seed.ControlID, AssigneeID: seed.AssigneeUserID})
	if err != nil {
		t.Fatal(err)
	}
	wfID := workflows.WorkflowID(task.ID)
	run, err := s.w.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: wfID, TaskQueue: s.cfg.TemporalTaskQueue},
		workflows.TaskSyncWorkflowName, workflows.TaskSyncInput{HyperproofTaskID: task.ID, Table: "sc_task", ContinueAsNewAfter: 2})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "linked", 30*time.Second, func() (bool, error) { return s.status(t, ctx, task.ID).Linked, nil })
	sn2, err := s.assignee.FindTaskByCorrelation(ctx, "sc_task", "hyperproof:"+task.ID)
	if err != nil || sn2 == nil {
		t.Fatalf("find: %v", err)
	}
	for i, text := range []string{"first", "second", "third", "fourth"} {
		if err := s.assignee.AddComment(ctx, "sc_task", sn2.SysID, "hand-over "+text); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			for j := 0; j < 3; j++ { // extra hints around the hand-over
				_ = s.w.Client.SignalWorkflow(ctx, wfID, "", workflows.SignalServiceNowChanged, nil)
			}
		}
	}
	eventually(t, "all four comments carried once across runs", 60*time.Second, func() (bool, error) {
		cs, err := s.creator.ListComments(ctx, task.ID)
		if err != nil {
			return false, err
		}
		n := 0
		for _, c := range cs {
			if strings.Contains(c.Text, "hand-over ") {
				n++
			}
		}
		return n == 4 && s.status(t, ctx, task.ID).CommentsToHyperproof == 4, nil
	})
	eventually(t, "continued as new once the hints were handled", 30*time.Second, func() (bool, error) {
		desc, err := s.w.Client.DescribeWorkflowExecution(ctx, wfID, "")
		if err != nil {
			return false, err
		}
		return desc.WorkflowExecutionInfo.Execution.RunId != run.GetRunID(), nil
	})
	if st := s.status(t, ctx, task.ID); st.CommentsToHyperproof != 4 {
		t.Errorf("after continue-as-new: %d comments carried, want 4", st.CommentsToHyperproof)
	}
	record(t, "continue-as-new-first-run", s.history(t, ctx, wfID, run.GetRunID()))
}
