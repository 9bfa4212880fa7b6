// Package workflows holds the long-lived workflow that keeps one Hyperproof
// task and its ServiceNow task in step, and the two poller workflows that
// turn API changes into signals.
package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"hpsync/activities"
)

// Names that other programs rely on (starter, pollers, webhook, operators).
const (
	TaskSyncWorkflowName = "TaskSync"
	// SignalHyperproofChanged and SignalServiceNowChanged are hints that
	// something on that side may have changed; they carry no payload because
	// the workflow always re-reads the current state through the APIs.
	SignalHyperproofChanged = "hyperproof-changed"
	SignalServiceNowChanged = "servicenow-changed"
	QueryStatus             = "status"
	// SignalResync makes the workflow read both sides from the beginning
	// (what was carried is recognised and not carried again).
	SignalResync = "resync"
	// SignalUnlink ends the workflow: sync stops, nothing is deleted on
	// either side, and the task can be linked again.
	SignalUnlink = "unlink"

	workflowIDPrefix = "hyperproof-task-"
)

// Phases of the lifecycle.
const (
	PhaseLinking   = "linking"
	PhaseActive    = "active"
	PhaseSubmitted = "submitted"
	PhaseSuspended = "suspended"
	PhaseBroken    = "broken"
	PhaseUnlinked  = "unlinked"
)

// Hyperproof status types (kept here so workflow code does not import the
// HTTP client package).
const (
	hpNotStarted = "notStarted"
	hpInProgress = "inProgress"
	hpSubmitted  = "submitted"
	hpClosed     = "closed"
	hpCancelled  = "cancelled"
)

// Status-map groups.
const (
	groupTodo       = "todo"
	groupInProgress = "inProgress"
	groupCompleted  = "completed"
)

// WorkflowID is the id of the workflow of a Hyperproof task.
func WorkflowID(hyperproofTaskID string) string { return workflowIDPrefix + hyperproofTaskID }

// TaskIDFromWorkflowID is the inverse of WorkflowID.
func TaskIDFromWorkflowID(id string) (string, bool) {
	if !strings.HasPrefix(id, workflowIDPrefix) || len(id) == len(workflowIDPrefix) {
		return "", false
	}
	return strings.TrimPrefix(id, workflowIDPrefix), true
}

// TaskSyncInput starts (or continues) the workflow of one linked task.
type TaskSyncInput struct {
	HyperproofTaskID string
	Table            string
	ExistingSysID    string
	// State is carried across continue-as-new; nil on first start.
	State *TaskState `json:",omitempty"`
	// ContinueAsNewAfter forces continue-as-new after this many sync rounds
	// (0 = only when the server suggests it). Tests lower it.
	ContinueAsNewAfter int `json:",omitempty"`
}

// TaskState is all the workflow knows; it is what continue-as-new carries.
type TaskState struct {
	HyperproofTaskID string
	Table            string
	SysID            string
	Number           string

	// Last states seen (or written) on each side. A side's change is a
	// difference from these, so our own writes never come back as changes.
	HyperproofStatus string
	ServiceNowState  string
	ServiceNowGroup  string
	UnmappedState    string

	Suspended   bool
	SuspendedAs string // closed or cancelled

	// Ledgers keyed by the source system's own ids: each comment and file is
	// carried once, and two comments with the same text are two comments.
	SeenServiceNowComments map[string]string // journal sys_id -> Hyperproof comment id ("" when skipped)
	SeenHyperproofComments map[string]bool   // Hyperproof comment id -> handled
	ServiceNowCursor       time.Time
	HyperproofCursor       time.Time
	Proof                  map[string]activities.ProofRecord // attachment sys_id -> record
	PublishedProof         map[string]bool                   // Hyperproof task proof id -> on target

	CommentsToHyperproof int
	CommentsToServiceNow int
	Reopens              int
	AlertsSent           int

	// Problems are refusals by the APIs, by step; see Problem.
	Problems map[string]Problem

	Timeline        []Hop
	TimelineDropped int

	LastError   string
	LastErrorAt time.Time
	LastSync    time.Time
	Runs        int // continue-as-new generations
	// PendingHint is a hint that arrived during the hand-over to a new run.
	PendingHint bool
}

