// Command chaos runs the demo's whole story on many linked tasks at once
// while the worker process is killed with SIGKILL and restarted, the
// Temporal dev server (file database) is killed and restarted once, and
// both simulated APIs inject faults into the integration's own traffic;
// then it checks, through the APIs, that nothing was duplicated or lost.
//
//	go run ./chaos [-tasks 200] [-kills 20] [-seed 1] [-faults "<spec>"]
//	    [-concurrency 20] [-step-timeout 6m] [-no-server-restart] [-keep]
//
// In one run it starts a Temporal dev server (headless, free port) with its
// database in a file of a temporary directory, the two API simulators in
// this process (data on disk, the ServiceNow business rule posting its
// webhooks to the worker, faults from -faults), and the worker built from
// ./worker as a separate process (SANDBOX=false, pointed at the simulators,
// HYPERPROOF_POLL_INTERVAL=1s, SERVICENOW_POLL_INTERVAL=5s, a task queue of
// its own, its log in worker.log). Then -tasks copies of the users' story
// (internal/story: the creator creates and links a task, the assignee asks,
// the creator answers, the assignee attaches two files and completes, the
// creator reopens, the assignee answers, attaches one more and completes,
// the creator closes) run, -concurrency at a time, each on its own task
// with comment texts tagged with the task's number. Linking goes through
// internal/link with a Temporal client and the integration's Hyperproof
// client, and is retried while Temporal or the API is unavailable.
//
// Meanwhile a killer SIGKILLs the worker -kills times at random points of
// the run (random thresholds of the observed hops, plus a random delay),
// each time waiting 0.5–3 s before starting it again, and once, at a random
// point between 40 % and 60 % of the run, SIGKILLs the dev server and
// starts it again on the same database file and port. After the server
// restart it checks that the worker polls the new server again (task queue
// pollers) and restarts it when it does not.
//
// The default fault spec hits only the integration's requests (as=, see
// internal/sandbox/faults): 5xx, 429 with Retry-After, connection resets,
// commit-lost writes (served, answer lost) and latency, on both APIs. The
// simulated users are never faulted: a user's own retried write would be a
// real duplicate.
//
// When every story has ended and the task workflows have no activity left
// pending, each task is checked directly through the APIs: every comment
// the assignee wrote is in the Hyperproof feed exactly once and every
// comment the creator wrote is in the ServiceNow journal exactly once (told
// apart by their tagged text), none came back to its own side, every file is
// proof on the task exactly once with the same SHA-256 and exactly once on
// the control's Proof tab, the alert is in the journal exactly once per
// reopen, the Hyperproof task is Closed and the ServiceNow task in state 3.
//
// It prints tasks, events (user actions and observed hops), kills, server
// restarts, the faults that fired by kind, duplicates, losses and the wall
// time, and exits 1 when there is a duplicate, a loss, a wrong final state
// or a story that did not complete. The temporary directory (worker binary
// and log, dev server log and database, simulator data) is removed unless
// the run failed or -keep is given. Linux only (/proc, SIGKILL).
package main

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"hpsync/internal/devserver"
	"hpsync/internal/hyperproof"
	"hpsync/internal/link"
	"hpsync/internal/sandbox/faults"
	"hpsync/internal/sandbox/hpsim"
	"hpsync/internal/sandbox/seed"
	"hpsync/internal/sandbox/snsim"
	"hpsync/internal/servicenow"
	"hpsync/internal/statusmap"
	"hpsync/internal/story"
	"hpsync/workflows"
)

const table = "sc_task"

// DefaultFaults is the fault spec used when -faults is not given: every rule
// is restricted to the integration's identities, so the users' own requests
// are never faulted.
var DefaultFaults = strings.Join([]string{
	"servicenow:*:5xx=0.03,as=" + seed.SNIntegrationUser,
	"servicenow:*:429=0.004,retry-after=1,as=" + seed.SNIntegrationUser,
	"servicenow:GET:reset=0.02,as=" + seed.SNIntegrationUser,
	"servicenow:POST:commit-lost=0.08,as=" + seed.SNIntegrationUser,
	"servicenow:PATCH:commit-lost=0.08,as=" + seed.SNIntegrationUser,
	"servicenow:*:latency=30ms,share=0.2,as=" + seed.SNIntegrationUser,
	"hyperproof:*:5xx=0.03,as=" + seed.IntegrationClientID,
	"hyperproof:*:429=0.004,retry-after=1,as=" + seed.IntegrationClientID,
	"hyperproof:GET:reset=0.02,as=" + seed.IntegrationClientID,
	"hyperproof:POST:commit-lost=0.08,as=" + seed.IntegrationClientID,
	"hyperproof:PATCH:commit-lost=0.08,as=" + seed.IntegrationClientID,
	"hyperproof:*:latency=30ms,share=0.2,as=" + seed.IntegrationClientID,
}, "; ")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		stop()
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	rep, err := run(ctx, o, os.Stderr)
	stop()
	rep.print(os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	if !rep.ok() {
		os.Exit(1)
	}
}

type options struct {
	tasks, kills, concurrency int
	seed                      uint64
	faults                    string
	stepTimeout               time.Duration
	timeout                   time.Duration
	serverRestart             bool
	keep                      bool
	// The killer's thresholds are drawn in [killFrom, killTo] of the
	// observed hops.
	killFrom, killTo float64
	// Pacing of the worker's API clients.
	hpRPS, snRPS float64
	// quiesce bounds the wait for the task workflows' pending activities
	// after the stories.
	quiesce   time.Duration
	pollEvery time.Duration
}

