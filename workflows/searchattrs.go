package workflows

import (
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Search attributes operators filter the Temporal UI's list view on, e.g.
// `SyncState = 'broken'` or `SyncState = 'suspended' AND LastSyncTime < "2026-11-27T00:00:00Z"`.
// The worker registers them at start when they are missing.
var (
	AttrHyperproofTaskID = temporal.NewSearchAttributeKeyKeyword("HyperproofTaskId")
	AttrServiceNowNumber = temporal.NewSearchAttributeKeyKeyword("ServiceNowNumber")
	AttrSyncState        = temporal.NewSearchAttributeKeyKeyword("SyncState")
	AttrLastSyncTime     = temporal.NewSearchAttributeKeyTime("LastSyncTime")
)

// SearchAttributeTypes names every search attribute with its type, for
// registration.
func SearchAttributeTypes() map[string]enumspb.IndexedValueType {
	return map[string]enumspb.IndexedValueType{
		AttrHyperproofTaskID.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrServiceNowNumber.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrSyncState.GetName():        enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrLastSyncTime.GetName():     enumspb.INDEXED_VALUE_TYPE_DATETIME,
	}
}

// searchAttributesVersion gates the upserts: histories recorded before they
// existed replay without them.
const searchAttributesChange = "search-attributes"

// publishSearchAttributes upserts the search attributes when they changed,
// and the current details the UI shows next to the summary.
func (w *taskSync) publishSearchAttributes(ctx workflow.Context) {
	if !w.upserts {
		return
	}
	phase := w.phase()
	if phase == w.published.phase && w.s.Number == w.published.number && w.s.LastSync.Equal(w.published.lastSync) {
		return
	}
	updates := []temporal.SearchAttributeUpdate{
		AttrHyperproofTaskID.ValueSet(w.s.HyperproofTaskID),
		AttrSyncState.ValueSet(phase),
	}
	if w.s.Number != "" {
		updates = append(updates, AttrServiceNowNumber.ValueSet(w.s.Number))
	}
	if !w.s.LastSync.IsZero() {
		updates = append(updates, AttrLastSyncTime.ValueSet(w.s.LastSync))
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		w.log.Warn("search attributes not updated", "error", err)
		return
	}
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("ServiceNow %s %s: %s", w.s.Table, w.s.Number, phase))
	w.published.phase, w.published.number, w.published.lastSync = phase, w.s.Number, w.s.LastSync
}