// Status is the answer to the status query.
type Status struct {
	WorkflowID           string
	HyperproofTaskID     string
	Linked               bool
	Phase                string
	Table                string
	SysID                string
	Number               string
	HyperproofStatus     string
	ServiceNowState      string
	ServiceNowGroup      string
	UnmappedState        string `json:",omitempty"`
	Suspended            bool
	SuspendedAs          string `json:",omitempty"`
	CommentsToHyperproof int
	CommentsToServiceNow int
	ProofSynced          int
	ProofSkipped         int
	ProofPublished       int
	Proof                []activities.ProofRecord
	Reopens              int
	Problems             []Problem `json:",omitempty"`
	LastError            string    `json:",omitempty"`
	LastErrorAt          time.Time `json:",omitzero"`
	LastSync             time.Time
}

// retryDelay is how long a round that failed waits before trying again on
// its own (a new signal tries sooner).
const retryDelay = 2 * time.Minute

// TaskSync is the workflow of one linked Hyperproof task.
func TaskSync(ctx workflow.Context, in TaskSyncInput) error {
	w, err := newTaskSync(ctx, in)
	if err != nil {
		return err
	}
	return w.run(ctx)
}

type taskSync struct {
	in   TaskSyncInput
	s    *TaskState
	hpCh workflow.ReceiveChannel
	snCh workflow.ReceiveChannel
	rsCh workflow.ReceiveChannel
	ulCh workflow.ReceiveChannel
	// unlink is set when an operator unlinked the task.
	unlink bool
	hpDue  bool // a Hyperproof hint is waiting
	snDue  bool // a ServiceNow hint is waiting
	// upserts is whether this run publishes search attributes (a version
	// marker: runs recorded before them replay without).
	upserts   bool
	published struct {
		phase, number string
		lastSync      time.Time
	}
	log interface {
		Info(string, ...interface{})
		Warn(string, ...interface{})
	}
}

func newTaskSync(ctx workflow.Context, in TaskSyncInput) (*taskSync, error) {
	if in.HyperproofTaskID == "" {
		return nil, temporal.NewNonRetryableApplicationError("hyperproof task id is required", "InvalidInput", nil)
	}
	s := in.State
	if s == nil {
		s = &TaskState{HyperproofTaskID: in.HyperproofTaskID, Table: in.Table}
	}
	if s.SeenServiceNowComments == nil {
		s.SeenServiceNowComments = map[string]string{}
	}
	if s.SeenHyperproofComments == nil {
		s.SeenHyperproofComments = map[string]bool{}
	}
	if s.Proof == nil {
		s.Proof = map[string]activities.ProofRecord{}
	}
	if s.PublishedProof == nil {
		s.PublishedProof = map[string]bool{}
	}
	if s.Problems == nil {
		s.Problems = map[string]Problem{}
	}
	w := &taskSync{
		in:   in,
		s:    s,
		hpCh: workflow.GetSignalChannel(ctx, SignalHyperproofChanged),
		snCh: workflow.GetSignalChannel(ctx, SignalServiceNowChanged),
		rsCh: workflow.GetSignalChannel(ctx, SignalResync),
		ulCh: workflow.GetSignalChannel(ctx, SignalUnlink),
		log:  workflow.GetLogger(ctx),
	}
	// The query is registered before anything blocks, so it answers from the
	// first workflow task on.
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (Status, error) { return w.status(ctx), nil }); err != nil {
		return nil, err
	}
	if err := workflow.SetQueryHandler(ctx, QueryTimeline, func() (Timeline, error) {
		return Timeline{WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID, Hops: w.s.Timeline, Dropped: w.s.TimelineDropped}, nil
	}); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *taskSync) status(ctx workflow.Context) Status {
	s := w.s
	st := Status{
		WorkflowID:           workflow.GetInfo(ctx).WorkflowExecution.ID,
		HyperproofTaskID:     s.HyperproofTaskID,
		Linked:               s.SysID != "",
		Phase:                w.phase(),
		Table:                s.Table,
		SysID:                s.SysID,
		Number:               s.Number,
		HyperproofStatus:     s.HyperproofStatus,
		ServiceNowState:      s.ServiceNowState,
		ServiceNowGroup:      s.ServiceNowGroup,
		UnmappedState:        s.UnmappedState,
		Suspended:            s.Suspended,
		SuspendedAs:          s.SuspendedAs,
		CommentsToHyperproof: s.CommentsToHyperproof,
		CommentsToServiceNow: s.CommentsToServiceNow,
		ProofSynced:          countProof(s.Proof, func(r activities.ProofRecord) bool { return r.Skipped == "" }),
		ProofSkipped:         countProof(s.Proof, func(r activities.ProofRecord) bool { return r.Skipped != "" }),
		ProofPublished:       len(s.PublishedProof),
		Reopens:              s.Reopens,
		LastError:            s.LastError,
		LastErrorAt:          s.LastErrorAt,
		LastSync:             s.LastSync,
	}
	for _, id := range sortedKeys(s.Proof) {
		st.Proof = append(st.Proof, s.Proof[id])
	}
	for _, k := range sortedKeys(s.Problems) {
		st.Problems = append(st.Problems, s.Problems[k])
	}
	return st
}