func defaults() options {
	return options{
		tasks: 200, kills: 20, concurrency: 20, seed: 1, faults: DefaultFaults,
		stepTimeout: 6 * time.Minute, timeout: 2 * time.Hour, serverRestart: true,
		killFrom: 0.02, killTo: 0.95, hpRPS: 100, snRPS: 100, quiesce: 5 * time.Minute,
		pollEvery: time.Second,
	}
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := defaults()
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.tasks, "tasks", o.tasks, "linked tasks, each through the whole story")
	fs.IntVar(&o.kills, "kills", o.kills, "times the worker is killed with SIGKILL and restarted")
	fs.IntVar(&o.concurrency, "concurrency", o.concurrency, "stories running at once")
	fs.Uint64Var(&o.seed, "seed", o.seed, "seed of the killer's draws and of the fault draws (unless the spec has seed=)")
	fs.StringVar(&o.faults, "faults", o.faults, `fault spec (internal/sandbox/faults grammar); "" = no faults`)
	fs.DurationVar(&o.stepTimeout, "step-timeout", o.stepTimeout, "how long one step of a story may take to be observed")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "bound on the whole run")
	noRestart := fs.Bool("no-server-restart", false, "do not kill and restart the Temporal dev server")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (worker binary and log, dev server log and database, simulator data)")
	fs.Float64Var(&o.hpRPS, "hyperproof-rps", o.hpRPS, "HYPERPROOF_REQUESTS_PER_SECOND of the worker")
	fs.Float64Var(&o.snRPS, "servicenow-rps", o.snRPS, "SERVICENOW_REQUESTS_PER_SECOND of the worker")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.serverRestart = !*noRestart
	return o, o.check()
}

func (o *options) check() error {
	switch {
	case o.tasks < 1:
		return errors.New("-tasks must be at least 1")
	case o.kills < 0:
		return errors.New("-kills must not be negative")
	case o.concurrency < 1:
		return errors.New("-concurrency must be at least 1")
	case o.stepTimeout <= 0 || o.timeout <= 0:
		return errors.New("-step-timeout and -timeout must be positive")
	case o.killFrom < 0 || o.killTo > 1 || o.killFrom > o.killTo:
		return errors.New("the kill window must lie in [0,1]")
	}
	if _, err := faults.Parse(o.faults); err != nil {
		return fmt.Errorf("-faults: %w", err)
	}
	return nil
}

// ---------------------------------------------------------------------------
// The report

type report struct {
	Tasks, Completed      int
	Concurrency           int
	Seed                  uint64
	Actions, Hops         int
	Kills, KillsPlanned   int
	ServerRestarts        int
	ServerDown            time.Duration
	WorkerStarts          int
	WorkerReconnected     string // after the server restart: "yes", or what was done
	LinkRetries           int64
	Faults                map[string]faults.Counts
	Duplicates, Losses    int
	WrongStates           int
	Corrupt               int
	Unexpected            int
	Problems              []string // one line each: duplicates, losses, wrong states, story failures
	Notes                 []string // unexpected items that are neither (integration notes, ...)
	StoryErrors           []string
	SlowestHop            time.Duration
	SlowestHopWhat        string
	Quiesced              bool
	Wall                  time.Duration
	Dir                   string
	KeptDir               bool
	FaultSpec             string
	checkedTasks          int
	storiesWithoutOutcome int
}

func (r report) ok() bool {
	return r.Tasks > 0 && r.Completed == r.Tasks && r.Duplicates == 0 && r.Losses == 0 &&
		r.WrongStates == 0 && r.Corrupt == 0 && r.checkedTasks == r.Tasks
}

func (r report) print(w io.Writer) {
	if r.Tasks == 0 {
		return
	}
	fmt.Fprintf(w, "chaos: %d tasks, %d completed the story (%d at a time, seed %d)\n", r.Tasks, r.Completed, r.Concurrency, r.Seed)
	fmt.Fprintf(w, "  events:          %d (%d user actions, %d observed hops)\n", r.Actions+r.Hops, r.Actions, r.Hops)
	fmt.Fprintf(w, "  kills:           %d of %d planned worker SIGKILLs; worker started %d times\n", r.Kills, r.KillsPlanned, r.WorkerStarts)
	fmt.Fprintf(w, "  server restarts: %d (dev server SIGKILLed, down %.1fs, same database file); worker after it: %s\n",
		r.ServerRestarts, r.ServerDown.Seconds(), r.WorkerReconnected)
	for _, side := range []string{faults.Hyperproof, faults.ServiceNow} {
		fmt.Fprintf(w, "  faults fired:    %-10s %s\n", side, r.Faults[side])
	}
	fmt.Fprintf(w, "  link retries:    %d\n", r.LinkRetries)
	if r.SlowestHop > 0 {
		fmt.Fprintf(w, "  slowest hop:     %.1fs (%s)\n", r.SlowestHop.Seconds(), r.SlowestHopWhat)
	}
	fmt.Fprintf(w, "  duplicates:      %d\n", r.Duplicates)
	fmt.Fprintf(w, "  losses:          %d\n", r.Losses)
	fmt.Fprintf(w, "  wrong states:    %d   corrupt proof: %d   other unexpected items: %d\n", r.WrongStates, r.Corrupt, r.Unexpected)
	fmt.Fprintf(w, "  wall time:       %s\n", r.Wall.Round(time.Second))
	const maxLines = 40
	for i, p := range r.StoryErrors {
		if i == maxLines {
			fmt.Fprintf(w, "  ... %d more story failures\n", len(r.StoryErrors)-maxLines)
			break
		}
		fmt.Fprintf(w, "  story failed: %s\n", p)
	}
	for i, p := range r.Problems {
		if i == maxLines {
			fmt.Fprintf(w, "  ... %d more problems\n", len(r.Problems)-maxLines)
			break
		}
		fmt.Fprintf(w, "  %s\n", p)
	}
	for i, p := range r.Notes {
		if i == maxLines {
			fmt.Fprintf(w, "  ... %d more notes\n", len(r.Notes)-maxLines)
			break
		}
		fmt.Fprintf(w, "  note: %s\n", p)
	}
	if !r.Quiesced {
		fmt.Fprintln(w, "  (some task workflows still had activities pending when the check ran)")
	}
	verdict := "PASS"
	if !r.ok() {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "  result:          %s", verdict)
	if r.KeptDir {
		fmt.Fprintf(w, " (logs and data kept in %s)", r.Dir)
	}
	fmt.Fprintln(w)
}

