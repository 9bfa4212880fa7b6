// Package workerapp assembles the worker process: API clients, the sandbox
// simulators when SANDBOX is on, the Temporal worker with the task and
// poller workflows, and the webhook listener. The worker command, the demo
// and the integration tests all start it through Start.
package workerapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"hpsync/activities"
	"hpsync/internal/codec"
	"hpsync/internal/config"
	"hpsync/internal/hyperproof"
	"hpsync/internal/ingest"
	"hpsync/internal/sandbox/hpsim"
	"hpsync/internal/sandbox/snsim"
	"hpsync/internal/servicenow"
	"hpsync/internal/telemetry"
	"hpsync/workflows"
)

// Running is a started worker.
type Running struct {
	Config config.Config
	Client client.Client
	HP     *hyperproof.Client
	SN     *servicenow.Client
	// SeededTasks are the sandbox's seeded Hyperproof task ids (SANDBOX only).
	SeededTasks []string

	log     *slog.Logger
	worker  worker.Worker
	servers []*http.Server
	closers []func() error
	once    sync.Once
}

// Start brings the worker up and returns once it is polling its task queue
// and every listener is bound. A bad setting or rejected credentials fail
// here with one line that says which.
func Start(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *Running, err error) {
	r := &Running{Config: cfg, log: log}
	// Whatever was started before a failure is stopped again.
	defer func() {
		if err != nil {
			r.Stop()
		}
	}()
	if cfg.Sandbox {
		if err := r.startSandbox(cfg); err != nil {
			return nil, err
		}
	}

	if r.HP, r.SN, err = Clients(cfg); err != nil {
		return nil, err
	}
	if err := CheckAPIs(ctx, r.HP, r.SN); err != nil {
		return nil, err
	}

	var sdkMetrics client.MetricsHandler
	if cfg.MetricsAddr != "" {
		m, err := telemetry.NewMetrics("hpsync-worker", func(err error) { log.Warn("temporal sdk metric", "error", err) })
		if err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		r.closers = append(r.closers, func() error { return m.Shutdown(context.Background()) })
		sdkMetrics = m.TemporalMetricsHandler()
		// Metrics are not worth stopping the sync for: a busy address is
		// logged, and Prometheus shows the target down.
		if err := r.listen(cfg.MetricsAddr, m.Handler()); err != nil {
			log.Error("metrics endpoint not served", "error", fmt.Errorf("METRICS_ADDR: %w", err))
		}
	}

	r.Client, err = dial(ctx, cfg, log, sdkMetrics)
	if err != nil {
		return nil, err
	}
	r.closers = append(r.closers, func() error { r.Client.Close(); return nil })
	if err := EnsureSearchAttributes(ctx, r.Client, cfg.TemporalNamespace); err != nil {
		return nil, err
	}
	if err := CheckStatusMap(ctx, r.SN, cfg.StatusMap, log); err != nil {
		return nil, err
	}

	acts := &activities.Activities{
		HP: r.HP, SN: r.SN, StatusMap: cfg.StatusMap, SNUser: cfg.ServiceNowUsername,
		SyncWorkNotes: cfg.ServiceNowSyncWorkNotes, MaxProofBytes: cfg.MaxProofBytes, Hints: Hinter{Client: r.Client},
		Tables:                 cfg.StatusMap.Tables(),
		HyperproofPollInterval: cfg.HyperproofPollInterval,
		ServiceNowPollInterval: cfg.ServiceNowPollInterval,
	}
	r.worker = worker.New(r.Client, cfg.TemporalTaskQueue, worker.Options{
		// Time for running activities to finish (and poll loops to hand
		// their cursors back) when the worker stops.
		WorkerStopTimeout: 10 * time.Second,
	})
	r.worker.RegisterWorkflowWithOptions(workflows.TaskSync, workflow.RegisterOptions{Name: workflows.TaskSyncWorkflowName})
	r.worker.RegisterWorkflowWithOptions(workflows.HyperproofPoller, workflow.RegisterOptions{Name: workflows.HyperproofPollerName})
	r.worker.RegisterWorkflowWithOptions(workflows.ServiceNowPoller, workflow.RegisterOptions{Name: workflows.ServiceNowPollerName})
	r.worker.RegisterActivity(acts)
	if err := r.worker.Start(); err != nil {
		return nil, fmt.Errorf("temporal worker: %w", err)
	}
	if err := StartPollers(ctx, r.Client, cfg.TemporalTaskQueue); err != nil {
		return nil, err
	}
	if cfg.WebhookAddr != "" {
		h := &ingest.WebhookHandler{
			Secret:  []byte(cfg.WebhookSecret),
			Tables:  tableSet(cfg.StatusMap.Tables()),
			Resolve: Resolver(r.SN),
			Signal: func(ctx context.Context, id string) error {
				err := Hinter{Client: r.Client}.Hint(ctx, id, activities.SideServiceNow)
				if errors.Is(err, activities.ErrNotLinked) {
					return ingest.ErrNotLinked
				}
				return err
			},
			Healthy: func(ctx context.Context) error {
				_, err := r.Client.CheckHealth(ctx, &client.CheckHealthRequest{})
				return err
			},
			Logger: log,
		}
		if err := r.listen(cfg.WebhookAddr, h.Routes()); err != nil {
			return nil, fmt.Errorf("WEBHOOK_ADDR: %w", err)
		}
	}
	if cfg.CodecAddr != "" {
		if err := r.listen(cfg.CodecAddr, codec.NewHTTPHandler(codec.New(cfg.Keyring()), cfg.CodecOrigins())); err != nil {
			return nil, fmt.Errorf("CODEC_ADDR: %w", err)
		}
	}
	encryption := "off"
	if ids := cfg.Keyring().IDs(); len(ids) > 0 {
		encryption = "key " + ids[0]
	}
	log.Info("worker started", "task_queue", cfg.TemporalTaskQueue, "temporal", cfg.TemporalAddress,
		"webhook", cfg.WebhookAddr, "sandbox", cfg.Sandbox, "payload_encryption", encryption,
		"codec_server", cfg.CodecAddr, "metrics", cfg.MetricsAddr)
	return r, nil
}

