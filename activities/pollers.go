package activities

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

	"hpsync/internal/telemetry"
)

// PollWindow is how long one poller activity keeps polling before it hands
// its cursor back to the poller workflow.
var PollWindow = 5 * time.Minute

// Adaptive comment polling. Hyperproof comments may not bump the task's
// updatedOn, so each linked task's comments are checked on their own
// schedule: at the poll interval after activity on the task, doubling up to
// MaxCommentInterval while it stays idle. At most CommentChecksPerCycle
// tasks are checked per cycle, so the calls per cycle stay bounded however
// many idle tasks are linked. Worst-case delay for a Hyperproof comment on
// an idle task: MaxCommentInterval, or (linked tasks / CommentChecksPerCycle)
// poll intervals when that is longer.
var (
	MaxCommentInterval    = 10 * time.Minute
	CommentChecksPerCycle = 25
)

// boundaryOverlap re-reads a little before the cursor: the APIs stamp whole
// seconds, so rows sharing the boundary second are read again and skipped by
// key instead of being missed.
const boundaryOverlap = 2 * time.Second

// HyperproofPollState is the Hyperproof poller's durable cursor.
type HyperproofPollState struct {
	Cursor   time.Time
	Boundary map[string]time.Time // task id@updatedOn hinted -> its updatedOn
	Watches  map[string]CommentWatch
}

// CommentWatch is one linked task's comment-check schedule.
type CommentWatch struct {
	Interval    time.Duration
	NextCheck   time.Time
	Fingerprint string // count and newest id of the comments last seen
}

// ServiceNowPollState is the ServiceNow poller's durable cursors.
type ServiceNowPollState struct {
	TaskCursor       map[string]time.Time // per table: sys_updated_on
	TaskBoundary     map[string]time.Time // table/sys_id@mod_count hinted -> its sys_updated_on
	AttachmentCursor time.Time
	AttachBoundary   map[string]time.Time // attachment sys_id hinted -> its sys_created_on
}

// runPollLoop calls cycle every interval until the window ends, heartbeating
// the state so a retried activity resumes from the last cycle.
func runPollLoop[S any](ctx context.Context, side string, state *S, interval time.Duration, cycle func(context.Context, *S) error) (S, error) {
	if activity.HasHeartbeatDetails(ctx) {
		var saved S
		if err := activity.GetHeartbeatDetails(ctx, &saved); err == nil {
			*state = saved
		}
	}
	deadline := time.Now().Add(PollWindow)
	for {
		started := time.Now()
		if err := cycle(ctx, state); err != nil {
			activity.GetLogger(ctx).Warn("poll cycle failed; next cycle retries", "error", err)
			telemetry.Error(ctx, "poll_"+side)
		} else {
			// Lag: how far behind now the poller's view is after a cycle.
			telemetry.PollerLag(side, time.Since(started)+interval)
		}
		activity.RecordHeartbeat(ctx, *state)
		next := time.Now().Add(interval)
		if next.After(deadline) {
			return *state, nil
		}
		// Sleep in slices so heartbeats keep flowing during long intervals.
		// A worker that is stopping hands the cursor back at once, so the
		// next window starts on another (or the restarted) worker without
		// waiting for a heartbeat timeout.
		for time.Now().Before(next) {
			d := min(time.Until(next), 3*time.Second)
			select {
			case <-ctx.Done():
				return *state, ctx.Err()
			case <-activity.GetWorkerStopChannel(ctx):
				return *state, nil
			case <-time.After(d):
			}
			activity.RecordHeartbeat(ctx, *state)
		}
	}
}

// PollHyperproof runs the Hyperproof poll loop for one window.
func (a *Activities) PollHyperproof(ctx context.Context, state HyperproofPollState) (HyperproofPollState, error) {
	return runPollLoop(ctx, telemetry.SideHyperproof, &state, a.HyperproofPollInterval, a.hyperproofCycle)
}