// ---------------------------------------------------------------------------
// The run

type progress struct {
	w     io.Writer
	start time.Time
	mu    sync.Mutex
}

func (p *progress) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "[%7.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

type run1 struct {
	o     options
	p     *progress
	rng   *rand.Rand
	rngMu sync.Mutex
	dir   string
	queue string

	temporal *temporalServer
	sims     *sims
	worker   *workers
	tc       client.Client
	hpLink   *hyperproof.Client
	creator  *hyperproof.Client
	assignee *servicenow.Client

	hops        atomic.Int64
	linkRetries atomic.Int64
}

func (c *run1) randDur(lo, hi time.Duration) time.Duration {
	c.rngMu.Lock()
	defer c.rngMu.Unlock()
	return lo + time.Duration(c.rng.Int64N(int64(hi-lo)+1))
}

func run(ctx context.Context, o options, logw io.Writer) (rep report, err error) {
	start := time.Now()
	rep = report{Tasks: o.tasks, Concurrency: o.concurrency, Seed: o.seed, KillsPlanned: o.kills, Faults: map[string]faults.Counts{}}
	if err := o.check(); err != nil {
		return rep, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	c := &run1{o: o, p: &progress{w: logw, start: start}, rng: rand.New(rand.NewPCG(o.seed, 0x63686173))}
	spec := o.faults
	if s, _ := faults.Parse(spec); !s.Seeded && !s.Empty() {
		spec = fmt.Sprintf("seed=%d; %s", o.seed, spec)
	}
	rep.FaultSpec = spec

	root, err := devserver.RepoRoot()
	if err != nil {
		return rep, err
	}
	if c.dir, err = os.MkdirTemp("", "hpsync-chaos-"); err != nil {
		return rep, err
	}
	rep.Dir = c.dir
	defer func() {
		rep.Wall = time.Since(start)
		if o.keep || err != nil || !rep.ok() {
			rep.KeptDir = true
			return
		}
		if rerr := os.RemoveAll(c.dir); rerr != nil && err == nil {
			err = rerr
		}
	}()

	// (a) The dev server, database in a file.
	devLog, err := os.OpenFile(filepath.Join(c.dir, "temporal.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return rep, err
	}
	defer devLog.Close()
	c.temporal = &temporalServer{dbFile: filepath.Join(c.dir, "temporal.db"), log: devLog}
	c.p.printf("starting the Temporal dev server (database %s)", c.temporal.dbFile)
	if err := c.temporal.start(ctx); err != nil {
		return rep, err
	}
	defer c.temporal.stop()

	// (b) The simulators, in this process, with the faults.
	webhookAddr, err := freeAddr()
	if err != nil {
		return rep, err
	}
	secret := randomHex(32)
	if c.sims, err = startSims(filepath.Join(c.dir, "data"), "http://"+webhookAddr+"/webhooks/servicenow", secret, spec); err != nil {
		return rep, err
	}
	defer c.sims.stop()
	defer func() {
		rep.Faults[faults.Hyperproof] = c.sims.hp.Faults().Counts()
		rep.Faults[faults.ServiceNow] = c.sims.sn.Faults().Counts()
	}()
	c.p.printf("simulators: hyperproof %s, servicenow %s; faults: %s", c.sims.hpURL, c.sims.snURL, spec)

	// (c) The worker, built and run as its own process.
	c.p.printf("building ./worker")
	bin := filepath.Join(c.dir, "worker")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./worker")
	build.Dir = root
	if out, berr := build.CombinedOutput(); berr != nil {
		return rep, fmt.Errorf("go build ./worker: %v\n%s", berr, out)
	}
	c.queue = "chaos-" + randomHex(6)
	c.worker = &workers{
		bin: bin, logPath: filepath.Join(c.dir, "worker.log"), webhookAddr: webhookAddr,
		env: workerEnv(os.Environ(), map[string]string{
			"SANDBOX":                        "false",
			"TEMPORAL_ADDRESS":               c.temporal.address(),
			"TEMPORAL_NAMESPACE":             "default",
			"TEMPORAL_TASK_QUEUE":            c.queue,
			"HYPERPROOF_API_URL":             c.sims.hpURL,
			"HYPERPROOF_TOKEN_URL":           c.sims.hpURL + "/oauth/token",
			"HYPERPROOF_CLIENT_ID":           seed.IntegrationClientID,
			"HYPERPROOF_CLIENT_SECRET":       seed.IntegrationClientSecret,
			"SERVICENOW_INSTANCE_URL":        c.sims.snURL,
			"SERVICENOW_USERNAME":            seed.SNIntegrationUser,
			"SERVICENOW_PASSWORD":            seed.SNIntegrationPassword,
			"SERVICENOW_TABLE":               table,
			"WEBHOOK_ADDR":                   webhookAddr,
			"WEBHOOK_SECRET":                 secret,
			"HYPERPROOF_POLL_INTERVAL":       "1s",
			"SERVICENOW_POLL_INTERVAL":       "5s",
			"HYPERPROOF_REQUESTS_PER_SECOND": strconv.FormatFloat(o.hpRPS, 'g', -1, 64),
			"SERVICENOW_REQUESTS_PER_SECOND": strconv.FormatFloat(o.snRPS, 'g', -1, 64),
		}),
	}
	if err := c.worker.start(ctx); err != nil {
		return rep, err
	}
	defer c.worker.stop()
	defer func() {
		rep.WorkerStarts = c.worker.starts
		if err != nil || !rep.ok() {
			fmt.Fprintf(logw, "worker log (%s), last lines:\n%s\n", c.worker.logPath, tail(c.worker.logPath, 4000))
		}
	}()
	c.p.printf("worker pid %d on task queue %s, webhook listener %s", c.worker.pid(), c.queue, webhookAddr)

	// The users' clients (never faulted) and the integration's client for
	// linking (faulted like the worker's), each with a limiter of its own.
	if c.creator, err = hyperproof.New(hyperproof.Config{APIURL: c.sims.hpURL, TokenURL: c.sims.hpURL + "/oauth/token",
		ClientID: seed.CreatorClientID, ClientSecret: seed.CreatorClientSecret, RequestsPerSecond: -1, RateLimitKey: "chaos-creator"}); err != nil {
		return rep, err
	}
	if c.hpLink, err = hyperproof.New(hyperproof.Config{APIURL: c.sims.hpURL, TokenURL: c.sims.hpURL + "/oauth/token",
		ClientID: seed.IntegrationClientID, ClientSecret: seed.IntegrationClientSecret, RequestsPerSecond: -1, RateLimitKey: "chaos-link"}); err != nil {
		return rep, err
	}
	if c.assignee, err = servicenow.New(servicenow.Config{InstanceURL: c.sims.snURL,
		Username: seed.SNAssigneeUser, Password: seed.SNAssigneePassword, RequestsPerSecond: -1}); err != nil {
		return rep, err
	}
	if c.tc, err = client.DialContext(ctx, client.Options{HostPort: c.temporal.address(),
		Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}); err != nil {
		return rep, fmt.Errorf("temporal: %w", err)
	}
	defer c.tc.Close()

	// (d) The stories, and the killer.
	outcomes := make([]story.Outcome, o.tasks)
	errs := make([]error, o.tasks)
	var wg sync.WaitGroup
	sem := make(chan struct{}, o.concurrency)
	var done atomic.Int64
	c.p.printf("running %d stories, %d at a time; %d worker kills planned, server restart %v", o.tasks, o.concurrency, o.kills, o.serverRestart)
	for i := range o.tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			outcomes[i], errs[i] = story.Run(ctx, story.Env{
				Creator: c.creator, Assignee: c.assignee, StepTimeout: o.stepTimeout, PollInterval: o.pollEvery,
				Tag:    fmt.Sprintf("chaos task %03d", i+1),
				Link:   c.link,
				Report: func(story.Step) { c.hops.Add(1) },
			})
			n := done.Add(1)
			if errs[i] != nil {
				c.p.printf("story %d (task %s) FAILED: %v", i+1, outcomes[i].HyperproofTaskID, errs[i])
			} else if step := int64(max(1, o.tasks/10)); n%step == 0 || n == int64(o.tasks) {
				c.p.printf("%d of %d stories done", n, o.tasks)
			}
		}()
	}
	storiesDone := make(chan struct{})
	go func() { wg.Wait(); close(storiesDone) }()
	killerDone := make(chan struct{})
	var kr killerResult
	go func() { defer close(killerDone); kr = c.killer(ctx, storiesDone) }()
	<-storiesDone
	<-killerDone
	rep.Kills, rep.ServerRestarts, rep.ServerDown, rep.WorkerReconnected = kr.kills, kr.serverRestarts, kr.serverDown, kr.reconnected
	if rep.WorkerReconnected == "" {
		rep.WorkerReconnected = "n/a"
	}
	rep.LinkRetries = c.linkRetries.Load()
	if kr.err != nil {
		return rep, kr.err
	}

	for i, out := range outcomes {
		rep.Actions += out.Actions
		rep.Hops += len(out.Steps)
		for _, st := range out.Steps {
			if st.Took > rep.SlowestHop {
				rep.SlowestHop, rep.SlowestHopWhat = st.Took, fmt.Sprintf("task %03d, step %d: %s", i+1, st.N, st.Action)
			}
		}
		if errs[i] == nil {
			rep.Completed++
		} else {
			rep.StoryErrors = append(rep.StoryErrors, fmt.Sprintf("task %03d %s: %v", i+1, out.HyperproofTaskID, errs[i]))
		}
	}
	if ctx.Err() != nil {
		return rep, fmt.Errorf("run stopped: %w", ctx.Err())
	}

	// (e) Let retried activities land, then check every task.
	c.p.printf("stories done (%d completed); waiting for the task workflows to settle", rep.Completed)
	rep.Quiesced = c.quiesce(ctx, outcomes)
	c.p.printf("checking %d tasks through the APIs", o.tasks)
	c.verify(ctx, outcomes, errs, &rep)
	return rep, nil
}

