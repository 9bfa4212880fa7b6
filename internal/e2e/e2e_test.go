// Package e2e runs the product end to end: a real Temporal dev server
// (in-memory database), the worker in SANDBOX mode with both simulators,
// and users acting through the vendor APIs.
package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"hpsync/internal/config"
	"hpsync/internal/devserver"
	"hpsync/internal/hyperproof"
	"hpsync/internal/link"
	"hpsync/internal/sandbox/seed"
	"hpsync/internal/servicenow"
	"hpsync/internal/story"
	"hpsync/internal/workerapp"
	"hpsync/workflows"
)

type stack struct {
	cfg      config.Config
	w        *workerapp.Running
	creator  *hyperproof.Client
	assignee *servicenow.Client
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startStack starts a dev server and a sandbox worker on free ports.
// env adds or overrides settings as name, value pairs.
func startStack(t *testing.T, env ...string) *stack {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test needs the Temporal dev server")
	}
	ctx := context.Background()
	var logBuf bytes.Buffer
	srv, err := devserver.Start(ctx, devserver.Options{UIPort: -1, Log: &logBuf})
	if err != nil {
		t.Fatalf("dev server: %v\n%s", err, logBuf.String())
	}
	t.Cleanup(srv.Stop)

	for k, v := range map[string]string{
		"SANDBOX":                  "true",
		"TEMPORAL_ADDRESS":         srv.Address,
		"TEMPORAL_TASK_QUEUE":      "e2e-" + strings.ReplaceAll(t.Name(), "/", "-"),
		"WEBHOOK_ADDR":             freeAddr(t),
		"SANDBOX_HYPERPROOF_ADDR":  freeAddr(t),
		"SANDBOX_SERVICENOW_ADDR":  freeAddr(t),
		"HYPERPROOF_POLL_INTERVAL": "1s",
		"SERVICENOW_POLL_INTERVAL": "5s",
		// The test's users share the simulators' pacing with the worker.
		"HYPERPROOF_REQUESTS_PER_SECOND": "50",
		"SERVICENOW_REQUESTS_PER_SECOND": "50",
	} {
		t.Setenv(k, v)
	}
	for i := 0; i+1 < len(env); i += 2 {
		t.Setenv(env[i], env[i+1])
	}
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	logw := io.Writer(io.Discard)
	if os.Getenv("E2E_VERBOSE") != "" {
		logw = os.Stderr
	}
	w, err := workerapp.Start(ctx, cfg, slog.New(slog.NewTextHandler(logw, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	creator, err := hyperproof.New(hyperproof.Config{APIURL: cfg.HyperproofAPIURL, TokenURL: cfg.HyperproofTokenURL,
		ClientID: seed.CreatorClientID, ClientSecret: seed.CreatorClientSecret})
	if err != nil {
		t.Fatal(err)
	}
	assignee, err := servicenow.New(servicenow.Config{InstanceURL: cfg.ServiceNowInstanceURL,
		Username: seed.SNAssigneeUser, Password: seed.SNAssigneePassword})
	if err != nil {
		t.Fatal(err)
	}
	return &stack{cfg: cfg, w: w, creator: creator, assignee: assignee}
}

func (s *stack) link(ctx context.Context, taskID string) (link.Result, error) {
	return linkWith(ctx, s, taskID, "")
}

// TestDemoStory is the README demo's story against a real dev server.
func TestDemoStory(t *testing.T) {
	s := startStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var wfID string
	out, err := story.Run(ctx, story.Env{
		Creator: s.creator, Assignee: s.assignee, StepTimeout: 60 * time.Second,
		Link: func(ctx context.Context, id string) (string, string, error) {
			res, err := s.link(ctx, id)
			wfID = res.WorkflowID
			return res.Table, res.Number, err
		},
		Report: func(st story.Step) {
			t.Logf("[%6.1fs] %s -> %s (%.1fs)", st.At.Seconds(), st.Action, st.Observed, st.Took.Seconds())
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Steps) != 10 {
		t.Errorf("steps observed = %d, want 10", len(out.Steps))
	}
	if out.HyperproofStatus != hyperproof.StatusClosed {
		t.Errorf("hyperproof status = %s, want closed", out.HyperproofStatus)
	}
	if len(out.TaskProof) != 3 || len(out.ControlProof) != 3 {
		t.Errorf("task proof %q, control proof %q; want 3 each", out.TaskProof, out.ControlProof)
	}
	v, err := s.w.Client.QueryWorkflow(ctx, wfID, "", workflows.QueryStatus)
	if err != nil {
		t.Fatal(err)
	}
	var st workflows.Status
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	if !st.Suspended || st.SuspendedAs != "closed" || st.ProofSynced != 3 || st.ProofPublished != 3 || st.Reopens != 1 {
		t.Errorf("status query = %+v", st)
	}
	if st.CommentsToHyperproof != 2 || st.CommentsToServiceNow != 2 {
		t.Errorf("comments carried: to hyperproof %d, to servicenow %d; want 2 and 2", st.CommentsToHyperproof, st.CommentsToServiceNow)
	}
	for _, p := range st.Proof {
		if len(p.SHA256) != 64 || p.HyperproofID == "" || p.PublishedAt.IsZero() {
			t.Errorf("proof record incomplete: %+v", p)
		}
	}

	// The real history of the whole story replays on the current code.
	hist := s.history(t, ctx, wfID, "")
	record(t, "story-link-questions-submit-reopen-close", hist)
	replayer := worker.NewWorkflowReplayer()
	replayer.RegisterWorkflowWithOptions(workflows.TaskSync, workflow.RegisterOptions{Name: workflows.TaskSyncWorkflowName})
	if err := replayer.ReplayWorkflowHistory(nil, hist); err != nil {
		t.Errorf("replay of the story's history (%d events): %v", len(hist.Events), err)
	}
}

// TestStarterCommand: the starter's exit codes and its one line.
func TestStarterCommand(t *testing.T) {
	s := startStack(t)
	run := runStarter
	taskID := s.w.SeededTasks[0]
	code, out, errOut := run("-task", taskID)
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, taskID) || !strings.Contains(out, "SCTASK") || !strings.Contains(out, workflows.WorkflowID(taskID)) {
		t.Fatalf("link: code %d, out %q, err %q", code, out, errOut)
	}
	code, again, _ := run("-task", taskID)
	if code != 0 || again != out {
		t.Errorf("link again: code %d, %q; want 0 and %q", code, again, out)
	}
	if code, _, errOut := run("-task", "00000000-0000-4000-8000-000000000000"); code != 1 || !strings.Contains(errOut, "unknown Hyperproof task") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("unknown task: code %d, %q", code, errOut)
	}
	if code, _, _ := run(); code != 2 {
		t.Errorf("no -task: code %d, want 2", code)
	}
	if code, _, errOut := run("-task", taskID, "-table", "incident"); code != 1 || !strings.Contains(errOut, "status map") {
		t.Errorf("unknown table: code %d, %q", code, errOut)
	}

	// Outside the sandbox, pointed at the simulators with wrong credentials.
	t.Setenv("SANDBOX", "false")
	t.Setenv("HYPERPROOF_API_URL", s.cfg.HyperproofAPIURL)
	t.Setenv("HYPERPROOF_TOKEN_URL", s.cfg.HyperproofTokenURL)
	t.Setenv("HYPERPROOF_CLIENT_ID", seed.IntegrationClientID)
	t.Setenv("HYPERPROOF_CLIENT_SECRET", "not-the-secret")
	t.Setenv("SERVICENOW_INSTANCE_URL", s.cfg.ServiceNowInstanceURL)
	t.Setenv("SERVICENOW_USERNAME", seed.SNIntegrationUser)
	t.Setenv("SERVICENOW_PASSWORD", seed.SNIntegrationPassword)
	t.Setenv("WEBHOOK_ADDR", "")
	other := s.w.SeededTasks[1]
	code, _, errOut = run("-task", other)
	if code != 1 || !strings.Contains(errOut, "rejected") || strings.Contains(errOut, "not-the-secret") {
		t.Errorf("rejected credentials: code %d, %q", code, errOut)
	}
	t.Setenv("HYPERPROOF_API_URL", "http://127.0.0.1:1")
	t.Setenv("HYPERPROOF_CLIENT_SECRET", seed.IntegrationClientSecret)
	if code, _, errOut := run("-task", other); code != 1 || !strings.Contains(errOut, "cannot read Hyperproof task") {
		t.Errorf("unreachable API: code %d, %q", code, errOut)
	}
	if _, err := s.w.Client.DescribeWorkflowExecution(context.Background(), workflows.WorkflowID(other), ""); err == nil {
		t.Error("a refused link started a workflow")
	}
}

// TestStarterRules: linking twice creates nothing new; an unknown task and
// a closed task are refused without starting a workflow.
func TestStarterRules(t *testing.T) {
	s := startStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	taskID := s.w.SeededTasks[0]
	first, err := s.link(ctx, taskID)
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.link(ctx, taskID)
	if err != nil {
		t.Fatal(err)
	}
	if !again.AlreadyLinked || again.Number != first.Number || again.String() != first.String() {
		t.Errorf("second link = %+v, want the same link as %+v", again, first)
	}
	snTasks, err := s.assignee.ListTasksUpdatedSince(ctx, s.cfg.ServiceNowTable, time.Time{}, "hyperproof:"+taskID)
	if err != nil {
		t.Fatal(err)
	}
	if len(snTasks) != 1 {
		t.Errorf("servicenow tasks for %s = %d, want 1", taskID, len(snTasks))
	}

	unknown := "00000000-0000-4000-8000-000000000000"
	if _, err := s.link(ctx, unknown); err == nil || !strings.Contains(err.Error(), "unknown Hyperproof task") {
		t.Errorf("unknown task: err = %v", err)
	}
	if _, err := s.w.Client.DescribeWorkflowExecution(ctx, workflows.WorkflowID(unknown), ""); err == nil {
		t.Error("a workflow was started for an unknown task")
	} else if _, ok := err.(*serviceerror.NotFound); !ok {
		t.Errorf("describe: %v", err)
	}

	closedID := s.w.SeededTasks[1]
	sts, err := s.creator.ListTaskStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		if st.Type == hyperproof.StatusClosed {
			if _, err := s.creator.SetTaskStatus(ctx, closedID, st.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.link(ctx, closedID); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("closed task: err = %v", err)
	}
	if _, err := s.w.Client.DescribeWorkflowExecution(ctx, workflows.WorkflowID(closedID), ""); err == nil {
		t.Error("a workflow was started for a closed task")
	}
}

// TestWebhookSignals: a signed ServiceNow webhook reaches the workflow (the
// comment is carried without waiting for the poll), a bad signature is 401.
func TestWebhookSignals(t *testing.T) {
	s := startStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := s.link(ctx, s.w.SeededTasks[2])
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"table":"sc_task","sys_id":"0123456789abcdef0123456789abcdef"}`)
	url := "http://" + s.cfg.WebhookAddr + "/webhooks/servicenow"
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("X-Signature-256", "sha256=00")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("bad signature: %d, want 401", resp.StatusCode)
	}
	mac := hmac.New(sha256.New, []byte(s.cfg.WebhookSecret))
	mac.Write(body)
	req, _ = http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("X-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("unlinked record: %d, want 202", resp.StatusCode)
	}

	// The simulator's business rule posts the webhook; the comment arrives
	// well before the 5 s safety-net poll would matter.
	snTask, err := s.assignee.FindTaskByCorrelation(ctx, res.Table, "hyperproof:"+s.w.SeededTasks[2])
	if err != nil || snTask == nil {
		t.Fatalf("find task: %v", err)
	}
	text := fmt.Sprintf("webhook check %d", time.Now().UnixNano())
	if err := s.assignee.AddComment(ctx, res.Table, snTask.SysID, text); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		cs, err := s.creator.ListComments(ctx, s.w.SeededTasks[2])
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if strings.Contains(c.Text, text) {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("comment not carried within 30s")
}

func linkWith(ctx context.Context, s *stack, taskID, sysID string) (link.Result, error) {
	return link.Link(ctx, s.w.Client, s.w.HP, s.cfg.StatusMap, link.Request{
		HyperproofTaskID: taskID, Table: s.cfg.ServiceNowTable, ExistingSysID: sysID, TaskQueue: s.cfg.TemporalTaskQueue,
	})
}

// duplicate delivery (sync-faults.md): the same webhook three times, two of
// them at once, gives one effect.
func TestDuplicateDelivery_SameWebhookThreeTimes(t *testing.T) {
	s := startStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	taskID, sn := s.linkedTask(t, ctx, "control", seed.ControlID)
	if err := s.assignee.AddComment(ctx, sn.Table, sn.SysID, "delivered three times"); err != nil {
		t.Fatal(err)
	}
	body := []byte(fmt.Sprintf(`{"table":%q,"sys_id":%q}`, sn.Table, sn.SysID))
	mac := hmac.New(sha256.New, []byte(s.cfg.WebhookSecret))
	mac.Write(body)
	sig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	post := func() int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+s.cfg.WebhookAddr+"/webhooks/servicenow", bytes.NewReader(body))
		req.Header.Set("X-Signature-256", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	codes := make(chan int, 3)
	go func() { codes <- post() }()
	go func() { codes <- post() }()
	codes <- post()
	for i := 0; i < 3; i++ {
		if c := <-codes; c != http.StatusAccepted {
			t.Errorf("delivery %d: %d, want 202", i, c)
		}
	}
	eventually(t, "comment carried", 30*time.Second, func() (bool, error) {
		return s.status(t, ctx, taskID).CommentsToHyperproof == 1, nil
	})
	time.Sleep(2 * time.Second)
	cs, err := s.creator.ListComments(ctx, taskID)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range cs {
		if strings.Contains(c.Text, "delivered three times") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("comment in Hyperproof %d times, want once", n)
	}
}
