package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"hpsync/activities"
)

// Poller workflow ids: one poller per side serves every linked task, so the
// API calls per poll cycle do not grow with the number of idle linked tasks.
const (
	HyperproofPollerID         = "poller-hyperproof"
	ServiceNowPollerID         = "poller-servicenow"
	HyperproofPollerName       = "HyperproofPoller"
	ServiceNowPollerName       = "ServiceNowPoller"
	pollerRunsBeforeNewHistory = 200
)

// HyperproofPollerInput carries the poller's durable cursor.
type HyperproofPollerInput struct {
	State activities.HyperproofPollState
}

// ServiceNowPollerInput carries the poller's durable cursors.
type ServiceNowPollerInput struct {
	State activities.ServiceNowPollState
}

// pollerOptions: the poll loop runs inside one heartbeating activity for a
// few minutes at a time; its cursor travels in the heartbeat details, so a
// crashed worker resumes from the last cycle, and the workflow history grows
// by one activity per window instead of one per cycle.
func pollerOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: activities.PollWindow + 5*time.Minute,
		// A crashed worker's poll loop is taken over within this long.
		HeartbeatTimeout: 15 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
		},
	})
}

// HyperproofPoller turns Hyperproof changes into hints for task workflows.
func HyperproofPoller(ctx workflow.Context, in HyperproofPollerInput) error {
	state := in.State
	for i := 0; ; i++ {
		if i >= pollerRunsBeforeNewHistory || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			return workflow.NewContinueAsNewError(ctx, HyperproofPoller, HyperproofPollerInput{State: state})
		}
		if err := workflow.ExecuteActivity(pollerOptions(ctx), act.PollHyperproof, state).Get(ctx, &state); err != nil {
			workflow.GetLogger(ctx).Warn("hyperproof poll window failed", "error", err)
			_ = workflow.Sleep(ctx, time.Minute)
		}
	}
}

// ServiceNowPoller is the safety net behind the ServiceNow webhooks, and
// the only way attachments are seen when no webhook arrives for them.
func ServiceNowPoller(ctx workflow.Context, in ServiceNowPollerInput) error {
	state := in.State
	for i := 0; ; i++ {
		if i >= pollerRunsBeforeNewHistory || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			return workflow.NewContinueAsNewError(ctx, ServiceNowPoller, ServiceNowPollerInput{State: state})
		}
		if err := workflow.ExecuteActivity(pollerOptions(ctx), act.PollServiceNow, state).Get(ctx, &state); err != nil {
			workflow.GetLogger(ctx).Warn("servicenow poll window failed", "error", err)
			_ = workflow.Sleep(ctx, time.Minute)
		}
	}
}
