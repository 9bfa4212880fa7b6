// Package activities holds every call the workflows make to Hyperproof and
// ServiceNow. Each external write looks before it writes, keyed by ids that
// survive retries and continue-as-new, so a retried activity or a crashed
// worker never doubles a comment, a proof or a task.
package activities

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.temporal.io/sdk/temporal"

	"hpsync/internal/hyperproof"
	"hpsync/internal/servicenow"
	"hpsync/internal/statusmap"
	"hpsync/internal/telemetry"
)

// Side names the system a hint is about.
type Side string

const (
	SideHyperproof Side = "hyperproof"
	SideServiceNow Side = "servicenow"
)

// ErrNotLinked is returned by a Hinter for a task that has no workflow.
var ErrNotLinked = errors.New("task is not linked")

// Hinter delivers hints to task workflows and lists the linked tasks. The
// worker implements it with the Temporal client.
type Hinter interface {
	Hint(ctx context.Context, hyperproofTaskID string, side Side) error
	LinkedTasks(ctx context.Context) ([]string, error)
}

// Activities holds the API clients shared by all activities of a worker.
type Activities struct {
	HP        *hyperproof.Client
	SN        *servicenow.Client
	StatusMap statusmap.Map
	// SNUser is the integration user's user_name: journal entries it wrote
	// are ours and never mirrored back.
	SNUser        string
	SyncWorkNotes bool
	// MaxProofBytes: larger attachments are not downloaded (0 = no limit).
	MaxProofBytes int64
	Hints         Hinter
	Tables        []string

	HyperproofPollInterval time.Duration
	ServiceNowPollInterval time.Duration

	mu         sync.Mutex
	statusByID map[string]string // task status id -> type
	statusAt   time.Time
	me         string
}

// nonRetryable marks errors that retrying cannot fix.
func nonRetryable(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), "BusinessError", nil)
}

// classify turns client errors into Temporal errors: 400/401/403/404 are
// non-retryable (a business rule, data policy, ACL or missing record does not
// change by retrying); 429 and 5xx wait the time the server asked for.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var sn *servicenow.APIError
	var hp *hyperproof.APIError
	var status int
	var retryable bool
	var after time.Duration
	switch {
	case errors.As(err, &sn):
		status, retryable, after = sn.StatusCode, sn.Retryable(), sn.RetryAfter
	case errors.As(err, &hp):
		status, retryable, after = hp.StatusCode, hp.Retryable(), hp.RetryAfter
	default:
		telemetry.Error(context.Background(), "network")
		return fmt.Errorf("%s: %w", op, err)
	}
	msg := fmt.Sprintf("%s: %v", op, err)
	telemetry.Error(context.Background(), errorKind(sn != nil, status))
	if !retryable {
		return temporal.NewApplicationErrorWithOptions(msg, fmt.Sprintf("HTTP%d", status), temporal.ApplicationErrorOptions{NonRetryable: true})
	}
	return temporal.NewApplicationErrorWithOptions(msg, fmt.Sprintf("HTTP%d", status), temporal.ApplicationErrorOptions{NextRetryDelay: after})
}

// errorKind is the errors metric's label: the API and the class of answer.
func errorKind(serviceNow bool, status int) string {
	api := "hyperproof"
	if serviceNow {
		api = "servicenow"
	}
	switch {
	case status == 429:
		return api + "_http_429"
	case status >= 500:
		return api + "_http_5xx"
	default:
		return api + "_http_4xx"
	}
}

func isNotFound(err error) bool {
	var sn *servicenow.APIError
	if errors.As(err, &sn) {
		return sn.StatusCode == 404
	}
	var hp *hyperproof.APIError
	if errors.As(err, &hp) {
		return hp.StatusCode == 404
	}
	return false
}

// statusType resolves a task status id to its type. Statuses are org
// settings that rarely change: cached for a minute.
func (a *Activities) statusType(ctx context.Context, id string) (string, error) {
	a.mu.Lock()
	if a.statusByID != nil && time.Since(a.statusAt) < time.Minute {
		t, ok := a.statusByID[id]
		a.mu.Unlock()
		if ok {
			return t, nil
		}
	} else {
		a.mu.Unlock()
	}
	list, err := a.HP.ListTaskStatuses(ctx)
	if err != nil {
		return "", classify("list hyperproof task statuses", err)
	}
	m := map[string]string{}
	for _, s := range list {
		m[s.ID] = s.Type
	}
	a.mu.Lock()
	a.statusByID, a.statusAt = m, time.Now()
	a.mu.Unlock()
	t, ok := m[id]
	if !ok {
		return "", nonRetryable("hyperproof task status %q is not one of the organisation's statuses", id)
	}
	return t, nil
}

