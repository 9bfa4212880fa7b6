package workflows_test

import (
	"os"
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"hpsync/workflows"
)

// TestNonDeterminism_RecordedHistoriesReplay replays every recorded history of the main
// paths (link, questions, submit, reopen, close, cancel, suspension and
// resume, continue-as-new) on the current workflow code. A change that
// alters the commands an old history recorded fails here; such a change goes
// behind workflow.GetVersion. See the README for how to record them again.
func TestNonDeterminism_RecordedHistoriesReplay(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no recorded histories in testdata/histories")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			hist, err := client.HistoryFromJSON(r, client.HistoryJSONOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(hist.Events) < 3 {
				t.Fatalf("history has %d events", len(hist.Events))
			}
			replayer := worker.NewWorkflowReplayer()
			replayer.RegisterWorkflowWithOptions(workflows.TaskSync, workflow.RegisterOptions{Name: workflows.TaskSyncWorkflowName})
			if err := replayer.ReplayWorkflowHistory(nil, hist); err != nil {
				t.Errorf("replay: %v", err)
			}
		})
	}
}