func (a *Activities) hint(ctx context.Context, taskID string, side Side) error {
	err := a.Hints.Hint(ctx, taskID, side)
	if errors.Is(err, ErrNotLinked) {
		return nil
	}
	return err
}

func (a *Activities) hyperproofCycle(ctx context.Context, st *HyperproofPollState) error {
	now := time.Now().UTC()
	if st.Cursor.IsZero() {
		st.Cursor = now.Add(-time.Minute)
	}
	if st.Watches == nil {
		st.Watches = map[string]CommentWatch{}
	}
	base := a.HyperproofPollInterval

	// 1. Tasks whose updatedOn moved (status changes and edits).
	tasks, err := a.HP.FilterTasks(ctx, st.Cursor.Add(-boundaryOverlap), nil)
	if err != nil {
		return err
	}
	if st.Boundary == nil {
		st.Boundary = map[string]time.Time{}
	}
	newCursor := st.Cursor
	for _, t := range tasks {
		key := t.ID + "@" + t.UpdatedOn.UTC().Format(time.RFC3339Nano)
		if _, seen := st.Boundary[key]; seen {
			continue
		}
		if err := a.hint(ctx, t.ID, SideHyperproof); err != nil {
			return err
		}
		if w, ok := st.Watches[t.ID]; ok {
			w.Interval, w.NextCheck = base, now.Add(base)
			st.Watches[t.ID] = w
		}
		st.Boundary[key] = t.UpdatedOn
		if t.UpdatedOn.After(newCursor) {
			newCursor = t.UpdatedOn
		}
	}
	st.Cursor = newCursor
	pruneBefore(st.Boundary, newCursor.Add(-2*boundaryOverlap))

	// 2. The linked tasks' comment schedules.
	linked, err := a.Hints.LinkedTasks(ctx)
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, id := range linked {
		live[id] = true
		if _, ok := st.Watches[id]; !ok {
			st.Watches[id] = CommentWatch{Interval: base, NextCheck: now}
		}
	}
	for id := range st.Watches {
		if !live[id] {
			delete(st.Watches, id)
		}
	}
	var due []string
	for id, w := range st.Watches {
		if !w.NextCheck.After(now) {
			due = append(due, id)
		}
	}
	sort.Slice(due, func(i, j int) bool {
		wi, wj := st.Watches[due[i]], st.Watches[due[j]]
		if !wi.NextCheck.Equal(wj.NextCheck) {
			return wi.NextCheck.Before(wj.NextCheck)
		}
		return due[i] < due[j]
	})
	if len(due) > CommentChecksPerCycle {
		due = due[:CommentChecksPerCycle]
	}
	for _, id := range due {
		w := st.Watches[id]
		comments, err := a.HP.ListComments(ctx, id)
		if err != nil {
			w.NextCheck = now.Add(w.Interval)
			st.Watches[id] = w
			continue
		}
		fp := strconv.Itoa(len(comments))
		if n := len(comments); n > 0 {
			newest := comments[0]
			for _, c := range comments[1:] {
				if c.CreatedOn.After(newest.CreatedOn) || c.CreatedOn.Equal(newest.CreatedOn) && c.ID > newest.ID {
					newest = c
				}
			}
			fp += ":" + newest.ID
		}
		switch {
		case w.Fingerprint == "":
			// First look: the workflow carried what exists when it linked.
		case fp != w.Fingerprint:
			if err := a.hint(ctx, id, SideHyperproof); err != nil {
				return err
			}
			w.Interval = base
		default:
			w.Interval = min(w.Interval*2, MaxCommentInterval)
		}
		if w.Interval <= 0 {
			w.Interval = base
		}
		w.Fingerprint = fp
		w.NextCheck = now.Add(w.Interval)
		st.Watches[id] = w
	}
	return nil
}

