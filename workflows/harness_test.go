package workflows_test

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"hpsync/workflows"
)

// story drives one workflow run against a world: each step is a delayed
// callback one (mock) minute after the previous one, in which the test acts
// as a user (changes the world, sends the hint a webhook or poller would) or
// checks what the workflow has done so far. The test suite skips the time.
type story struct {
	t   *testing.T
	w   *world
	env *testsuite.TestWorkflowEnvironment
	at  time.Duration
}

func newStory(t *testing.T, w *world) *story {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.TaskSync, workflow.RegisterOptions{Name: workflows.TaskSyncWorkflowName})
	env.RegisterActivity(&fakeActivities{w: w})
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: workflows.WorkflowID(testTaskID)})
	return &story{t: t, w: w, env: env}
}

func input() workflows.TaskSyncInput {
	return workflows.TaskSyncInput{HyperproofTaskID: testTaskID, Table: testTable}
}

// then schedules fn one minute after the previous step.
func (s *story) then(fn func()) {
	s.at += time.Minute
	s.env.RegisterDelayedCallback(fn, s.at)
}

func (s *story) hintHP() { s.env.SignalWorkflow(workflows.SignalHyperproofChanged, nil) }
func (s *story) hintSN() { s.env.SignalWorkflow(workflows.SignalServiceNowChanged, nil) }

// hyperproofUser sets the Hyperproof status and sends the poller's hint.
func (s *story) hyperproofUser(status string) {
	s.then(func() { s.w.setHPStatus(status); s.hintHP() })
}

// serviceNowUser sets the ServiceNow state and sends the webhook's hint.
func (s *story) serviceNowUser(state string) {
	s.then(func() { s.w.setSNState(state); s.hintSN() })
}

func (s *story) status() workflows.Status {
	s.t.Helper()
	v, err := s.env.QueryWorkflow(workflows.QueryStatus)
	if err != nil {
		s.t.Fatalf("query status: %v", err)
	}
	var st workflows.Status
	if err := v.Get(&st); err != nil {
		s.t.Fatalf("decode status: %v", err)
	}
	return st
}

// check runs fn in a step of its own, after everything before has settled.
func (s *story) check(fn func(st workflows.Status)) {
	s.then(func() { fn(s.status()) })
}

// run executes the workflow, cancels it one step after the last one and
// expects it to end canceled (it never completes on its own).
func (s *story) run(in workflows.TaskSyncInput) {
	s.t.Helper()
	s.then(func() { s.env.CancelWorkflow() })
	s.env.ExecuteWorkflow(workflows.TaskSync, in)
	if !s.env.IsWorkflowCompleted() {
		s.t.Fatal("workflow did not complete after cancel")
	}
	if err := s.env.GetWorkflowError(); !temporal.IsCanceledError(err) {
		s.t.Fatalf("workflow error = %v, want a cancellation", err)
	}
}

// ---- small assertion helpers (safe inside callbacks: they never stop the goroutine) ----

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func calls(t *testing.T, w *world, activity string, want int) {
	t.Helper()
	if got := w.count(activity); got != want {
		t.Errorf("%s called %d times, want %d", activity, got, want)
	}
}
