package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"hpsync/activities"
)

// Problem is something one of the APIs refused and retrying cannot fix: a
// business rule, data policy, ACL or a missing record (400/403/404). It shows
// in the status query and as a note on the Hyperproof task, and the rest of
// the task's sync goes on. The refused step is tried again on the next hint
// (after an operator fixed the cause), never in a loop.
type Problem struct {
	Step  string // e.g. servicenow-state, comment-to-hyperproof/<journal id>
	Error string
	At    time.Time
}

// Steps that can be refused on their own.
const (
	stepServiceNowState  = "servicenow-state"
	stepHyperproofStatus = "hyperproof-status"
	stepPublish          = "publish-proof"
	stepAlert            = "alert-assignee"
	stepListServiceNow   = "read-servicenow-content"
	stepListHyperproof   = "read-hyperproof-comments"
)

func isRefusal(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.NonRetryable()
}

func isSuperseded(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == activities.ErrSuperseded
}

func errorMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return err.Error()
}

// settle records the outcome of one step: success clears its problem, a
// refusal becomes a problem and is swallowed so the round goes on, any other
// error (the API stayed unavailable through the activity's retries) is
// returned and fails the round, which is tried again later.
func (w *taskSync) settle(ctx workflow.Context, step string, err error) error {
	if err == nil {
		delete(w.s.Problems, step)
		return nil
	}
	if !isRefusal(err) {
		return err
	}
	w.refused(ctx, step, err)
	return nil
}

// refused records a problem and leaves a note on the Hyperproof task once per
// occurrence (keyed by the step and the time it was first seen, so an
// activity retry finds its own note).
func (w *taskSync) refused(ctx workflow.Context, step string, err error) {
	msg := errorMessage(err)
	if p, ok := w.s.Problems[step]; ok && p.Error == msg {
		return
	}
	now := workflow.Now(ctx)
	w.s.Problems[step] = Problem{Step: step, Error: msg, At: now}
	w.hop(ctx, Hop{Kind: step, Outcome: OutcomeRefused, Why: msg})
	w.log.Warn("refused; the rest of the sync goes on", "step", step, "error", msg)
	note := activities.NoteRequest{
		HyperproofTaskID: w.s.HyperproofTaskID,
		Key:              fmt.Sprintf("problem:%s@%d", step, now.UnixNano()),
		Text:             fmt.Sprintf("Sync with ServiceNow %s could not complete a step (%s): %s. The rest of the sync goes on; the step is tried again on the next change.", w.s.Number, step, msg),
	}
	// Best effort: when Hyperproof itself refuses, the note cannot go either;
	// the status query still shows the problem.
	_ = workflow.ExecuteActivity(apiOptions(ctx), act.NoteOnHyperproof, note).Get(ctx, nil)
}

// latestProblem is the most recent problem, for LastError.
func (w *taskSync) latestProblem() (Problem, bool) {
	var latest Problem
	found := false
	for _, k := range sortedKeys(w.s.Problems) {
		if p := w.s.Problems[k]; !found || p.At.After(latest.At) {
			latest, found = p, true
		}
	}
	return latest, found
}

func (w *taskSync) hasProblem(steps ...string) bool {
	for _, s := range steps {
		if _, ok := w.s.Problems[s]; ok {
			return true
		}
	}
	return false
}