func countProof(m map[string]activities.ProofRecord, keep func(activities.ProofRecord) bool) int {
	n := 0
	for _, r := range m {
		if keep(r) {
			n++
		}
	}
	return n
}

func (w *taskSync) phase() string {
	switch {
	case w.unlink:
		return PhaseUnlinked
	case w.s.SysID == "":
		return PhaseLinking
	case w.s.Suspended:
		return PhaseSuspended
	case w.s.LastError != "" || len(w.s.Problems) > 0:
		return PhaseBroken
	case w.s.HyperproofStatus == hpSubmitted:
		return PhaseSubmitted
	default:
		return PhaseActive
	}
}

func (w *taskSync) run(ctx workflow.Context) error {
	w.upserts = workflow.GetVersion(ctx, searchAttributesChange, workflow.DefaultVersion, 1) >= 1
	w.publishSearchAttributes(ctx)
	if w.s.SysID == "" {
		if err := w.link(ctx); err != nil {
			return err
		}
		// The first round reads both sides and carries what already exists.
		w.hpDue, w.snDue = true, true
		w.publishSearchAttributes(ctx)
	}
	if w.s.PendingHint {
		w.hpDue, w.snDue = true, true
		w.s.PendingHint = false
	}
	rounds := 0
	var retryAt time.Time
	for {
		// A cancel request (operator, unlink) ends the workflow; without this
		// check the loop would wait for hints forever.
		if err := ctx.Err(); err != nil {
			return err
		}
		w.drainSignals()
		if w.unlink {
			w.log.Info("unlinked by an operator; nothing is deleted on either side")
			w.publishSearchAttributes(ctx)
			return nil
		}
		if !w.hpDue && !w.snDue {
			if w.shouldContinueAsNew(ctx, rounds) {
				return w.continueAsNew(ctx)
			}
			w.waitForHint(ctx, retryAt)
			continue
		}
		w.hpDue, w.snDue = false, false
		rounds++
		err := w.round(ctx)
		retryAt = time.Time{}
		switch {
		case err != nil:
			w.recordError(ctx, err)
			if !isRefusal(err) {
				// The API stayed unavailable through the activity retries:
				// try again later on our own. A refusal waits for a change.
				retryAt = workflow.Now(ctx).Add(retryDelay)
			}
		default:
			w.s.LastSync = workflow.Now(ctx)
			w.s.LastError, w.s.LastErrorAt = "", time.Time{}
			if p, ok := w.latestProblem(); ok {
				w.s.LastError, w.s.LastErrorAt = p.Step+": "+p.Error, p.At
			}
		}
		w.publishSearchAttributes(ctx)
	}
}

// drainSignals records every hint already delivered, without blocking.
func (w *taskSync) drainSignals() {
	for w.hpCh.ReceiveAsync(nil) {
		w.hpDue = true
	}
	for w.snCh.ReceiveAsync(nil) {
		w.snDue = true
	}
	for w.rsCh.ReceiveAsync(nil) {
		w.resync()
	}
	for w.ulCh.ReceiveAsync(nil) {
		w.unlink = true
	}
}

// resync forgets the cursors, so the next round lists everything again;
// the ledgers keep every item from being carried twice.
func (w *taskSync) resync() {
	w.s.ServiceNowCursor, w.s.HyperproofCursor = time.Time{}, time.Time{}
	w.hpDue, w.snDue = true, true
}