func (a *Activities) statusIDForType(ctx context.Context, typ string) (string, error) {
	list, err := a.HP.ListTaskStatuses(ctx)
	if err != nil {
		return "", classify("list hyperproof task statuses", err)
	}
	for _, s := range list {
		if s.Type == typ {
			return s.ID, nil
		}
	}
	return "", nonRetryable("the hyperproof organisation has no task status of type %q", typ)
}

// myHyperproofID is the identity the integration writes as in Hyperproof.
func (a *Activities) myHyperproofID(ctx context.Context) (string, error) {
	a.mu.Lock()
	me := a.me
	a.mu.Unlock()
	if me != "" {
		return me, nil
	}
	u, err := a.HP.Me(ctx)
	if err != nil {
		return "", classify("read hyperproof identity", err)
	}
	a.mu.Lock()
	a.me = u.ID
	a.mu.Unlock()
	return u.ID, nil
}

// groupForHyperproof is the status-map group a new ServiceNow task starts in.
func groupForHyperproof(statusType string) statusmap.Group {
	switch statusType {
	case hyperproof.StatusNotStarted:
		return statusmap.GroupTodo
	case hyperproof.StatusSubmitted:
		return statusmap.GroupCompleted
	default:
		return statusmap.GroupInProgress
	}
}

// LinkServiceNowTask finds, links or creates the ServiceNow task of a
// Hyperproof task. The correlation id is the key: a retry after a create
// whose answer was lost finds the task instead of making a second one.
func (a *Activities) LinkServiceNowTask(ctx context.Context, req LinkRequest) (LinkResult, error) {
	task, err := a.HP.GetTask(ctx, req.HyperproofTaskID)
	if err != nil {
		if isNotFound(err) {
			return LinkResult{}, nonRetryable("hyperproof task %s not found", req.HyperproofTaskID)
		}
		return LinkResult{}, classify("read hyperproof task", err)
	}
	corr := CorrelationID(req.HyperproofTaskID)
	found, err := a.SN.FindTaskByCorrelation(ctx, req.Table, corr)
	if err != nil {
		return LinkResult{}, classify("find servicenow task by correlation", err)
	}
	if found != nil {
		return LinkResult{Table: req.Table, SysID: found.SysID, Number: found.Number, State: found.State}, nil
	}
	if req.ExistingSysID != "" {
		t, err := a.SN.GetTask(ctx, req.Table, req.ExistingSysID)
		if err != nil {
			if isNotFound(err) {
				return LinkResult{}, nonRetryable("servicenow %s %s not found", req.Table, req.ExistingSysID)
			}
			return LinkResult{}, classify("read servicenow task", err)
		}
		if t.CorrelationID != "" && t.CorrelationID != corr {
			return LinkResult{}, nonRetryable("servicenow %s %s is already correlated with %q", req.Table, t.Number, t.CorrelationID)
		}
		t, err = a.SN.UpdateTask(ctx, req.Table, t.SysID, map[string]string{
			"correlation_id": corr, "correlation_display": CorrelationDisplay,
		})
		if err != nil {
			return LinkResult{}, classify("correlate servicenow task", err)
		}
		return LinkResult{Table: req.Table, SysID: t.SysID, Number: t.Number, State: t.State}, nil
	}

	typ, err := a.statusType(ctx, task.TaskStatusID)
	if err != nil {
		return LinkResult{}, err
	}
	state, ok := a.StatusMap.First(req.Table, groupForHyperproof(typ))
	if !ok {
		return LinkResult{}, nonRetryable("status map has no %s state for table %s", groupForHyperproof(typ), req.Table)
	}
	nt := servicenow.NewTask{
		ShortDescription:   task.Title,
		Description:        task.Description,
		State:              state,
		CorrelationID:      corr,
		CorrelationDisplay: CorrelationDisplay,
	}
	if task.DueDate != nil {
		nt.DueDate = task.DueDate.UTC().Format(servicenow.DateLayout)
	}
	if task.AssigneeID != "" {
		sysID, err := a.matchAssignee(ctx, task.AssigneeID)
		if err != nil {
			return LinkResult{}, err
		}
		nt.AssignedTo = sysID
	}
	t, err := a.SN.CreateTask(ctx, req.Table, nt)
	if err != nil {
		return LinkResult{}, classify("create servicenow task", err)
	}
	return LinkResult{Table: req.Table, SysID: t.SysID, Number: t.Number, State: t.State}, nil
}

