// Package hyperproof is the integration's client for the Hyperproof REST API
// (OAuth2 client credentials): tasks, task statuses, comments, proof and
// users.
package hyperproof

import (
	"fmt"
	"io"
	"time"
)

// Status types of Hyperproof task statuses. Statuses are matched by type,
// never by display name, since organisations rename them.
const (
	StatusNotStarted = "notStarted"
	StatusInProgress = "inProgress"
	StatusSubmitted  = "submitted"
	StatusClosed     = "closed"
	StatusCancelled  = "cancelled"
)

// Task is a Hyperproof task.
type Task struct {
	ID           string     `json:"id"`
	OrgID        string     `json:"orgId"`
	Title        string     `json:"title"`
	Description  string     `json:"description"`
	AssigneeID   string     `json:"assigneeId"`
	TargetID     string     `json:"targetId"`
	TargetType   string     `json:"targetType"`
	TaskStatusID string     `json:"taskStatusId"`
	Priority     string     `json:"priority"`
	DueDate      *time.Time `json:"dueDate,omitempty"`
	CreatedBy    string     `json:"createdBy"`
	CreatedOn    time.Time  `json:"createdOn"`
	UpdatedOn    time.Time  `json:"updatedOn"`
	// UpdatedBy is the user (or service account) that made the last change.
	UpdatedBy string `json:"updatedBy,omitempty"`
	// Status is the object lifecycle (active, archived, deleted, ...), not
	// the workflow status, which is TaskStatusID.
	Status string `json:"status,omitempty"`
}

// NewTask is the body of POST /v1/tasks.
type NewTask struct {
	Title       string
	Description string
	TargetType  string
	TargetID    string
	AssigneeID  string
	Priority    string
	DueDate     *time.Time
}

// TaskStatus is one of the organisation's task statuses.
type TaskStatus struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
}

// Comment is an entry of a task's Activity Feed.
type Comment struct {
	ID              string
	Text            string // commentTextFormatted
	PlainText       string // commentPlainText
	SourceCommentID string // set when an integration wrote it
	CreatedBy       string // user id
	CreatedOn       time.Time
	UpdatedOn       time.Time
	SourceUpdatedOn time.Time // as written by the integration, zero if unset
	IsInternal      bool
	Event           string    // activity event kind when the entry is not a plain comment
	EditedOn        time.Time // zero unless edited
	DeletedOn       time.Time // zero unless deleted
}

// NewComment is the body of a comment the integration adds.
type NewComment struct {
	Text string
	// SourceCommentID is the id of the comment in the other system; it makes
	// the write recognisable (idempotency and echo suppression).
	SourceCommentID string
	SourceUpdatedOn time.Time
}

// Proof is proof metadata.
type Proof struct {
	ID           string
	Filename     string
	ContentType  string
	Size         int64
	SourceID     string
	SourceFileID string
	Status       string
	CreatedBy    string
	UploadedOn   time.Time
	Version      int64
	// SourceModifiedOn is hp-proof-source-modified-on as stored, zero if unset.
	SourceModifiedOn time.Time
}

// ProofUpload is one file to upload as proof; Body is streamed, never
// buffered whole.
type ProofUpload struct {
	Filename     string
	ContentType  string
	Body         io.Reader
	SourceID     string // hp-proof-source-id
	SourceFileID string // hp-proof-source-file-id: the idempotency key
	// SourceModifiedOn is sent as hp-proof-source-modified-on when set.
	SourceModifiedOn time.Time
}

// User is an organisation user.
type User struct {
	ID        string `json:"id"`
	Email     string `json:"email"`
	GivenName string `json:"givenName"`
	Surname   string `json:"surname"`
}

// APIError is a non-2xx answer.
type APIError struct {
	StatusCode int
	Message    string
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	return fmt.Sprintf("hyperproof: HTTP %d: %s", e.StatusCode, e.Message)
}

// Retryable tells whether the same request may succeed later: 429, 5xx and
// the transient "Bandwidth quota exceeded" 403.
func (e *APIError) Retryable() bool {
	return e.StatusCode == 429 || e.StatusCode >= 500 || e.StatusCode == 403 && isQuotaMessage(e.Message)
}