func (r *Running) startSandbox(cfg config.Config) error {
	hp, err := hpsim.New(hpsim.Options{Logf: r.logf("hyperproof-sandbox"), FaultSpec: cfg.SandboxFaults})
	if err != nil {
		return fmt.Errorf("hyperproof sandbox: %w", err)
	}
	r.closers = append(r.closers, hp.Close)
	webhookURL := ""
	if cfg.WebhookAddr != "" {
		webhookURL = "http://" + cfg.WebhookAddr + "/webhooks/servicenow"
	}
	sn, err := snsim.New(snsim.Options{WebhookURL: webhookURL, WebhookSecret: cfg.WebhookSecret, Logf: r.logf("servicenow-sandbox"), FaultSpec: cfg.SandboxFaults})
	if err != nil {
		return fmt.Errorf("servicenow sandbox: %w", err)
	}
	r.closers = append(r.closers, sn.Close)
	if err := r.listen(cfg.SandboxHyperproofAddr, hp); err != nil {
		return fmt.Errorf("SANDBOX_HYPERPROOF_ADDR: %w", err)
	}
	if err := r.listen(cfg.SandboxServiceNowAddr, sn); err != nil {
		return fmt.Errorf("SANDBOX_SERVICENOW_ADDR: %w", err)
	}
	r.SeededTasks = hp.SeededTaskIDs()
	r.log.Info("sandbox simulators serving", "hyperproof", cfg.HyperproofAPIURL, "servicenow", cfg.ServiceNowInstanceURL,
		"seeded_tasks", r.SeededTasks)
	return nil
}

