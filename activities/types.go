package activities

import "time"

// Correlation values a linked ServiceNow task carries back to its
// Hyperproof task. They are the idempotency key of the link: a retried or
// repeated link finds the task by correlation_id instead of creating another.
const (
	CorrelationPrefix  = "hyperproof:"
	CorrelationDisplay = "Hyperproof"
)

// CorrelationID is the ServiceNow correlation_id of a Hyperproof task.
func CorrelationID(hyperproofTaskID string) string { return CorrelationPrefix + hyperproofTaskID }

// LinkRequest asks for the ServiceNow side of a Hyperproof task.
type LinkRequest struct {
	HyperproofTaskID string
	Table            string
	// ExistingSysID links an existing ServiceNow task instead of creating one.
	ExistingSysID string
}

// LinkResult names the linked ServiceNow task.
type LinkResult struct {
	Table  string
	SysID  string
	Number string
	State  string
}

// Snapshot is the current state of both sides, read fresh from the APIs.
// Signals are hints; decisions are made on snapshots.
type Snapshot struct {
	HyperproofStatus string // status type: notStarted, inProgress, submitted, closed, cancelled
	// HyperproofUpdatedOn is the task's version stamp when it was read; a
	// status write is made only while it is unchanged.
	HyperproofUpdatedOn time.Time `json:",omitzero"`
	ServiceNowState     string    // raw state value
	// ServiceNowGroup is the status-map group of ServiceNowState under the
	// worker's current map, "" when the state is in no group.
	ServiceNowGroup string
	ReadAt          time.Time
}

// SnapshotRequest names the two records to read.
type SnapshotRequest struct {
	HyperproofTaskID string
	Table            string
	SysID            string
}

// ServiceNowComment is a journal entry of the linked ServiceNow task.
type ServiceNowComment struct {
	ID        string // sys_journal_field sys_id: the identity of the comment
	Element   string // comments or work_notes
	Text      string
	Author    string // display name when known, else user_name
	CreatedOn time.Time
	// Ours marks entries the integration wrote itself (never mirrored back).
	Ours bool
}

// HyperproofComment is an Activity Feed comment of the Hyperproof task.
type HyperproofComment struct {
	ID        string
	Text      string
	Author    string
	AuthorID  string
	CreatedOn time.Time
	// Ours marks comments the integration wrote itself (never mirrored back).
	Ours bool
}

// CommentsRequest lists one side's comments created at or after Since.
type CommentsRequest struct {
	HyperproofTaskID string
	Table            string
	SysID            string
	Since            time.Time
}

// CopyToHyperproofRequest carries one ServiceNow comment into Hyperproof.
type CopyToHyperproofRequest struct {
	HyperproofTaskID string
	Comment          ServiceNowComment
}

// CopyToServiceNowRequest carries one Hyperproof comment into ServiceNow.
type CopyToServiceNowRequest struct {
	Table   string
	SysID   string
	Comment HyperproofComment
}

// AttachmentMeta is what the workflow knows of a ServiceNow attachment. The
// bytes never enter the workflow: the copy streams them inside one activity.
type AttachmentMeta struct {
	SysID       string
	FileName    string
	ContentType string
	SizeBytes   int64
	Hash        string
	CreatedBy   string
	CreatedOn   time.Time
}

// AttachmentsRequest lists the attachments of the linked ServiceNow task.
type AttachmentsRequest struct {
	Table string
	SysID string
}

// CopyAttachmentRequest copies one attachment into the Hyperproof task.
type CopyAttachmentRequest struct {
	HyperproofTaskID string
	Table            string
	SysID            string
	Attachment       AttachmentMeta
}

// ProofRecord is the chain of custody of one proof file.
type ProofRecord struct {
	AttachmentSysID string
	FileName        string
	ContentType     string
	SizeBytes       int64
	ServiceNowHash  string
	SHA256          string
	AttachedBy      string
	AttachedOn      time.Time
	HyperproofID    string
	ReachedAt       time.Time `json:",omitzero"`
	PublishedAt     time.Time `json:",omitzero"`
	// Skipped says why the file was not carried (e.g. over the size limit);
	// notes on both tasks say so too.
	Skipped string `json:",omitempty"`
	// DeletedAtSource is when the attachment was first seen gone from
	// ServiceNow; the proof stays in Hyperproof as audit evidence.
	DeletedAtSource time.Time `json:",omitzero"`
}

// MoveServiceNowRequest moves the ServiceNow task into a status-map group.
type MoveServiceNowRequest struct {
	Table string
	SysID string
	Group string
}

// MoveResult is the state the ServiceNow task is in afterwards.
type MoveResult struct {
	State   string
	Changed bool
}

// SetHyperproofStatusRequest sets the Hyperproof task's status by type.
type SetHyperproofStatusRequest struct {
	HyperproofTaskID string
	StatusType       string
	// ReadUpdatedOn is the task's updatedOn the decision was made on. When
	// the task changed since (the creator acted, or an earlier attempt's
	// write landed without its answer), the write is not made and
	// ErrSuperseded is returned, so a retry never overwrites the creator.
	ReadUpdatedOn time.Time `json:",omitzero"`
}

// ErrSuperseded is the error type of a write not made because the record
// changed since the decision was made.
const ErrSuperseded = "Superseded"

// PublishRequest adds the task's proof to its target object's Proof tab.
type PublishRequest struct {
	HyperproofTaskID string
}

// PublishResult lists the task proof ids that are on the target afterwards
// and how many this call uploaded.
type PublishResult struct {
	TargetType string
	TargetID   string
	OnTarget   []string
	Uploaded   int
}

// AlertRequest tells the assignee that more work is needed.
type AlertRequest struct {
	HyperproofTaskID string
	Table            string
	SysID            string
	// Key makes the alert idempotent: a retry finds the comment by it.
	Key string
}

// NoteRequest is a note from the integration on the Hyperproof task; Key
// makes it idempotent (it is sent as the comment's sourceCommentId).
type NoteRequest struct {
	HyperproofTaskID string
	Key              string
	Text             string
}