// waitForHint blocks until a signal arrives or a failed round is due again.
func (w *taskSync) waitForHint(ctx workflow.Context, retryAt time.Time) {
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(w.hpCh, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil); w.hpDue = true })
	sel.AddReceive(w.snCh, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil); w.snDue = true })
	sel.AddReceive(w.rsCh, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil); w.resync() })
	sel.AddReceive(w.ulCh, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil); w.unlink = true })
	sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
	if !retryAt.IsZero() {
		timerCtx, cancel := workflow.WithCancel(ctx)
		defer cancel()
		d := retryAt.Sub(workflow.Now(ctx))
		if d < time.Second {
			d = time.Second
		}
		sel.AddFuture(workflow.NewTimer(timerCtx, d), func(workflow.Future) { w.hpDue, w.snDue = true, true })
	}
	sel.Select(ctx)
}

func (w *taskSync) shouldContinueAsNew(ctx workflow.Context, rounds int) bool {
	if w.in.ContinueAsNewAfter > 0 && rounds >= w.in.ContinueAsNewAfter {
		return true
	}
	return workflow.GetInfo(ctx).GetContinueAsNewSuggested()
}

func (w *taskSync) continueAsNew(ctx workflow.Context) error {
	// Hints that arrived while deciding are not lost: they make the next run
	// do one more round.
	w.drainSignals()
	w.s.PendingHint = w.hpDue || w.snDue
	w.s.Runs++
	next := w.in
	next.State = w.s
	next.ExistingSysID = ""
	return workflow.NewContinueAsNewError(ctx, TaskSync, next)
}

func (w *taskSync) recordError(ctx workflow.Context, err error) {
	msg := err.Error()
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		msg = appErr.Message()
	}
	w.s.LastError = msg
	w.s.LastErrorAt = workflow.Now(ctx)
	w.log.Warn("sync round failed; will retry", "error", msg)
}

// link creates or finds the ServiceNow task; a retry never makes a second one
// because the activity looks the task up by its correlation first.
func (w *taskSync) link(ctx workflow.Context) error {
	var res activities.LinkResult
	err := workflow.ExecuteActivity(apiOptions(ctx), act.LinkServiceNowTask, activities.LinkRequest{
		HyperproofTaskID: w.s.HyperproofTaskID,
		Table:            w.s.Table,
		ExistingSysID:    w.in.ExistingSysID,
	}).Get(ctx, &res)
	if err != nil {
		w.recordError(ctx, err)
		// The workflow ends; the starter shows this one line.
		return temporal.NewNonRetryableApplicationError("link: "+errorMessage(err), "LinkFailed", nil)
	}
	w.s.Table, w.s.SysID, w.s.Number = res.Table, res.SysID, res.Number
	w.log.Info("linked", "table", res.Table, "number", res.Number)
	return nil
}

// round reads both sides, applies the lifecycle rules, then carries comments
// and proof unless the task is suspended.
func (w *taskSync) round(ctx workflow.Context) error {
	var snap activities.Snapshot
	if err := workflow.ExecuteActivity(apiOptions(ctx), act.ReadSnapshot, activities.SnapshotRequest{
		HyperproofTaskID: w.s.HyperproofTaskID, Table: w.s.Table, SysID: w.s.SysID,
	}).Get(ctx, &snap); err != nil {
		return err
	}
	first := w.s.HyperproofStatus == ""
	if first {
		// Baseline: what both sides are at link time is not a change.
		w.s.HyperproofStatus = snap.HyperproofStatus
		w.s.ServiceNowState = snap.ServiceNowState
		w.setGroup(snap)
		if snap.HyperproofStatus == hpClosed || snap.HyperproofStatus == hpCancelled {
			w.s.Suspended, w.s.SuspendedAs = true, snap.HyperproofStatus
		}
	}
	reopened, err := w.applyHyperproofChange(ctx, &snap)
	if reopened {
		w.log.Info("task sent back for more work", "reopens", w.s.Reopens)
	}
	if err != nil {
		return err
	}
	if err := w.settle(ctx, stepHyperproofStatus, w.applyServiceNowChange(ctx, snap)); err != nil {
		return err
	}
	// Nothing is carried while Closed or Canceled, also when the close could
	// not be fully applied yet.
	if w.s.Suspended || snap.HyperproofStatus == hpClosed || snap.HyperproofStatus == hpCancelled {
		return nil
	}
	if err := w.syncContent(ctx); err != nil {
		return err
	}
	// Pending alerts live in the state (Reopens > AlertsSent), so a round
	// that fails after a reopen still alerts on its retry.
	if w.s.AlertsSent < w.s.Reopens {
		return w.settle(ctx, stepAlert, w.alertAssignee(ctx))
	}
	return nil
}