// PollServiceNow runs the ServiceNow poll loop for one window: task records
// updated since the cursor, and attachments added since the cursor (adding
// an attachment does not touch the parent record).
func (a *Activities) PollServiceNow(ctx context.Context, state ServiceNowPollState) (ServiceNowPollState, error) {
	return runPollLoop(ctx, telemetry.SideServiceNow, &state, a.ServiceNowPollInterval, a.serviceNowCycle)
}

// HyperproofTaskOf reads the Hyperproof task id out of a ServiceNow
// correlation_id; false when the record is not ours.
func HyperproofTaskOf(correlationID string) (string, bool) {
	if !strings.HasPrefix(correlationID, CorrelationPrefix) || len(correlationID) == len(CorrelationPrefix) {
		return "", false
	}
	return strings.TrimPrefix(correlationID, CorrelationPrefix), true
}

func (a *Activities) serviceNowCycle(ctx context.Context, st *ServiceNowPollState) error {
	now := time.Now().UTC()
	if st.TaskCursor == nil {
		st.TaskCursor = map[string]time.Time{}
	}
	if st.TaskBoundary == nil {
		st.TaskBoundary = map[string]time.Time{}
	}
	if st.AttachBoundary == nil {
		st.AttachBoundary = map[string]time.Time{}
	}
	for _, table := range a.Tables {
		cur, ok := st.TaskCursor[table]
		if !ok {
			cur = now.Add(-time.Minute)
		}
		tasks, err := a.SN.ListTasksUpdatedSince(ctx, table, cur.Add(-boundaryOverlap), CorrelationPrefix)
		if err != nil {
			return err
		}
		newCur := cur
		for _, t := range tasks {
			key := table + "/" + t.SysID + "@" + strconv.FormatInt(t.ModCount, 10)
			if _, seen := st.TaskBoundary[key]; seen {
				continue
			}
			if id, ok := HyperproofTaskOf(t.CorrelationID); ok {
				if err := a.hint(ctx, id, SideServiceNow); err != nil {
					return err
				}
			}
			st.TaskBoundary[key] = t.UpdatedOn
			if t.UpdatedOn.After(newCur) {
				newCur = t.UpdatedOn
			}
		}
		st.TaskCursor[table] = newCur
	}
	oldest := now
	for _, c := range st.TaskCursor {
		if c.Before(oldest) {
			oldest = c
		}
	}
	pruneBefore(st.TaskBoundary, oldest.Add(-2*boundaryOverlap))

	if st.AttachmentCursor.IsZero() {
		st.AttachmentCursor = now.Add(-time.Minute)
	}
	atts, err := a.SN.ListAttachmentsCreatedSince(ctx, a.Tables, st.AttachmentCursor.Add(-boundaryOverlap))
	if err != nil {
		return err
	}
	parents := map[string]string{}
	newCur := st.AttachmentCursor
	for _, at := range atts {
		if _, seen := st.AttachBoundary[at.SysID]; seen {
			continue
		}
		pk := at.TableName + "/" + at.TableSysID
		id, ok := parents[pk]
		if !ok {
			t, err := a.SN.GetTask(ctx, at.TableName, at.TableSysID)
			if err != nil && !isNotFound(err) {
				return err
			}
			id, _ = HyperproofTaskOf(t.CorrelationID)
			parents[pk] = id
		}
		if id != "" {
			if err := a.hint(ctx, id, SideServiceNow); err != nil {
				return err
			}
		}
		st.AttachBoundary[at.SysID] = at.CreatedOn
		if at.CreatedOn.After(newCur) {
			newCur = at.CreatedOn
		}
	}
	st.AttachmentCursor = newCur
	pruneBefore(st.AttachBoundary, newCur.Add(-2*boundaryOverlap))
	return nil
}

// pruneBefore forgets keys stamped before t: they can no longer come back
// inside the overlap window, so the sets stay small.
func pruneBefore(m map[string]time.Time, t time.Time) {
	for k, at := range m {
		if at.Before(t) {
			delete(m, k)
		}
	}
}