// link links a task as the starter does, retrying while Temporal or the
// API is unavailable (a killed dev server, a faulted request) until the
// step timeout.
func (c *run1) link(ctx context.Context, taskID string) (string, string, error) {
	deadline := time.Now().Add(c.o.stepTimeout)
	for {
		res, err := link.Link(ctx, c.tc, c.hpLink, statusmap.Default(), link.Request{
			HyperproofTaskID: taskID, Table: table, TaskQueue: c.queue,
		})
		if err == nil {
			return res.Table, res.Number, nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return "", "", err
		}
		c.linkRetries.Add(1)
		select {
		case <-ctx.Done():
			return "", "", ctx.Err()
		case <-time.After(c.randDur(500*time.Millisecond, 2*time.Second)):
		}
	}
}

// ---------------------------------------------------------------------------
// The killer

type killerResult struct {
	kills, serverRestarts int
	serverDown            time.Duration
	reconnected           string
	err                   error
}

type chaosEvent struct {
	at     float64 // share of the observed hops
	server bool
}

// killer kills the worker (and once the dev server) at random points of the
// run until every planned event happened or the stories are done.
func (c *run1) killer(ctx context.Context, storiesDone <-chan struct{}) (res killerResult) {
	total := float64(c.o.tasks * 10) // story.Run observes 10 hops
	var evs []chaosEvent
	c.rngMu.Lock()
	for range c.o.kills {
		evs = append(evs, chaosEvent{at: c.o.killFrom + c.rng.Float64()*(c.o.killTo-c.o.killFrom)})
	}
	if c.o.serverRestart {
		evs = append(evs, chaosEvent{at: 0.4 + c.rng.Float64()*0.2, server: true})
	}
	c.rngMu.Unlock()
	sort.Slice(evs, func(i, j int) bool { return evs[i].at < evs[j].at })
	wait := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-storiesDone:
			return false
		case <-time.After(d):
			return true
		}
	}
	for _, ev := range evs {
		for float64(c.hops.Load()) < ev.at*total {
			if !wait(100 * time.Millisecond) {
				return res
			}
		}
		// A random moment after the threshold, not the instant a hop was seen.
		if !wait(c.randDur(0, 1500*time.Millisecond)) {
			return res
		}
		if ev.server {
			down, what, err := c.restartServer(ctx)
			if err != nil {
				res.err = err
				return res
			}
			res.serverRestarts++
			res.serverDown, res.reconnected = down, what
		} else {
			pid := c.worker.pid()
			if err := c.worker.kill(); err != nil {
				res.err = err
				return res
			}
			res.kills++
			pause := c.randDur(500*time.Millisecond, 3*time.Second)
			c.p.printf("kill %d/%d: worker pid %d SIGKILLed at %.0f%% of the hops; restarting in %.1fs",
				res.kills, c.o.kills, pid, 100*float64(c.hops.Load())/total, pause.Seconds())
			time.Sleep(pause)
			if err := c.worker.start(ctx); err != nil {
				res.err = fmt.Errorf("restart the worker after kill %d: %w", res.kills, err)
				return res
			}
		}
		// Let the new worker do some work before the next event.
		if !wait(c.randDur(time.Second, 4*time.Second)) {
			return res
		}
	}
	return res
}