func (w *taskSync) setGroup(snap activities.Snapshot) {
	w.s.ServiceNowGroup = snap.ServiceNowGroup
	if snap.ServiceNowGroup == "" {
		w.s.UnmappedState = snap.ServiceNowState
	} else {
		w.s.UnmappedState = ""
	}
}

// applyHyperproofChange carries a change of the Hyperproof status into
// ServiceNow. Hyperproof decides close, cancel and reopen, so it goes first.
// It reports whether the task was sent back for more work.
func (w *taskSync) applyHyperproofChange(ctx workflow.Context, snap *activities.Snapshot) (bool, error) {
	prev, cur := w.s.HyperproofStatus, snap.HyperproofStatus
	if cur == prev {
		return false, nil
	}
	w.log.Info("hyperproof status changed", "from", prev, "to", cur)
	switch cur {
	case hpClosed:
		// Closing from Submitted leaves ServiceNow where it is (already
		// Completed); from any other status it moves to the first Completed
		// state. Deciding on ServiceNow's real group covers both.
		// The move and the publication are independent: a refused move
		// does not keep the proof off the target. Until both are done the
		// close is not recorded, so the next hint tries what is missing.
		if err := w.settle(ctx, stepServiceNowState, w.moveServiceNow(ctx, snap, groupCompleted)); err != nil {
			return false, err
		}
		if err := w.settle(ctx, stepPublish, w.publishProof(ctx)); err != nil {
			return false, err
		}
		if w.hasProblem(stepServiceNowState, stepPublish) {
			return false, nil
		}
		w.s.HyperproofStatus = cur
		w.s.Suspended, w.s.SuspendedAs = true, hpClosed
		return false, nil
	case hpCancelled:
		if err := w.settle(ctx, stepServiceNowState, w.moveServiceNow(ctx, snap, groupCompleted)); err != nil || w.hasProblem(stepServiceNowState) {
			return false, err
		}
		w.s.HyperproofStatus = cur
		w.s.Suspended, w.s.SuspendedAs = true, hpCancelled
		return false, nil
	case hpNotStarted, hpInProgress:
		target := groupTodo
		if cur == hpInProgress {
			target = groupInProgress
		}
		if err := w.settle(ctx, stepServiceNowState, w.moveServiceNow(ctx, snap, target)); err != nil || w.hasProblem(stepServiceNowState) {
			return false, err
		}
		reopened := cur == hpInProgress && (prev == hpSubmitted || prev == hpClosed || prev == hpCancelled)
		w.s.HyperproofStatus = cur
		if w.s.Suspended {
			// Resume: what was added on either side meanwhile is carried by
			// the content sync of this round; status changes made during the
			// suspension are not replayed (this reopen decided the state).
			w.s.Suspended, w.s.SuspendedAs = false, ""
		}
		if reopened {
			w.s.Reopens++
		}
		return reopened, nil
	default:
		// Submitted set by hand in Hyperproof: nothing to carry.
		w.s.HyperproofStatus = cur
		return false, nil
	}
}

// moveServiceNow puts the ServiceNow task in the first state of group unless
// it is already in that group (compare before write). After a move it updates
// snap, so the rest of the round does not take the state read before our own
// move for a ServiceNow change.
func (w *taskSync) moveServiceNow(ctx workflow.Context, snap *activities.Snapshot, group string) error {
	if snap.ServiceNowGroup == group {
		w.s.ServiceNowState = snap.ServiceNowState
		w.setGroup(*snap)
		return nil
	}
	var res activities.MoveResult
	if err := workflow.ExecuteActivity(apiOptions(ctx), act.MoveServiceNow, activities.MoveServiceNowRequest{
		Table: w.s.Table, SysID: w.s.SysID, Group: group,
	}).Get(ctx, &res); err != nil {
		return err
	}
	w.s.ServiceNowState = res.State
	w.s.ServiceNowGroup = group
	w.s.UnmappedState = ""
	snap.ServiceNowState, snap.ServiceNowGroup = res.State, group
	w.hop(ctx, Hop{Kind: HopStatus, Direction: ToServiceNow, SourceID: w.s.HyperproofStatus + "→" + res.State, Outcome: OutcomeWritten,
		Why: "ServiceNow moved to the first " + group + " state"})
	return nil
}