// matchAssignee finds the ServiceNow user with the Hyperproof assignee's
// e-mail; "" when there is none (the task is created unassigned).
func (a *Activities) matchAssignee(ctx context.Context, hyperproofUserID string) (string, error) {
	users, err := a.HP.ListUsers(ctx)
	if err != nil {
		return "", classify("list hyperproof users", err)
	}
	for _, u := range users {
		if u.ID != hyperproofUserID || u.Email == "" {
			continue
		}
		su, err := a.SN.FindUserByEmail(ctx, u.Email)
		if err != nil {
			return "", classify("find servicenow user by e-mail", err)
		}
		if su != nil {
			return su.SysID, nil
		}
	}
	return "", nil
}

// ReadSnapshot reads both sides' current status.
func (a *Activities) ReadSnapshot(ctx context.Context, req SnapshotRequest) (Snapshot, error) {
	task, err := a.HP.GetTask(ctx, req.HyperproofTaskID)
	if err != nil {
		return Snapshot{}, classify("read hyperproof task", err)
	}
	typ, err := a.statusType(ctx, task.TaskStatusID)
	if err != nil {
		return Snapshot{}, err
	}
	t, err := a.SN.GetTask(ctx, req.Table, req.SysID)
	if err != nil {
		return Snapshot{}, classify("read servicenow task", err)
	}
	g, _ := a.StatusMap.GroupOf(req.Table, t.State)
	return Snapshot{HyperproofStatus: typ, HyperproofUpdatedOn: task.UpdatedOn, ServiceNowState: t.State, ServiceNowGroup: string(g), ReadAt: time.Now().UTC()}, nil
}

// MoveServiceNow moves the ServiceNow task to the first state of a group,
// unless it is already in that group.
func (a *Activities) MoveServiceNow(ctx context.Context, req MoveServiceNowRequest) (MoveResult, error) {
	t, err := a.SN.GetTask(ctx, req.Table, req.SysID)
	if err != nil {
		return MoveResult{}, classify("read servicenow task", err)
	}
	if g, ok := a.StatusMap.GroupOf(req.Table, t.State); ok && string(g) == req.Group {
		return MoveResult{State: t.State}, nil
	}
	first, ok := a.StatusMap.First(req.Table, statusmap.Group(req.Group))
	if !ok {
		return MoveResult{}, nonRetryable("status map has no %s state for table %s", req.Group, req.Table)
	}
	if _, err := a.SN.UpdateTask(ctx, req.Table, req.SysID, map[string]string{"state": first}); err != nil {
		return MoveResult{}, classify("set servicenow state", err)
	}
	telemetry.ItemSynced(ctx, telemetry.KindStatus, telemetry.DirectionToServiceNow)
	return MoveResult{State: first, Changed: true}, nil
}

// SetHyperproofStatus sets the Hyperproof task's status by type, unless it
// already has it.
func (a *Activities) SetHyperproofStatus(ctx context.Context, req SetHyperproofStatusRequest) error {
	id, err := a.statusIDForType(ctx, req.StatusType)
	if err != nil {
		return err
	}
	task, err := a.HP.GetTask(ctx, req.HyperproofTaskID)
	if err != nil {
		return classify("read hyperproof task", err)
	}
	if task.TaskStatusID == id {
		return nil
	}
	if !req.ReadUpdatedOn.IsZero() && !task.UpdatedOn.Equal(req.ReadUpdatedOn) {
		return temporal.NewNonRetryableApplicationError("hyperproof task changed since it was read; status not written", ErrSuperseded, nil)
	}
	if _, err := a.HP.SetTaskStatus(ctx, req.HyperproofTaskID, id); err != nil {
		return classify("set hyperproof status", err)
	}
	telemetry.ItemSynced(ctx, telemetry.KindStatus, telemetry.DirectionToHyperproof)
	return nil
}

// sortByCreated orders by creation time, then id, so every caller sees one
// stable order.
func sortByCreated[T any](items []T, at func(T) time.Time, id func(T) string) {
	sort.SliceStable(items, func(i, j int) bool {
		ti, tj := at(items[i]), at(items[j])
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		return id(items[i]) < id(items[j])
	})
}