// restartServer SIGKILLs the dev server, starts it again on the same
// database file and port, and makes sure the worker polls it again.
func (c *run1) restartServer(ctx context.Context) (time.Duration, string, error) {
	pid, err := c.temporal.kill()
	if err != nil {
		return 0, "", err
	}
	killed := time.Now()
	pause := c.randDur(500*time.Millisecond, 3*time.Second)
	c.p.printf("server restart: dev server pid %d SIGKILLed at %.0f%% of the hops; starting it again in %.1fs",
		pid, 100*float64(c.hops.Load())/float64(c.o.tasks*10), pause.Seconds())
	time.Sleep(pause)
	var serr error
	for attempt := 0; attempt < 5; attempt++ {
		if serr = c.temporal.start(ctx); serr == nil {
			break
		}
		c.p.printf("dev server did not start again (%v); retrying", serr)
		time.Sleep(2 * time.Second)
	}
	if serr != nil {
		return 0, "", fmt.Errorf("restart the dev server: %w", serr)
	}
	down := time.Since(killed)
	c.p.printf("dev server back after %.1fs (same database file)", down.Seconds())
	// A worker that polls the new server is listed as a poller of both its
	// workflow and its activity task queue (the restarted server knows no
	// pollers from before).
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		if c.polling(ctx) {
			what := fmt.Sprintf("polled the restarted server again after %.1fs, not restarted", time.Since(killed).Seconds())
			c.p.printf("worker %s", what)
			return down, what, nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	c.p.printf("the worker does not poll the restarted server within 45s: restarting it")
	if err := c.worker.kill(); err != nil {
		return down, "", err
	}
	if err := c.worker.start(ctx); err != nil {
		return down, "", fmt.Errorf("restart the worker after the server restart: %w", err)
	}
	return down, "did not poll the restarted server within 45s; restarted", nil
}

func (c *run1) polling(ctx context.Context) bool {
	for _, typ := range []enumspb.TaskQueueType{enumspb.TASK_QUEUE_TYPE_WORKFLOW, enumspb.TASK_QUEUE_TYPE_ACTIVITY} {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := c.tc.DescribeTaskQueue(qctx, c.queue, typ)
		cancel()
		if err != nil || len(resp.GetPollers()) == 0 {
			return false
		}
	}
	return true
}

// quiesce waits until no task workflow has an activity pending (a retry
// scheduled after a kill lands before the check), at most o.quiesce.
func (c *run1) quiesce(ctx context.Context, outs []story.Outcome) bool {
	deadline := time.Now().Add(c.o.quiesce)
	time.Sleep(2 * time.Second)
	for {
		busy := 0
		for _, out := range outs {
			if out.HyperproofTaskID == "" {
				continue
			}
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			d, err := c.tc.DescribeWorkflowExecution(dctx, workflows.WorkflowID(out.HyperproofTaskID), "")
			cancel()
			if err != nil || len(d.GetPendingActivities()) > 0 {
				busy++
			}
		}
		if busy == 0 {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.p.printf("%d task workflows still busy after %s", busy, c.o.quiesce)
			return false
		}
		c.p.printf("%d task workflows have activities pending; waiting", busy)
		time.Sleep(5 * time.Second)
	}
}

// ---------------------------------------------------------------------------
// The check

const alertMarker = "[hyperproof-alert:"

// verify checks every task through the APIs, as its users see it.
func (c *run1) verify(ctx context.Context, outs []story.Outcome, errs []error, rep *report) {
	controlProof, err := retry(ctx, func() ([]hyperproof.Proof, error) { return c.creator.ListProof(ctx, "control", seed.ControlID) })
	if err != nil {
		rep.Problems = append(rep.Problems, fmt.Sprintf("cannot list the control's proof: %v", err))
		return
	}
	onControl := map[string][]hyperproof.Proof{}
	for _, p := range controlProof {
		onControl[p.SourceID] = append(onControl[p.SourceID], p)
	}
	for i, out := range outs {
		if out.HyperproofTaskID == "" {
			rep.storiesWithoutOutcome++
			continue
		}
		if err := c.verifyTask(ctx, i+1, out, errs[i] == nil, onControl[out.HyperproofTaskID], rep); err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("task %03d %s: cannot check: %v", i+1, out.HyperproofTaskID, err))
			continue
		}
		rep.checkedTasks++
	}
}