// applyServiceNowChange carries a change of the ServiceNow state into
// Hyperproof through the status map. While suspended it only records the
// state, so nothing is replayed on resume. A move inside one group changes
// nothing. The new state is recorded only once it has been carried, so a
// failed write is tried again by the next round.
func (w *taskSync) applyServiceNowChange(ctx workflow.Context, snap activities.Snapshot) error {
	if snap.ServiceNowState == w.s.ServiceNowState {
		return nil
	}
	// Only Hyperproof closes a task: while it is Closed or Canceled (also
	// when the close is not fully applied yet) ServiceNow changes are only
	// recorded.
	closed := snap.HyperproofStatus == hpClosed || snap.HyperproofStatus == hpCancelled
	if w.s.Suspended || closed || snap.ServiceNowGroup == w.s.ServiceNowGroup {
		w.recordServiceNowState(snap)
		return nil
	}
	var target string
	switch snap.ServiceNowGroup {
	case groupTodo:
		target = hpNotStarted
	case groupInProgress:
		target = hpInProgress
	case groupCompleted:
		target = hpSubmitted
	default:
		w.log.Warn("servicenow state is in no group of the status map; hyperproof status kept", "state", snap.ServiceNowState)
		w.hop(ctx, Hop{Kind: HopStatus, Direction: ToHyperproof, SourceID: snap.ServiceNowState, Outcome: OutcomeSkipped,
			Why: "state is in no group of the status map"})
		w.recordServiceNowState(snap)
		return nil
	}
	if target != w.s.HyperproofStatus {
		err := workflow.ExecuteActivity(apiOptions(ctx), act.SetHyperproofStatus, activities.SetHyperproofStatusRequest{
			HyperproofTaskID: w.s.HyperproofTaskID, StatusType: target, ReadUpdatedOn: snap.HyperproofUpdatedOn,
		}).Get(ctx, nil)
		if isSuperseded(err) {
			// The task changed since it was read: the creator acted, or an
			// earlier attempt's write landed without its answer. Take the
			// write as made and read again at once, so whatever the creator
			// did afterwards is seen as the creator's change, never undone.
			w.s.HyperproofStatus = target
			w.recordServiceNowState(snap)
			w.hpDue = true
			return nil
		}
		if err != nil {
			return err // the state is not recorded: the next round tries again
		}
		w.s.HyperproofStatus = target
		w.hop(ctx, Hop{Kind: HopStatus, Direction: ToHyperproof, SourceID: snap.ServiceNowState, Outcome: OutcomeWritten,
			Why: "Hyperproof set to " + target})
	}
	w.recordServiceNowState(snap)
	return nil
}

// recordServiceNowState remembers the state seen, so only a later
// difference counts as a ServiceNow change.
func (w *taskSync) recordServiceNowState(snap activities.Snapshot) {
	w.s.ServiceNowState = snap.ServiceNowState
	w.setGroup(snap)
}

// syncContent carries new comments both ways and new attachments into
// Hyperproof, each exactly once by its source id.
func (w *taskSync) syncContent(ctx workflow.Context) error {
	if err := w.syncServiceNowComments(ctx); err != nil {
		return err
	}
	if err := w.syncHyperproofComments(ctx); err != nil {
		return err
	}
	return w.syncAttachments(ctx)
}

// item settles one comment or file: a refusal fails that item alone (it is
// shown, and tried again on the next hint); other errors fail the round.
func (w *taskSync) item(ctx workflow.Context, step, id string, err error) (ok bool, _ error) {
	key := step + "/" + id
	if err := w.settle(ctx, key, err); err != nil {
		return false, err
	}
	return !w.hasProblem(key), nil
}

// holdCursor keeps a cursor from passing an item that failed, so the item
// is listed again next time.
func holdCursor(cursor *time.Time, failedAt time.Time) {
	if t := failedAt.Add(-cursorOverlap); cursor.After(t) {
		*cursor = t
	}
}

// cursorOverlap re-reads a little before the newest item seen: sources stamp
// whole seconds, so rows sharing the boundary second are read again and
// de-duplicated by id instead of skipped.
const cursorOverlap = 2 * time.Second

