package hyperproof

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// wireTask is a task as the API writes it.
type wireTask struct {
	ID           string `json:"id"`
	OrgID        string `json:"orgId"`
	Title        string `json:"title"`
	Description  string `json:"description"`
	AssigneeID   string `json:"assigneeId"`
	TargetID     string `json:"targetId"`
	TargetType   string `json:"targetType"`
	TargetObject *struct {
		ObjectType string `json:"objectType"`
		ObjectID   string `json:"objectId"`
	} `json:"targetObject"`
	TaskStatusID string `json:"taskStatusId"`
	Priority     string `json:"priority"`
	DueDate      *Time  `json:"dueDate"`
	Status       string `json:"status"`
	CreatedBy    string `json:"createdBy"`
	CreatedOn    Time   `json:"createdOn"`
	UpdatedBy    string `json:"updatedBy"`
	UpdatedOn    Time   `json:"updatedOn"`
}

func (w wireTask) task() Task {
	t := Task{
		ID:           w.ID,
		OrgID:        w.OrgID,
		Title:        w.Title,
		Description:  w.Description,
		AssigneeID:   w.AssigneeID,
		TargetID:     w.TargetID,
		TargetType:   w.TargetType,
		TaskStatusID: w.TaskStatusID,
		Priority:     w.Priority,
		DueDate:      w.DueDate.ptr(),
		CreatedBy:    w.CreatedBy,
		CreatedOn:    w.CreatedOn.Time,
		UpdatedOn:    w.UpdatedOn.Time,
		UpdatedBy:    w.UpdatedBy,
		Status:       w.Status,
	}
	if w.TargetObject != nil {
		if t.TargetID == "" {
			t.TargetID = w.TargetObject.ObjectID
		}
		if t.TargetType == "" {
			t.TargetType = w.TargetObject.ObjectType
		}
	}
	return t
}

func decodeTask(raw json.RawMessage) (Task, error) {
	var w wireTask
	if err := json.Unmarshal(raw, &w); err != nil {
		return Task{}, err
	}
	return w.task(), nil
}

// GetTask reads one task. An unknown id is an *APIError with StatusCode 404.
func (c *Client) GetTask(ctx context.Context, id string) (Task, error) {
	seg, err := pathID("task", id)
	if err != nil {
		return Task{}, err
	}
	var w wireTask
	ok, err := c.doJSON(ctx, http.MethodGet, "/v1/tasks/"+seg, nil, nil, &w)
	if err != nil {
		return Task{}, err
	}
	if !ok || w.ID == "" {
		return Task{}, fmt.Errorf("hyperproof: GET task %s: empty answer", id)
	}
	return w.task(), nil
}

type targetObject struct {
	ObjectType string `json:"objectType"`
	ObjectID   string `json:"objectId"`
}

type createTaskBody struct {
	Title        string        `json:"title"`
	Description  string        `json:"description,omitempty"`
	TargetObject *targetObject `json:"targetObject"`
	AssigneeID   string        `json:"assigneeId,omitempty"`
	Priority     string        `json:"priority,omitempty"`
	DueDate      string        `json:"dueDate,omitempty"`
}

// CreateTask creates a task on a target object (POST /v1/tasks; 200 and 201
// are both accepted).
func (c *Client) CreateTask(ctx context.Context, t NewTask) (Task, error) {
	if strings.TrimSpace(t.Title) == "" {
		return Task{}, errors.New("hyperproof: a task needs a title")
	}
	if t.TargetType == "" || t.TargetID == "" {
		return Task{}, errors.New("hyperproof: a task needs a target object (type and id)")
	}
	body := createTaskBody{
		Title:        t.Title,
		Description:  t.Description,
		TargetObject: &targetObject{ObjectType: t.TargetType, ObjectID: t.TargetID},
		AssigneeID:   t.AssigneeID,
		Priority:     t.Priority,
	}
	if t.DueDate != nil && !t.DueDate.IsZero() {
		body.DueDate = formatTime(*t.DueDate)
	}
	var w wireTask
	ok, err := c.doJSON(ctx, http.MethodPost, "/v1/tasks", nil, body, &w)
	if err != nil {
		return Task{}, err
	}
	if !ok || w.ID == "" {
		return Task{}, errors.New("hyperproof: POST /v1/tasks: the answer carries no task id")
	}
	return w.task(), nil
}