func (c *run1) verifyTask(ctx context.Context, n int, out story.Outcome, completed bool, onControl []hyperproof.Proof, rep *report) error {
	id := out.HyperproofTaskID
	who := fmt.Sprintf("task %03d %s (%s)", n, id, out.Number)
	dup := func(k int, format string, args ...any) {
		rep.Duplicates += k
		rep.Problems = append(rep.Problems, fmt.Sprintf("DUPLICATE (%d extra) %s: %s", k, who, fmt.Sprintf(format, args...)))
	}
	loss := func(format string, args ...any) {
		rep.Losses++
		rep.Problems = append(rep.Problems, fmt.Sprintf("LOSS %s: %s", who, fmt.Sprintf(format, args...)))
	}
	count := func(what string, n, want int, format string, args ...any) {
		switch {
		case n > want:
			dup(n-want, "%s %d times, want %d: %s", what, n, want, fmt.Sprintf(format, args...))
		case n < want:
			for range want - n {
				loss("%s %d times, want %d: %s", what, n, want, fmt.Sprintf(format, args...))
			}
		}
	}

	feed, err := retry(ctx, func() ([]hyperproof.Comment, error) { return c.creator.ListComments(ctx, id) })
	if err != nil {
		return err
	}
	var journal []servicenow.JournalEntry
	if out.SysID != "" {
		if journal, err = retry(ctx, func() ([]servicenow.JournalEntry, error) {
			return c.assignee.ListJournal(ctx, table, out.SysID, []string{"comments", "work_notes"}, time.Time{})
		}); err != nil {
			return err
		}
	}
	feedText := func(cm hyperproof.Comment) string { return cm.Text + "\n" + cm.PlainText }
	known := func(s string) bool {
		for _, uc := range out.Comments {
			if strings.Contains(s, uc.Text) {
				return true
			}
		}
		return false
	}

	for _, uc := range out.Comments {
		inFeed, inJournal := 0, 0
		for _, cm := range feed {
			if cm.Event == "" && strings.Contains(feedText(cm), uc.Text) {
				inFeed++
			}
		}
		for _, e := range journal {
			if strings.Contains(e.Value, uc.Text) && !strings.Contains(e.Value, alertMarker) {
				inJournal++
			}
		}
		if uc.Side == story.SideServiceNow {
			count("the assignee's comment in the Hyperproof feed", inFeed, 1, "%q", uc.Text)
			if inJournal > 1 {
				dup(inJournal-1, "the assignee's comment came back into the ServiceNow journal (echo): %q", uc.Text)
			}
		} else {
			count("the creator's comment in the ServiceNow journal", inJournal, 1, "%q", uc.Text)
			if inFeed > 1 {
				dup(inFeed-1, "the creator's comment came back into the Hyperproof feed (echo): %q", uc.Text)
			}
		}
	}
	// One alert per reopen, quoting the creator's reopen comment.
	alerts := 0
	for _, e := range journal {
		if strings.Contains(e.Value, alertMarker+id+":") {
			alerts++
			quoted := false
			for _, uc := range out.Comments {
				if uc.Reopen && strings.Contains(e.Value, uc.Text) {
					quoted = true
				}
			}
			if !quoted {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s: the more-work alert does not quote the reopen comment: %q", who, e.Value))
			}
		}
	}
	count("the more-work alert in the ServiceNow journal", alerts, out.Reopens, "%d reopen(s)", out.Reopens)
	// Anything else the integration wrote (problem notes, size notes).
	for _, cm := range feed {
		if cm.Event == "" && !known(feedText(cm)) {
			rep.Unexpected++
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s: unexpected entry in the Hyperproof feed: %q", who, oneLine(feedText(cm))))
		}
	}
	for _, e := range journal {
		if !known(e.Value) && !strings.Contains(e.Value, alertMarker) {
			rep.Unexpected++
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s: unexpected entry in the ServiceNow journal (%s by %s): %q", who, e.Element, e.CreatedBy, oneLine(e.Value)))
		}
	}

	// Proof on the task and, once closed, on the control.
	taskProof, err := retry(ctx, func() ([]hyperproof.Proof, error) { return c.creator.ListTaskProof(ctx, id, "") })
	if err != nil {
		return err
	}
	checkProof := func(where string, list []hyperproof.Proof) error {
		for _, f := range out.Files {
			var same []hyperproof.Proof
			for _, p := range list {
				if p.Filename == f.Name {
					same = append(same, p)
				}
			}
			count("file as proof "+where, len(same), 1, "%s", f.Name)
			for _, p := range same {
				sum, err := retry(ctx, func() (string, error) { return c.proofSHA(ctx, p.ID) })
				if err != nil {
					return err
				}
				if sum != f.SHA256 {
					rep.Corrupt++
					rep.Problems = append(rep.Problems, fmt.Sprintf("CORRUPT %s: proof %s %s has SHA-256 %s, the attachment %s", who, where, f.Name, sum, f.SHA256))
				}
			}
		}
		for _, p := range list {
			found := false
			for _, f := range out.Files {
				found = found || p.Filename == f.Name
			}
			if !found {
				rep.Unexpected++
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s: unexpected proof %s: %s", who, where, p.Filename))
			}
		}
		return nil
	}
	if err := checkProof("on the task", taskProof); err != nil {
		return err
	}
	if completed {
		if err := checkProof("on the control's Proof tab", onControl); err != nil {
			return err
		}
	}

	// Final states: what the last user's status change asked for. The sync
	// carries a change to the other side; it must never undo one.
	var wantHP, wantSN string
	switch out.LastStatusBy {
	case story.SideHyperproof:
		wantHP = out.CreatorStatus
		wantSN = map[string]string{hyperproof.StatusInProgress: "2", hyperproof.StatusClosed: "3"}[out.CreatorStatus]
	case story.SideServiceNow:
		wantHP, wantSN = hyperproof.StatusSubmitted, out.AssigneeState
	default:
		return nil // no status change yet
	}
	task, err := retry(ctx, func() (hyperproof.Task, error) { return c.creator.GetTask(ctx, id) })
	if err != nil {
		return err
	}
	statuses, err := retry(ctx, func() ([]hyperproof.TaskStatus, error) { return c.creator.ListTaskStatuses(ctx) })
	if err != nil {
		return err
	}
	typ := ""
	for _, s := range statuses {
		if s.ID == task.TaskStatusID {
			typ = s.Type
		}
	}
	sn, err := retry(ctx, func() (servicenow.Task, error) { return c.assignee.GetTask(ctx, table, out.SysID) })
	if err != nil {
		return err
	}
	last := "the assignee's move to state " + out.AssigneeState
	if out.LastStatusBy == story.SideHyperproof {
		last = "the creator's change to " + out.CreatorStatus
	}
	if typ != wantHP {
		rep.WrongStates++
		by := task.UpdatedBy
		if by == hpsim.IntegrationAppUserID {
			by = "the integration"
		}
		rep.Problems = append(rep.Problems, fmt.Sprintf("WRONG STATE %s: Hyperproof status %q, want %q after %s (last updated by %s at %s)",
			who, typ, wantHP, last, by, task.UpdatedOn.Format(time.RFC3339Nano)))
	}
	if wantSN != "" && sn.State != wantSN {
		rep.WrongStates++
		rep.Problems = append(rep.Problems, fmt.Sprintf("WRONG STATE %s: ServiceNow state %q, want %q after %s (last updated by %s)",
			who, sn.State, wantSN, last, sn.UpdatedBy))
	}
	return nil
}

