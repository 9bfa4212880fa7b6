package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hpsync/internal/link"
	"hpsync/internal/operate"
	"hpsync/workflows"
)

func runOperator(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := operate.Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestOperatorCommands: status, timeline, list by sync state, resync,
// unlink, relink and check-map, and their refusals for a task that is not
// linked.
func TestOperatorCommands(t *testing.T) {
	s := startStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	taskID := s.w.SeededTasks[0]

	for _, cmd := range []string{"status", "timeline", "resync", "unlink"} {
		if code, _, errOut := runOperator(cmd, "-task", taskID); code != 1 || !strings.Contains(errOut, "is not linked") {
			t.Errorf("%s on an unlinked task: code %d, %q", cmd, code, errOut)
		}
	}
	if code, _, _ := runOperator("status"); code != 2 {
		t.Errorf("status without -task: code %d, want 2", code)
	}

	res, err := s.link(ctx, taskID)
	if err != nil {
		t.Fatal(err)
	}
	sn, err := s.assignee.FindTaskByCorrelation(ctx, res.Table, "hyperproof:"+taskID)
	if err != nil || sn == nil {
		t.Fatalf("find: %v", err)
	}
	if err := s.assignee.AddComment(ctx, res.Table, sn.SysID, "operator check"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "comment carried", 30*time.Second, func() (bool, error) {
		return s.status(t, ctx, taskID).CommentsToHyperproof == 1, nil
	})

	code, out, errOut := runOperator("status", "-task", taskID)
	var st workflows.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Number != res.Number {
		t.Fatalf("status: code %d, %q %q", code, out, errOut)
	}
	code, out, _ = runOperator("timeline", "-task", taskID)
	var tl workflows.Timeline
	if code != 0 || json.Unmarshal([]byte(out), &tl) != nil {
		t.Fatalf("timeline: code %d, %q", code, out)
	}
	found := false
	for _, h := range tl.Hops {
		if h.Kind == workflows.HopComment && h.Direction == workflows.ToHyperproof && h.Outcome == workflows.OutcomeWritten &&
			h.SourceID != "" && !h.SeenAt.IsZero() && !h.WrittenAt.IsZero() {
			found = true
		}
	}
	if !found {
		t.Errorf("timeline has no written comment hop: %+v", tl.Hops)
	}

	eventually(t, "list -state active shows the task", 30*time.Second, func() (bool, error) {
		_, out, _ := runOperator("list", "-state", "active")
		return strings.Contains(out, taskID+"\t"+res.Number+"\tactive"), nil
	})

	if code, _, errOut := runOperator("resync", "-task", taskID); code != 0 {
		t.Fatalf("resync: %d %q", code, errOut)
	}
	time.Sleep(2 * time.Second)
	if st := s.status(t, ctx, taskID); st.CommentsToHyperproof != 1 {
		t.Errorf("after resync: %d comments carried, want still 1", st.CommentsToHyperproof)
	}
	cs, err := s.creator.ListComments(ctx, taskID)
	if err != nil || len(cs) != 1 {
		t.Errorf("after resync: %d comments in Hyperproof (%v), want 1", len(cs), err)
	}

	// Starter: linking the linked task to another record is refused.
	t.Setenv("SANDBOX", "true")
	if code, _, errOut := runStarter("-task", taskID, "-sys-id", "0123456789abcdef0123456789abcdef"); code != 1 || !strings.Contains(errOut, "already linked") {
		t.Errorf("relink to another record: code %d, %q", code, errOut)
	}

	if code, out, errOut := runOperator("unlink", "-task", taskID); code != 0 || !strings.Contains(out, "unlinked") {
		t.Fatalf("unlink: %d %q %q", code, out, errOut)
	}
	eventually(t, "workflow ended", 30*time.Second, func() (bool, error) {
		code, _, errOut := runOperator("status", "-task", taskID)
		return code == 1 && strings.Contains(errOut, "not linked"), nil
	})
	eventually(t, "list -state unlinked shows the task", 30*time.Second, func() (bool, error) {
		_, out, _ := runOperator("list", "-state", "unlinked")
		return strings.Contains(out, taskID), nil
	})
	code, out, errOut = runOperator("relink", "-task", taskID)
	if code != 0 || !strings.Contains(out, res.Number) {
		t.Fatalf("relink: %d %q %q", code, out, errOut)
	}

	if code, out, errOut := runOperator("check-map"); code != 0 || !strings.Contains(out, "matches") {
		t.Errorf("check-map: %d %q %q", code, out, errOut)
	}
	bad := filepath.Join(t.TempDir(), "map.json")
	os.WriteFile(bad, []byte(`{"sc_task": {"todo": ["1"], "inProgress": ["2", "9"], "completed": ["3"]}}`), 0o644)
	t.Setenv("STATUS_MAP_FILE", bad)
	if code, _, errOut := runOperator("check-map"); code != 1 || !strings.Contains(errOut, `sc_task has no state "9"`) {
		t.Errorf("check-map with an unknown state: %d %q", code, errOut)
	}
}

func runStarter(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := link.Main(args, &out, &errb)
	return code, out.String(), errb.String()
}
