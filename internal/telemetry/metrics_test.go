package telemetry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"hpsync/internal/devserver"
)

// sample finds the value of the first sample of metric name whose labels
// include every one of labels (`kind="comment"`); ok is false when none.
func sample(exposition, name string, labels ...string) (float64, bool) {
	for _, line := range strings.Split(exposition, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(line, l)
		}
		if !all {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
		return v, err == nil
	}
	return 0, false
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

func TestFunctionsAreNoOpsWithoutMetrics(t *testing.T) {
	if active.Load() != nil {
		t.Skip("another test's pipeline is active")
	}
	ItemSynced(context.Background(), KindComment, DirectionToHyperproof)
	ItemSynced(nil, "", "") //nolint:staticcheck // nil context is tolerated on purpose
	SyncLatency(context.Background(), KindComment, time.Second)
	Error(context.Background(), "network")
	PollerLag(SideHyperproof, time.Second)
}

func TestOwnMetricsExposition(t *testing.T) {
	m, err := NewMetrics("test", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	ctx := context.Background()
	ItemSynced(ctx, KindComment, DirectionToHyperproof)
	ItemSynced(ctx, KindComment, DirectionToHyperproof)
	ItemSynced(ctx, KindAttachment, DirectionToHyperproof)
	SyncLatency(ctx, KindComment, 1500*time.Millisecond)
	SyncLatency(ctx, KindComment, 20*time.Second)
	Error(ctx, "servicenow_http_4xx")
	PollerLag(SideServiceNow, 5*time.Second)

	out := scrape(t, srv.URL+"/metrics")
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"hpsync_items_synced_total", []string{`kind="comment"`, `direction="to_hyperproof"`}, 2},
		{"hpsync_items_synced_total", []string{`kind="attachment"`, `direction="to_hyperproof"`}, 1},
		{"hpsync_sync_latency_seconds_count", []string{`kind="comment"`}, 2},
		{"hpsync_sync_latency_seconds_bucket", []string{`kind="comment"`, `le="2.5"`}, 1},
		{"hpsync_sync_latency_seconds_bucket", []string{`kind="comment"`, `le="30"`}, 2},
		{"hpsync_errors_total", []string{`kind="servicenow_http_4xx"`}, 1},
	} {
		if got, ok := sample(out, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if got, ok := sample(out, "hpsync_poller_lag_seconds", `side="servicenow"`); !ok || got < 5 || got > 60 {
		t.Errorf("poller lag %v (found %v), want 5s and growing", got, ok)
	}
	if _, ok := sample(out, "go_goroutines"); !ok {
		t.Error("no Go runtime metrics")
	}
	if t.Failed() {
		t.Logf("exposition:\n%s", out)
	}

	if err := m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if active.Load() != nil {
		t.Fatal("functions still record after Shutdown")
	}
	ItemSynced(ctx, KindComment, DirectionToHyperproof) // a no-op now
}

func seenActivity(ctx context.Context, in string) (string, error) {
	ItemSynced(ctx, KindComment, DirectionToServiceNow)
	SyncLatency(ctx, KindComment, 3*time.Second)
	PollerLag(SideHyperproof, 2*time.Second)
	if in == "fail" {
		Error(ctx, "hyperproof_http_5xx")
		return "", temporal.NewNonRetryableApplicationError("refused", "HTTP503", nil)
	}
	return "seen " + in, nil
}

func metricsWorkflow(ctx workflow.Context, in string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	var out string
	err := workflow.ExecuteActivity(ctx, "telemetry-test-seen", in).Get(ctx, &out)
	return out, err
}

// TestSDKAndOwnMetricsAfterAWorkflow runs workflows on a dev server through
// a client whose MetricsHandler is the pipeline's (as workerapp.Start wires
// it), then scrapes /metrics over HTTP: the SDK's metrics and the sync's
// are both there.
func TestSDKAndOwnMetricsAfterAWorkflow(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Temporal dev server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var logBuf bytes.Buffer
	dev, err := devserver.Start(ctx, devserver.Options{UIPort: -1, Log: &logBuf})
	if err != nil {
		t.Fatalf("dev server: %v\n%s", err, logBuf.String())
	}
	t.Cleanup(dev.Stop)

	var sdkErrs []error
	m, err := NewMetrics("hpsync-worker", func(err error) { sdkErrs = append(sdkErrs, err) })
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0") // METRICS_ADDR on a free port
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: m.Handler()}
	go hs.Serve(ln)
	defer hs.Close()

	c, err := client.Dial(client.Options{
		HostPort: dev.Address, MetricsHandler: m.TemporalMetricsHandler(),
		Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const queue = "telemetry-test"
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(metricsWorkflow, workflow.RegisterOptions{Name: "telemetry-test-wf"})
	w.RegisterActivityWithOptions(seenActivity, activity.RegisterOptions{Name: "telemetry-test-seen"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	for _, in := range []string{"one", "fail"} {
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "telemetry-test-" + in, TaskQueue: queue}, "telemetry-test-wf", in)
		if err != nil {
			t.Fatal(err)
		}
		var out string
		err = run.Get(ctx, &out)
		var appErr *temporal.ApplicationError
		if (in == "fail") != errors.As(err, &appErr) {
			t.Fatalf("workflow %s: %q, %v", in, out, err)
		}
	}

	url := "http://" + ln.Addr().String() + "/metrics"
	checks := []struct {
		name   string
		labels []string
	}{
		// the SDK's
		{"temporal_request_total", []string{`operation="StartWorkflowExecution"`}},
		{"temporal_workflow_completed_total", []string{`workflow_type="telemetry-test-wf"`}},
		{"temporal_workflow_failed_total", []string{`workflow_type="telemetry-test-wf"`}},
		{"temporal_activity_execution_latency_seconds_bucket", []string{`activity_type="telemetry-test-seen"`}},
		// ours
		{"hpsync_items_synced_total", []string{`kind="comment"`, `direction="to_servicenow"`}},
		{"hpsync_sync_latency_seconds_count", []string{`kind="comment"`}},
		{"hpsync_errors_total", []string{`kind="hyperproof_http_5xx"`}},
		{"hpsync_poller_lag_seconds", []string{`side="hyperproof"`}},
	}
	var out string
	deadline := time.Now().Add(15 * time.Second)
	for {
		out = scrape(t, url)
		missing := 0
		for _, c := range checks {
			if _, ok := sample(out, c.name, c.labels...); !ok {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, c := range checks {
		if _, ok := sample(out, c.name, c.labels...); !ok {
			t.Errorf("no %s%v at /metrics", c.name, c.labels)
		}
	}
	if got, _ := sample(out, "hpsync_items_synced_total", `kind="comment"`, `direction="to_servicenow"`); got != 2 {
		t.Errorf("items synced = %v, want 2", got)
	}
	if len(sdkErrs) > 0 {
		t.Errorf("SDK metric errors: %v", sdkErrs)
	}
	if t.Failed() {
		t.Logf("exposition:\n%s", out)
	}
}