func (c *run1) proofSHA(ctx context.Context, id string) (string, error) {
	return story.ProofSHA(ctx, c.creator, id)
}

// retry makes a user's read up to three times (the users are never
// faulted; this only rides out a busy moment).
func retry[T any](ctx context.Context, f func() (T, error)) (T, error) {
	var v T
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if v, err = f(); err == nil || ctx.Err() != nil {
			return v, err
		}
		time.Sleep(time.Second)
	}
	return v, err
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

// ---------------------------------------------------------------------------
// The dev server

type temporalServer struct {
	dbFile string
	log    io.Writer
	port   int

	mu  sync.Mutex
	dev *devserver.Server
}

func (t *temporalServer) address() string { return fmt.Sprintf("127.0.0.1:%d", t.port) }

// start starts the dev server: on a free port the first time, on the same
// port (and database file) afterwards.
func (t *temporalServer) start(ctx context.Context) error {
	fmt.Fprintf(t.log, "=== chaos: dev server start at %s\n", time.Now().Format(time.RFC3339Nano))
	dev, err := devserver.Start(ctx, devserver.Options{Port: t.port, UIPort: -1, DBFile: t.dbFile, Log: t.log})
	if err != nil {
		return err
	}
	if t.port == 0 {
		_, p, _ := net.SplitHostPort(dev.Address)
		t.port, _ = strconv.Atoi(p)
	}
	t.mu.Lock()
	t.dev = dev
	t.mu.Unlock()
	return nil
}

// kill SIGKILLs the dev server and waits until it has exited.
func (t *temporalServer) kill() (int, error) {
	t.mu.Lock()
	dev := t.dev
	t.mu.Unlock()
	pid, err := findChild("server start-dev", fmt.Sprintf("--port %d ", t.port), t.dbFile)
	if err != nil {
		return 0, err
	}
	if err := killPid(pid); err != nil {
		return pid, fmt.Errorf("SIGKILL dev server %d: %w", pid, err)
	}
	dev.Stop() // the process has exited: this only waits for it
	return pid, nil
}

func (t *temporalServer) stop() {
	t.mu.Lock()
	dev := t.dev
	t.mu.Unlock()
	if dev != nil {
		dev.Stop()
	}
}