type filterBody struct {
	ModifiedAfter string   `json:"modifiedAfter,omitempty"`
	TaskIDs       []string `json:"taskIds,omitempty"`
	NextToken     string   `json:"nextToken,omitempty"`
}

// FilterTasks lists tasks changed after modifiedAfter (zero = any time),
// restricted to taskIDs when not empty (PUT /v1/tasks/filter). Pages
// ({data, nextToken}) are followed; a bare array is the whole answer.
//
// Comments and proof added to a task are not guaranteed to change its
// updatedOn: look for those on their own.
func (c *Client) FilterTasks(ctx context.Context, modifiedAfter time.Time, taskIDs []string) ([]Task, error) {
	var out []Task
	err := c.listAll(ctx, http.MethodPut, "/v1/tasks/filter", nil,
		func(next string) any {
			b := filterBody{TaskIDs: taskIDs, NextToken: next}
			if !modifiedAfter.IsZero() {
				b.ModifiedAfter = formatTime(modifiedAfter)
			}
			return b
		},
		func(raw json.RawMessage) error {
			t, err := decodeTask(raw)
			if err != nil {
				return err
			}
			out = append(out, t)
			return nil
		})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListTaskStatuses lists the organisation's task statuses (GET
// /v1/taskstatuses). Match them by Type: organisations rename them.
func (c *Client) ListTaskStatuses(ctx context.Context) ([]TaskStatus, error) {
	var out []TaskStatus
	err := c.listAll(ctx, http.MethodGet, "/v1/taskstatuses", nil, nil, func(raw json.RawMessage) error {
		var s TaskStatus
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// StatusByType returns the status of the given type (StatusNotStarted, ...)
// from a ListTaskStatuses answer.
func StatusByType(statuses []TaskStatus, typ string) (TaskStatus, bool) {
	for _, s := range statuses {
		if strings.EqualFold(s.Type, typ) {
			return s, true
		}
	}
	return TaskStatus{}, false
}

// SetTaskStatus moves a task to the status with the given id (PATCH
// /v1/tasks/{id} {"taskStatusId"}) and returns the updated task.
func (c *Client) SetTaskStatus(ctx context.Context, taskID, taskStatusID string) (Task, error) {
	seg, err := pathID("task", taskID)
	if err != nil {
		return Task{}, err
	}
	if strings.TrimSpace(taskStatusID) == "" {
		return Task{}, errors.New("hyperproof: empty task status id")
	}
	var w wireTask
	ok, err := c.doJSON(ctx, http.MethodPatch, "/v1/tasks/"+seg, nil, map[string]string{"taskStatusId": taskStatusID}, &w)
	if err != nil {
		return Task{}, err
	}
	if !ok || w.ID == "" {
		// Some APIs answer a PATCH with no body: read the task back.
		return c.GetTask(ctx, taskID)
	}
	return w.task(), nil
}

// wireComment is an Activity Feed entry as the API writes it.
type wireComment struct {
	ID                   string `json:"id"`
	CommentTextFormatted string `json:"commentTextFormatted"`
	CommentPlainText     string `json:"commentPlainText"`
	IsInternal           *bool  `json:"isInternal"`
	IsInternalComment    *bool  `json:"isInternalComment"`
	Event                string `json:"event"`
	SourceCommentID      string `json:"sourceCommentId"`
	SourceUpdatedOn      Time   `json:"sourceUpdatedOn"`
	EditedOn             Time   `json:"editedOn"`
	DeletedOn            Time   `json:"deletedOn"`
	CreatedBy            string `json:"createdBy"`
	CreatedOn            Time   `json:"createdOn"`
	UpdatedOn            Time   `json:"updatedOn"`
}

func (w wireComment) comment() Comment {
	c := Comment{
		ID:              w.ID,
		Text:            w.CommentTextFormatted,
		PlainText:       w.CommentPlainText,
		SourceCommentID: w.SourceCommentID,
		CreatedBy:       w.CreatedBy,
		CreatedOn:       w.CreatedOn.Time,
		UpdatedOn:       w.UpdatedOn.Time,
		SourceUpdatedOn: w.SourceUpdatedOn.Time,
		Event:           w.Event,
		EditedOn:        w.EditedOn.Time,
		DeletedOn:       w.DeletedOn.Time,
	}
	switch {
	case w.IsInternal != nil:
		c.IsInternal = *w.IsInternal
	case w.IsInternalComment != nil:
		c.IsInternal = *w.IsInternalComment
	}
	return c
}

// ListComments lists a task's Activity Feed entries (GET
// /v1/tasks/{id}/comments), in the server's order.
func (c *Client) ListComments(ctx context.Context, taskID string) ([]Comment, error) {
	seg, err := pathID("task", taskID)
	if err != nil {
		return nil, err
	}
	var out []Comment
	err = c.listAll(ctx, http.MethodGet, "/v1/tasks/"+seg+"/comments", nil, nil, func(raw json.RawMessage) error {
		var w wireComment
		if err := json.Unmarshal(raw, &w); err != nil {
			return err
		}
		out = append(out, w.comment())
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

type addCommentBody struct {
	CommentTextFormatted string `json:"commentTextFormatted"`
	IsInternalComment    bool   `json:"isInternalComment"`
	ObjectType           string `json:"objectType"`
	ObjectID             string `json:"objectId"`
	SourceCommentID      string `json:"sourceCommentId,omitempty"`
	SourceUpdatedOn      string `json:"sourceUpdatedOn,omitempty"`
}

// AddComment adds a public (not internal) comment to a task's Activity Feed.
func (c *Client) AddComment(ctx context.Context, taskID string, cm NewComment) (Comment, error) {
	seg, err := pathID("task", taskID)
	if err != nil {
		return Comment{}, err
	}
	if strings.TrimSpace(cm.Text) == "" {
		return Comment{}, errors.New("hyperproof: empty comment text")
	}
	body := addCommentBody{
		CommentTextFormatted: cm.Text,
		IsInternalComment:    false,
		ObjectType:           "task",
		ObjectID:             taskID,
		SourceCommentID:      cm.SourceCommentID,
	}
	if !cm.SourceUpdatedOn.IsZero() {
		body.SourceUpdatedOn = formatTime(cm.SourceUpdatedOn)
	}
	var w wireComment
	ok, err := c.doJSON(ctx, http.MethodPost, "/v1/tasks/"+seg+"/comments", nil, body, &w)
	if err != nil {
		return Comment{}, err
	}
	if !ok {
		// Written, but the answer is empty: return what was sent.
		return Comment{Text: cm.Text, SourceCommentID: cm.SourceCommentID, SourceUpdatedOn: cm.SourceUpdatedOn}, nil
	}
	return w.comment(), nil
}

// ListUsers lists the organisation's users (GET /v1/users).
func (c *Client) ListUsers(ctx context.Context) ([]User, error) {
	var out []User
	err := c.listAll(ctx, http.MethodGet, "/v1/users", nil, nil, func(raw json.RawMessage) error {
		var u User
		if err := json.Unmarshal(raw, &u); err != nil {
			return err
		}
		out = append(out, u)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Me returns the identity the credentials act as (GET /v1/users/me); it is
// also a cheap check of the credentials.
func (c *Client) Me(ctx context.Context) (User, error) {
	var u User
	ok, err := c.doJSON(ctx, http.MethodGet, "/v1/users/me", nil, nil, &u)
	if err != nil {
		return User{}, err
	}
	if !ok {
		return User{}, errors.New("hyperproof: GET /v1/users/me: empty answer")
	}
	return u, nil
}