func (w *taskSync) syncServiceNowComments(ctx workflow.Context) error {
	var entries []activities.ServiceNowComment
	err := workflow.ExecuteActivity(apiOptions(ctx), act.ListServiceNowComments, activities.CommentsRequest{
		HyperproofTaskID: w.s.HyperproofTaskID, Table: w.s.Table, SysID: w.s.SysID, Since: w.s.ServiceNowCursor,
	}).Get(ctx, &entries)
	if err != nil {
		return w.settle(ctx, stepListServiceNow, err)
	}
	delete(w.s.Problems, stepListServiceNow)
	var failed []time.Time
	for _, e := range entries {
		if _, seen := w.s.SeenServiceNowComments[e.ID]; seen {
			continue
		}
		hpID := ""
		if e.Ours {
			w.hop(ctx, Hop{Kind: HopComment, Direction: ToHyperproof, SourceID: e.ID, SeenAt: e.CreatedOn, Outcome: OutcomeSkipped,
				Why: "written by the integration (not mirrored back)"})
		} else {
			err := workflow.ExecuteActivity(apiOptions(ctx), act.CopyCommentToHyperproof, activities.CopyToHyperproofRequest{
				HyperproofTaskID: w.s.HyperproofTaskID, Comment: e,
			}).Get(ctx, &hpID)
			if ok, err := w.item(ctx, "comment-to-hyperproof", e.ID, err); err != nil {
				return err
			} else if !ok {
				failed = append(failed, e.CreatedOn)
				continue
			}
			w.s.CommentsToHyperproof++
			w.hop(ctx, Hop{Kind: HopComment, Direction: ToHyperproof, SourceID: e.ID, SeenAt: e.CreatedOn, Outcome: OutcomeWritten})
		}
		w.s.SeenServiceNowComments[e.ID] = hpID
		if c := e.CreatedOn.Add(-cursorOverlap); c.After(w.s.ServiceNowCursor) {
			w.s.ServiceNowCursor = c
		}
	}
	for _, at := range failed {
		holdCursor(&w.s.ServiceNowCursor, at)
	}
	return nil
}

func (w *taskSync) syncHyperproofComments(ctx workflow.Context) error {
	var comments []activities.HyperproofComment
	err := workflow.ExecuteActivity(apiOptions(ctx), act.ListHyperproofComments, activities.CommentsRequest{
		HyperproofTaskID: w.s.HyperproofTaskID, Since: w.s.HyperproofCursor,
	}).Get(ctx, &comments)
	if err != nil {
		return w.settle(ctx, stepListHyperproof, err)
	}
	delete(w.s.Problems, stepListHyperproof)
	var failed []time.Time
	for _, c := range comments {
		if w.s.SeenHyperproofComments[c.ID] {
			continue
		}
		if c.Ours {
			w.hop(ctx, Hop{Kind: HopComment, Direction: ToServiceNow, SourceID: c.ID, SeenAt: c.CreatedOn, Outcome: OutcomeSkipped,
				Why: "written by the integration (not mirrored back)"})
		} else {
			err := workflow.ExecuteActivity(apiOptions(ctx), act.CopyCommentToServiceNow, activities.CopyToServiceNowRequest{
				Table: w.s.Table, SysID: w.s.SysID, Comment: c,
			}).Get(ctx, nil)
			if ok, err := w.item(ctx, "comment-to-servicenow", c.ID, err); err != nil {
				return err
			} else if !ok {
				failed = append(failed, c.CreatedOn)
				continue
			}
			w.s.CommentsToServiceNow++
			w.hop(ctx, Hop{Kind: HopComment, Direction: ToServiceNow, SourceID: c.ID, SeenAt: c.CreatedOn, Outcome: OutcomeWritten})
		}
		w.s.SeenHyperproofComments[c.ID] = true
		if t := c.CreatedOn.Add(-cursorOverlap); t.After(w.s.HyperproofCursor) {
			w.s.HyperproofCursor = t
		}
	}
	for _, at := range failed {
		holdCursor(&w.s.HyperproofCursor, at)
	}
	return nil
}