// ---------------------------------------------------------------------------
// The simulators

type sims struct {
	hp           *hpsim.Server
	sn           *snsim.Server
	hpURL, snURL string
	servers      []*http.Server
}

func startSims(dataDir, webhookURL, secret, spec string) (*sims, error) {
	s := &sims{}
	var err error
	if s.hp, err = hpsim.New(hpsim.Options{DataDir: filepath.Join(dataDir, "hyperproof"), FaultSpec: spec}); err != nil {
		return nil, err
	}
	if s.sn, err = snsim.New(snsim.Options{DataDir: filepath.Join(dataDir, "servicenow"), WebhookURL: webhookURL, WebhookSecret: secret, FaultSpec: spec}); err != nil {
		s.hp.Close()
		return nil, err
	}
	for i, h := range []http.Handler{s.hp, s.sn} {
		ln, lerr := net.Listen("tcp", "127.0.0.1:0")
		if lerr != nil {
			s.stop()
			return nil, lerr
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		s.servers = append(s.servers, srv)
		go srv.Serve(ln)
		if i == 0 {
			s.hpURL = "http://" + ln.Addr().String()
		} else {
			s.snURL = "http://" + ln.Addr().String()
		}
	}
	return s, nil
}

func (s *sims) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range s.servers {
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
	}
	s.sn.Close()
	s.hp.Close()
}

// ---------------------------------------------------------------------------
// The worker process

// configVars are the worker's settings; the inherited environment loses
// them so that only the run's apply.
var configVars = []string{
	"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_TASK_QUEUE",
	"HYPERPROOF_API_URL", "HYPERPROOF_TOKEN_URL", "HYPERPROOF_CLIENT_ID", "HYPERPROOF_CLIENT_SECRET",
	"SERVICENOW_INSTANCE_URL", "SERVICENOW_USERNAME", "SERVICENOW_PASSWORD", "SERVICENOW_TABLE",
	"STATUS_MAP_FILE", "WEBHOOK_ADDR", "WEBHOOK_SECRET",
	"HYPERPROOF_POLL_INTERVAL", "SERVICENOW_POLL_INTERVAL", "SERVICENOW_SYNC_WORK_NOTES",
	"SANDBOX", "SANDBOX_HYPERPROOF_ADDR", "SANDBOX_SERVICENOW_ADDR", "SANDBOX_FAULTS", "HYPERPROOF_MAX_PROOF_BYTES",
	"HYPERPROOF_REQUESTS_PER_SECOND", "SERVICENOW_REQUESTS_PER_SECOND",
}

func workerEnv(inherited []string, set map[string]string) []string {
	drop := map[string]bool{}
	for _, k := range configVars {
		drop[k] = true
	}
	for k := range set {
		drop[k] = true
	}
	var env []string
	for _, kv := range inherited {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			env = append(env, kv)
		}
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// workers runs the worker process, one at a time, across kills.
type workers struct {
	bin, logPath, webhookAddr string
	env                       []string

	mu     sync.Mutex
	cur    *workerProc
	starts int
}

type workerProc struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

func (w *workers) pid() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cur == nil {
		return 0
	}
	return w.cur.cmd.Process.Pid
}

// start starts the worker and waits until its webhook listener's /healthz
// answers 200 (bound last, once the worker polls and Temporal answers). A
// worker that exits at start (Temporal still coming up) is started again,
// for up to two minutes.
func (w *workers) start(ctx context.Context) error {
	deadline := time.Now().Add(2 * time.Minute)
	var last error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		p, err := w.spawn()
		if err != nil {
			return err
		}
		if last = w.awaitHealthy(ctx, p, 60*time.Second); last == nil {
			return nil
		}
		w.killProc(p)
		time.Sleep(time.Second)
	}
	return fmt.Errorf("the worker did not start: %v\n%s", last, tail(w.logPath, 2000))
}

func (w *workers) spawn() (*workerProc, error) {
	lf, err := os.OpenFile(w.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer lf.Close() // the child has its own descriptor
	w.mu.Lock()
	w.starts++
	n := w.starts
	w.mu.Unlock()
	fmt.Fprintf(lf, "=== chaos: worker start %d at %s\n", n, time.Now().Format(time.RFC3339Nano))
	p := &workerProc{cmd: exec.Command(w.bin), exited: make(chan struct{})}
	p.cmd.Env = w.env
	p.cmd.Stdout, p.cmd.Stderr = lf, lf
	setPdeathsig(p.cmd)
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.exited) }()
	w.mu.Lock()
	w.cur = p
	w.mu.Unlock()
	return p, nil
}

func (w *workers) awaitHealthy(ctx context.Context, p *workerProc, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := hc.Get("http://" + w.webhookAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("the worker exited at start: %v", p.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the worker was not healthy within %s", limit)
		}
	}
}

func (w *workers) killProc(p *workerProc) {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Kill() // SIGKILL
		<-p.exited
	}
}

// kill SIGKILLs the running worker and waits until it has exited.
func (w *workers) kill() error {
	w.mu.Lock()
	p := w.cur
	w.mu.Unlock()
	if p == nil {
		return errors.New("no worker running")
	}
	w.killProc(p)
	return nil
}

// stop ends the worker: SIGTERM, then SIGKILL after 15 s.
func (w *workers) stop() {
	w.mu.Lock()
	p := w.cur
	w.mu.Unlock()
	if p == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		w.killProc(p)
	}
}

func tail(path string, n int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return strings.TrimSpace(string(b))
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = crand.Read(b) // never fails (Go 1.24+)
	return hex.EncodeToString(b)
}
