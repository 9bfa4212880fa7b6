// Package servicenow is the integration's client for the ServiceNow Table and
// Attachment APIs (basic auth). It hides ServiceNow's quirks: string-typed
// values, references of several JSON shapes, journal fields that read back
// empty, 201 answers with an empty body, Link pagination and the error
// envelope.
package servicenow

import (
	"fmt"
	"time"
)

// DateLayout is the layout of raw ServiceNow date/time values (UTC, no zone).
const DateLayout = "2006-01-02 15:04:05"

// Task is the part of a task-table record the integration uses.
type Task struct {
	Table              string
	SysID              string
	Number             string
	ShortDescription   string
	Description        string
	State              string // choice value, e.g. "2"
	AssignedTo         string // sys_user sys_id, "" when empty
	DueDate            string // raw "YYYY-MM-DD HH:MM:SS" UTC, "" when empty
	CorrelationID      string
	CorrelationDisplay string
	UpdatedOn          time.Time
	UpdatedBy          string
	ModCount           int64
	Active             bool      // false once the state is a closed one
	CreatedOn          time.Time // sys_created_on
	CreatedBy          string    // sys_created_by (user_name)
}

// NewTask is the body of a task created by the integration.
type NewTask struct {
	ShortDescription   string
	Description        string
	AssignedTo         string // sys_user sys_id or ""
	DueDate            string // raw UTC layout or ""
	State              string // initial state value or ""
	CorrelationID      string
	CorrelationDisplay string
}

// JournalEntry is one row of sys_journal_field (a comment or work note).
type JournalEntry struct {
	SysID     string
	Table     string // the journal row's "name": the parent table
	ElementID string // the parent record's sys_id
	Element   string // "comments" or "work_notes"
	Value     string
	CreatedBy string // user_name, not sys_id
	CreatedOn time.Time
}

// User is a sys_user row.
type User struct {
	SysID    string
	UserName string
	Name     string
	Email    string

	FirstName string
	LastName  string
	Active    bool
}

// Attachment is sys_attachment metadata.
type Attachment struct {
	SysID       string
	FileName    string
	ContentType string
	SizeBytes   int64
	TableName   string
	TableSysID  string
	Hash        string // ServiceNow's own hash, "" on releases without it
	CreatedBy   string
	CreatedOn   time.Time

	State        string // "available", "pending", … ("" on some releases)
	DownloadLink string // absolute URL of the bytes, as the instance gives it
}

// Choice is a sys_choice row for a choice field such as state.
type Choice struct {
	Table string
	Value string
	Label string

	Element  string // the field, e.g. "state"
	Sequence int
	Language string
}

// APIError is a non-2xx answer, decoded from ServiceNow's error envelope
// {"error":{"message","detail"},"status":"failure"}.
type APIError struct {
	StatusCode int
	Message    string
	Detail     string
	// RetryAfter is the wait the server asked for (429 Retry-After), or zero.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("servicenow: HTTP %d: %s (%s)", e.StatusCode, e.Message, e.Detail)
	}
	return fmt.Sprintf("servicenow: HTTP %d: %s", e.StatusCode, e.Message)
}

// Retryable tells whether the same request may succeed later (429, 5xx).
// 400/401/403/404 come from validation, authentication, ACLs, business rules
// or data policies and do not change by retrying.
func (e *APIError) Retryable() bool {
	return e.StatusCode == 429 || e.StatusCode >= 500
}