func (r *Running) logf(component string) func(string, ...any) {
	return func(format string, args ...any) { r.log.Debug(fmt.Sprintf(format, args...), "component", component) }
}

// listen binds addr now (so a busy port fails Start) and serves h on it.
func (r *Running) listen(addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	r.servers = append(r.servers, srv)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("listener stopped", "addr", addr, "error", err)
		}
	}()
	return nil
}

// Stop stops the worker, the listeners and the sandbox.
func (r *Running) Stop() {
	r.once.Do(func() {
		if r.worker != nil {
			r.worker.Stop()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, s := range r.servers {
			_ = s.Shutdown(ctx)
		}
		for i := len(r.closers) - 1; i >= 0; i-- {
			_ = r.closers[i]()
		}
	})
}

// Clients builds the integration's two API clients from the settings.
func Clients(cfg config.Config) (*hyperproof.Client, *servicenow.Client, error) {
	hp, err := hyperproof.New(hyperproof.Config{
		APIURL: cfg.HyperproofAPIURL, TokenURL: cfg.HyperproofTokenURL,
		ClientID: cfg.HyperproofClientID, ClientSecret: cfg.HyperproofClientSecret,
		RequestsPerSecond: cfg.HyperproofRequestsPerSecond,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("hyperproof client: %w", err)
	}
	sn, err := servicenow.New(servicenow.Config{
		InstanceURL: cfg.ServiceNowInstanceURL, Username: cfg.ServiceNowUsername, Password: cfg.ServiceNowPassword,
		RequestsPerSecond: cfg.ServiceNowRequestsPerSecond,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("servicenow client: %w", err)
	}
	return hp, sn, nil
}

// CheckAPIs makes one cheap authenticated call to each API, so wrong
// credentials and unreachable hosts are reported at start, by name.
func CheckAPIs(ctx context.Context, hp *hyperproof.Client, sn *servicenow.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := untilSettled(ctx, func() error { _, err := hp.Me(ctx); return err }); err != nil {
		return fmt.Errorf("hyperproof: %w", err)
	}
	if err := untilSettled(ctx, func() error { return sn.Ping(ctx) }); err != nil {
		return fmt.Errorf("servicenow: %w", err)
	}
	return nil
}

// untilSettled retries a start-up check through transient answers (429,
// 5xx, network) until ctx ends; a refusal (wrong credentials, 403, 404) is
// final at once, so a passing outage does not stop the worker and a wrong
// setting still does.
func untilSettled(ctx context.Context, check func() error) error {
	delay := 250 * time.Millisecond
	for {
		err := check()
		if err == nil || !transient(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func transient(err error) bool {
	var hp *hyperproof.APIError
	if errors.As(err, &hp) {
		return hp.Retryable()
	}
	var sn *servicenow.APIError
	if errors.As(err, &sn) {
		return sn.Retryable()
	}
	var auth *hyperproof.AuthError
	if errors.As(err, &auth) {
		return auth.Retryable()
	}
	return true // network errors
}

// Dial connects to Temporal and checks it answers. Payloads go through the
// PAYLOAD_KEYS codec (encrypted when keys are set; unencrypted payloads of
// older histories read as they are).
func Dial(ctx context.Context, cfg config.Config, log *slog.Logger) (client.Client, error) {
	return dial(ctx, cfg, log, nil)
}

// dial is Dial with the SDK's metrics sent to metrics (nil: none).
func dial(ctx context.Context, cfg config.Config, log *slog.Logger, metrics client.MetricsHandler) (client.Client, error) {
	opts := client.Options{
		HostPort:       cfg.TemporalAddress,
		Namespace:      cfg.TemporalNamespace,
		Logger:         tlog.NewStructuredLogger(log.With("component", "temporal")),
		MetricsHandler: metrics,
	}
	codec.New(cfg.Keyring()).ApplyTo(&opts)
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("temporal at %s (TEMPORAL_ADDRESS): %w", cfg.TemporalAddress, err)
	}
	return c, nil
}

// EnsureSearchAttributes registers the workflows' search attributes in the
// namespace when they are missing. The workflows upsert them, so a worker
// that cannot register them does not start.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes of namespace %s: %w", namespace, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range workflows.SearchAttributeTypes() {
		if got, ok := have.GetCustomAttributes()[name]; ok {
			if got != typ {
				return fmt.Errorf("search attribute %s exists with type %s, want %s", name, got, typ)
			}
			continue
		}
		missing[name] = typ
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("register search attributes in namespace %s: %w", namespace, err)
	}
	return nil
}

// NewLogHandler wraps inner for the worker's logs: the secrets of cfg (and
// any password, token or Authorization value) are redacted, and lines of a
// task workflow or its activities carry hyperproof_task_id.
func NewLogHandler(inner slog.Handler, cfg config.Config) slog.Handler {
	return telemetry.NewLogHandler(inner, telemetry.LogOptions{
		Secrets:              cfg.Secrets(),
		TaskIDFromWorkflowID: workflows.TaskIDFromWorkflowID,
	})
}

// StartPollers starts the two poller workflows unless they already run.
func StartPollers(ctx context.Context, c client.Client, taskQueue string) error {
	for _, p := range []struct {
		id, name string
		arg      any
	}{
		{workflows.HyperproofPollerID, workflows.HyperproofPollerName, workflows.HyperproofPollerInput{}},
		{workflows.ServiceNowPollerID, workflows.ServiceNowPollerName, workflows.ServiceNowPollerInput{}},
	} {
		_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID:                       p.id,
			TaskQueue:                taskQueue,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
			WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		}, p.name, p.arg)
		if err != nil {
			return fmt.Errorf("start %s: %w", p.id, err)
		}
	}
	return nil
}

func tableSet(tables []string) map[string]bool {
	m := map[string]bool{}
	for _, t := range tables {
		m[t] = true
	}
	return m
}

// Hinter signals task workflows through the Temporal client.
type Hinter struct{ Client client.Client }

// Hint signals the task's workflow; a task without a running workflow is
// not linked.
func (h Hinter) Hint(ctx context.Context, hyperproofTaskID string, side activities.Side) error {
	name := workflows.SignalHyperproofChanged
	if side == activities.SideServiceNow {
		name = workflows.SignalServiceNowChanged
	}
	err := h.Client.SignalWorkflow(ctx, workflows.WorkflowID(hyperproofTaskID), "", name, nil)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return activities.ErrNotLinked
	}
	return err
}

// LinkedTasks lists the Hyperproof task ids of running task workflows.
func (h Hinter) LinkedTasks(ctx context.Context) ([]string, error) {
	var ids []string
	var token []byte
	for {
		resp, err := h.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query:         fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", workflows.TaskSyncWorkflowName),
			NextPageToken: token,
			PageSize:      1000,
		})
		if err != nil {
			return nil, err
		}
		for _, e := range resp.GetExecutions() {
			if id, ok := workflows.TaskIDFromWorkflowID(e.GetExecution().GetWorkflowId()); ok {
				ids = append(ids, id)
			}
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			return ids, nil
		}
	}
}

// Resolver maps a ServiceNow record to the Hyperproof task it is linked to
// by re-reading it through the API (the webhook body is only a hint).
func Resolver(sn *servicenow.Client) ingest.Resolver {
	return func(ctx context.Context, table, sysID string) (string, bool, error) {
		t, err := sn.GetTask(ctx, table, sysID)
		if err != nil {
			var apiErr *servicenow.APIError
			if errors.As(err, &apiErr) && apiErr.StatusCode == 404 {
				return "", false, nil
			}
			return "", false, err
		}
		id, ok := activities.HyperproofTaskOf(t.CorrelationID)
		return id, ok, nil
	}
}