func (w *taskSync) syncAttachments(ctx workflow.Context) error {
	var atts []activities.AttachmentMeta
	err := workflow.ExecuteActivity(apiOptions(ctx), act.ListServiceNowAttachments, activities.AttachmentsRequest{
		Table: w.s.Table, SysID: w.s.SysID,
	}).Get(ctx, &atts)
	if err != nil {
		return w.settle(ctx, stepListServiceNow, err)
	}
	present := map[string]bool{}
	for _, a := range atts {
		present[a.SysID] = true
	}
	// A file deleted in ServiceNow after it became proof stays in
	// Hyperproof (it is audit evidence); the record says it is gone at source.
	for _, id := range sortedKeys(w.s.Proof) {
		if rec := w.s.Proof[id]; !present[id] && rec.DeletedAtSource.IsZero() {
			rec.DeletedAtSource = workflow.Now(ctx)
			w.s.Proof[id] = rec
		}
	}
	for _, a := range atts {
		// A skipped file (e.g. over the size limit) is looked at again each
		// round, so raising the limit carries it; its notes are not repeated.
		rec, done := w.s.Proof[a.SysID]
		if done && rec.Skipped == "" {
			continue
		}
		err := workflow.ExecuteActivity(transferOptions(ctx), act.CopyAttachmentToHyperproof, activities.CopyAttachmentRequest{
			HyperproofTaskID: w.s.HyperproofTaskID, Table: w.s.Table, SysID: w.s.SysID, Attachment: a,
		}).Get(ctx, &rec)
		if ok, err := w.item(ctx, "proof", a.SysID, err); err != nil {
			return err
		} else if !ok {
			continue
		}
		w.s.Proof[a.SysID] = rec
		if rec.Skipped != "" {
			if !done {
				w.hop(ctx, Hop{Kind: HopProof, Direction: ToHyperproof, SourceID: a.SysID, SeenAt: a.CreatedOn, Outcome: OutcomeSkipped, Why: rec.Skipped})
			}
		} else {
			w.hop(ctx, Hop{Kind: HopProof, Direction: ToHyperproof, SourceID: a.SysID, SeenAt: a.CreatedOn, Outcome: OutcomeWritten, WrittenAt: rec.ReachedAt})
		}
	}
	return nil
}

// publishProof adds the task's proof that is not yet on the target object.
// The activity looks at the target before writing, so close, reopen and
// close again leave every file there once.
func (w *taskSync) publishProof(ctx workflow.Context) error {
	// Proof attached just before the close is carried first, so it is
	// published too.
	if err := w.syncAttachments(ctx); err != nil {
		return err
	}
	var res activities.PublishResult
	if err := workflow.ExecuteActivity(transferOptions(ctx), act.PublishProofToTarget, activities.PublishRequest{
		HyperproofTaskID: w.s.HyperproofTaskID,
	}).Get(ctx, &res); err != nil {
		return err
	}
	now := workflow.Now(ctx)
	if res.Uploaded > 0 {
		w.hop(ctx, Hop{Kind: HopPublish, Direction: "task→" + res.TargetType, SourceID: res.TargetID, Outcome: OutcomeWritten,
			Why: fmt.Sprintf("%d proof file(s) added to the target's Proof tab", res.Uploaded)})
	}
	for _, id := range res.OnTarget {
		w.s.PublishedProof[id] = true
	}
	for _, k := range sortedKeys(w.s.Proof) {
		rec := w.s.Proof[k]
		if w.s.PublishedProof[rec.HyperproofID] && rec.PublishedAt.IsZero() {
			rec.PublishedAt = now
			w.s.Proof[k] = rec
		}
	}
	return nil
}

// alertAssignee leaves a ServiceNow comment saying more work is needed; the
// key (reopen number) makes a retried alert find the one already written.
func (w *taskSync) alertAssignee(ctx workflow.Context) error {
	key := fmt.Sprintf("reopen-%d", w.s.Reopens)
	if err := workflow.ExecuteActivity(apiOptions(ctx), act.AlertAssignee, activities.AlertRequest{
		HyperproofTaskID: w.s.HyperproofTaskID, Table: w.s.Table, SysID: w.s.SysID, Key: key,
	}).Get(ctx, nil); err != nil {
		return err
	}
	w.s.AlertsSent = w.s.Reopens
	w.hop(ctx, Hop{Kind: HopAlert, Direction: ToServiceNow, SourceID: key, Outcome: OutcomeWritten, Why: "task set back to In progress"})
	return nil
}
