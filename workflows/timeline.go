package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"
)

// QueryTimeline answers with every hop the workflow made or skipped.
const QueryTimeline = "timeline"

// Hop kinds and outcomes.
const (
	HopComment = "comment"
	HopProof   = "proof"
	HopStatus  = "status"
	HopPublish = "publish"
	HopAlert   = "alert"

	ToHyperproof = "servicenow→hyperproof"
	ToServiceNow = "hyperproof→servicenow"

	OutcomeWritten = "written"
	OutcomeSkipped = "skipped"
	OutcomeRefused = "refused"
)

// Hop is one item carried (or not) from one side to the other.
type Hop struct {
	Kind      string
	Direction string
	// SourceID is the item's id in the system it came from (journal sys_id,
	// Hyperproof comment id, attachment sys_id, state value).
	SourceID string
	// SeenAt is when the source says the item came to be (creation time),
	// or when the workflow saw the change.
	SeenAt    time.Time `json:",omitzero"`
	WrittenAt time.Time `json:",omitzero"`
	Outcome   string
	Why       string `json:",omitempty"`
}

// maxTimeline bounds the hops kept in the state (it travels through
// continue-as-new); older ones are counted, and stay in the earlier runs'
// histories.
const maxTimeline = 500

// Timeline is the answer to the timeline query.
type Timeline struct {
	WorkflowID string
	Hops       []Hop
	// Dropped is how many older hops are no longer kept in the state.
	Dropped int
}

func (w *taskSync) hop(ctx workflow.Context, h Hop) {
	if h.Outcome == OutcomeWritten && h.WrittenAt.IsZero() {
		h.WrittenAt = workflow.Now(ctx)
	}
	if h.SeenAt.IsZero() {
		h.SeenAt = workflow.Now(ctx)
	}
	w.s.Timeline = append(w.s.Timeline, h)
	if over := len(w.s.Timeline) - maxTimeline; over > 0 {
		w.s.Timeline = append([]Hop(nil), w.s.Timeline[over:]...)
		w.s.TimelineDropped += over
	}
}
