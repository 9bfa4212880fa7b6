// Command proof benchmarks the worker's proof path: one ServiceNow
// attachment streamed into Hyperproof as task proof, against the same bytes
// copied directly, and the worker's memory while it does it.
//
//	go run ./bench/proof [-size 1GiB] [-keep] [-seed 1] [-timeout 0] [-max-proof-bytes 2GiB]
//
// In one run it starts a Temporal dev server (in memory, headless, free
// port), the two API simulators in this process with their data on disk,
// and the worker built from ./worker as a separate process (SANDBOX=false,
// pointed at the simulators, its webhook listener on a free port that the
// ServiceNow simulator posts to with the same secret, a task queue of its
// own and HYPERPROOF_MAX_PROOF_BYTES=2 GiB). Then, acting as the users
// through the APIs, the creator creates a Hyperproof task and links it, and
// the assignee attaches -size pseudo-random bytes (a seeded ChaCha8 stream,
// never held in memory) to the ServiceNow task.
//
// The worker's throughput is -size divided by the time from the upload's
// answer (the attachment exists; the simulator's business rule posts the
// webhook) to the proof's completion on the Hyperproof task (the
// simulator's uploadedOn, same clock). The proof is then downloaded and
// must have the same size and SHA-256. That time is also split at the
// worker's first request for the bytes (reaction, then copy), and the
// task workflow's activities of that round are listed from its history.
// The direct copy downloads the attachment from the ServiceNow simulator
// and uploads it to the Hyperproof simulator (to a seeded, unlinked task)
// with the same clients and the integration's credentials, streamed, in
// this process; it is done a second time hashing SHA-256 on the way, as the
// worker does, for reference. Each timed phase starts after sync(2), so
// that none pays for another's page-cache writeback.
//
// The worker's idle RSS is read (VmRSS, /proc/<pid>/status) after the link,
// just before the upload; VmHWM is then reset (clear_refs) and VmHWM/VmRSS
// are sampled every 100 ms until the proof has been verified. It prints
// both throughputs, their ratio, idle and peak RSS and whether the targets
// hold (ratio >= 0.5, peak - idle < 64 MiB). Missed targets are reported,
// not an error; the exit status is 1 when the proof is missing, skipped,
// late (-timeout) or not identical, or the run fails (the worker log's tail
// is printed then). Every process it started and its temporary directory
// are removed at the end (-keep keeps the directory: worker binary, logs
// and simulator data). Linux only (/proc).
package main

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"hpsync/internal/devserver"
	"hpsync/internal/hyperproof"
	"hpsync/internal/link"
	"hpsync/internal/sandbox/hpsim"
	"hpsync/internal/sandbox/seed"
	"hpsync/internal/sandbox/snsim"
	"hpsync/internal/servicenow"
	"hpsync/internal/statusmap"
	"hpsync/workflows"
)

const (
	mib = 1 << 20
	// Targets.
	minRatio     = 0.5
	maxGrowthMiB = 64
	table        = "sc_task"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "bench/proof:", err)
		}
		os.Exit(1)
	}
}

type options struct {
	size     int64
	keep     bool
	seed     uint64
	timeout  time.Duration
	maxProof int64
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("bench/proof", flag.ContinueOnError)
	fs.SetOutput(stderr)
	size := fs.String("size", "1GiB", "attachment size: bytes, or with a unit B, KiB, MiB, GiB (or KB, MB, GB)")
	keep := fs.Bool("keep", false, "keep the temporary directory (worker binary, logs, simulator data)")
	seedv := fs.Uint64("seed", 1, "seed of the attachment's pseudo-random bytes")
	timeout := fs.Duration("timeout", 0, "how long the proof may take to arrive (0 = 5m + 1s per 2 MiB)")
	maxProof := fs.String("max-proof-bytes", "2GiB", "HYPERPROOF_MAX_PROOF_BYTES given to the worker")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	n, err := parseSize(*size)
	if err != nil {
		return options{}, fmt.Errorf("-size: %w", err)
	}
	limit, err := parseSize(*maxProof)
	if err != nil {
		return options{}, fmt.Errorf("-max-proof-bytes: %w", err)
	}
	o := options{size: n, keep: *keep, seed: *seedv, timeout: *timeout, maxProof: limit}
	if o.timeout <= 0 {
		o.timeout = 5*time.Minute + time.Duration(n/(2*mib))*time.Second
	}
	return o, nil
}

// parseSize reads "1GiB", "64MiB", "512KiB", "10MB", "4096" or "4096B".
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := len(s)
	for i > 0 && (s[i-1] < '0' || s[i-1] > '9') {
		i--
	}
	num, unit := strings.TrimSpace(s[:i]), strings.TrimSpace(s[i:])
	mult := map[string]int64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	}[strings.ToLower(unit)]
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || mult == 0 || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a positive size like 64MiB or 1GiB", s)
	}
	return n * mult, nil
}

// payload is the attachment: size bytes from a seeded ChaCha8 generator,
// produced as they are read (never held whole).
func payload(seedv uint64, size int64) io.Reader {
	var key [32]byte
	copy(key[:], "hpsync bench/proof payload......")
	for i := range 8 {
		key[i] ^= byte(seedv >> (8 * i))
	}
	return io.LimitReader(rand.NewChaCha8(key), size)
}

// progress prints to stderr, stamped with the time since the start.
type progress struct {
	w     io.Writer
	start time.Time
}

func (p progress) printf(format string, args ...any) {
	fmt.Fprintf(p.w, "[%6.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	p := progress{w: stderr, start: time.Now()}

	root, err := devserver.RepoRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "hpsync-bench-proof-")
	if err != nil {
		return err
	}
	defer func() {
		if o.keep {
			p.printf("kept %s", dir)
			return
		}
		if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = rerr
		}
	}()

	// (a) Temporal dev server.
	devLog, err := os.Create(filepath.Join(dir, "temporal.log"))
	if err != nil {
		return err
	}
	defer devLog.Close()
	p.printf("starting the Temporal dev server (in memory)")
	dev, err := devserver.Start(ctx, devserver.Options{UIPort: -1, Log: devLog})
	if err != nil {
		return err
	}
	defer dev.Stop()

	// (b) The simulators, in this process, data on disk.
	webhookAddr, err := freeAddr()
	if err != nil {
		return err
	}
	webhookSecret := randomHex(32)
	sims, err := startSims(filepath.Join(dir, "data"), "http://"+webhookAddr+"/webhooks/servicenow", webhookSecret)
	if err != nil {
		return err
	}
	defer sims.stop(o.keep)
	p.printf("simulators: hyperproof %s, servicenow %s", sims.hpURL, sims.snURL)

	// (c) The worker, built and started as its own process.
	p.printf("building ./worker")
	bin := filepath.Join(dir, "worker")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./worker")
	build.Dir = root
	if out, berr := build.CombinedOutput(); berr != nil {
		return fmt.Errorf("go build ./worker: %v\n%s", berr, out)
	}
	queue := "bench-proof-" + randomHex(6)
	env := workerEnv(os.Environ(), map[string]string{
		"SANDBOX":                    "false",
		"TEMPORAL_ADDRESS":           dev.Address,
		"TEMPORAL_NAMESPACE":         "default",
		"TEMPORAL_TASK_QUEUE":        queue,
		"HYPERPROOF_API_URL":         sims.hpURL,
		"HYPERPROOF_TOKEN_URL":       sims.hpURL + "/oauth/token",
		"HYPERPROOF_CLIENT_ID":       seed.IntegrationClientID,
		"HYPERPROOF_CLIENT_SECRET":   seed.IntegrationClientSecret,
		"SERVICENOW_INSTANCE_URL":    sims.snURL,
		"SERVICENOW_USERNAME":        seed.SNIntegrationUser,
		"SERVICENOW_PASSWORD":        seed.SNIntegrationPassword,
		"SERVICENOW_TABLE":           table,
		"WEBHOOK_ADDR":               webhookAddr,
		"WEBHOOK_SECRET":             webhookSecret,
		"HYPERPROOF_MAX_PROOF_BYTES": strconv.FormatInt(o.maxProof, 10),
	})
	wk, err := startWorker(ctx, bin, env, filepath.Join(dir, "worker.log"), webhookAddr)
	if err != nil {
		return err
	}
	defer wk.stop()
	defer func() {
		if err != nil {
			fmt.Fprintf(stderr, "worker log (%s), last lines:\n%s\n", wk.logPath, tail(wk.logPath, 3000))
		}
	}()
	p.printf("worker pid %d on task queue %s, webhook listener %s (log %s)", wk.pid(), queue, webhookAddr, wk.logPath)

	// The users and the integration's own clients.
	creator, err := hyperproof.New(hyperproof.Config{APIURL: sims.hpURL, TokenURL: sims.hpURL + "/oauth/token",
		ClientID: seed.CreatorClientID, ClientSecret: seed.CreatorClientSecret})
	if err != nil {
		return err
	}
	hpInt, err := hyperproof.New(hyperproof.Config{APIURL: sims.hpURL, TokenURL: sims.hpURL + "/oauth/token",
		ClientID: seed.IntegrationClientID, ClientSecret: seed.IntegrationClientSecret})
	if err != nil {
		return err
	}
	assignee, err := servicenow.New(servicenow.Config{InstanceURL: sims.snURL, Username: seed.SNAssigneeUser, Password: seed.SNAssigneePassword})
	if err != nil {
		return err
	}
	snInt, err := servicenow.New(servicenow.Config{InstanceURL: sims.snURL, Username: seed.SNIntegrationUser, Password: seed.SNIntegrationPassword})
	if err != nil {
		return err
	}
	tc, err := client.DialContext(ctx, client.Options{HostPort: dev.Address,
		Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	if err != nil {
		return fmt.Errorf("temporal: %w", err)
	}
	defer tc.Close()

	// (e) The creator creates a task and links it.
	due := time.Now().Add(14 * 24 * time.Hour).UTC().Truncate(time.Hour)
	task, err := creator.CreateTask(ctx, hyperproof.NewTask{
		Title: "Attach the full firewall configuration backup", Description: "bench/proof: one large attachment",
		TargetType: "control", TargetID: seed.ControlID, AssigneeID: seed.AssigneeUserID, Priority: "high", DueDate: &due,
	})
	if err != nil {
		return fmt.Errorf("creator creates a task: %w", err)
	}
	res, err := link.Link(ctx, tc, hpInt, statusmap.Default(), link.Request{HyperproofTaskID: task.ID, Table: table, TaskQueue: queue})
	if err != nil {
		return fmt.Errorf("link: %w", err)
	}
	sn, err := assignee.FindTaskByCorrelation(ctx, table, snsim.CorrelationPrefix+task.ID)
	if err != nil || sn == nil {
		return fmt.Errorf("the assignee cannot see ServiceNow %s: %v", res.Number, err)
	}
	p.printf("%s", res)

	// (d) Idle RSS, then the peak from here on.
	if err := sleepCtx(ctx, 2*time.Second); err != nil {
		return err
	}
	idle, startHWM, err := readMem(wk.pid())
	if err != nil {
		return fmt.Errorf("worker memory: %w", err)
	}
	hwmReset := resetHWM(wk.pid()) == nil
	_, hwmNow, _ := readMem(wk.pid())
	p.printf("worker idle: VmRSS %.1f MiB (VmHWM since start %.1f MiB, after reset %.1f MiB)",
		float64(idle)/mib, float64(startHWM)/mib, float64(hwmNow)/mib)
	// Each timed phase starts with the page cache flushed, so that neither
	// pays for the other's writeback.
	syncDisks()
	cpu0, _ := cpuTime(wk.pid())
	sampler := startSampler(wk.pid(), 100*time.Millisecond)
	defer sampler.finish()

	// The assignee attaches the file.
	name := fmt.Sprintf("firewall-config-backup-%s.bin", formatSize(o.size))
	p.printf("the assignee uploads %s (%s) to ServiceNow %s", name, formatSize(o.size), res.Number)
	upHash := sha256.New()
	upStart := time.Now()
	att, err := assignee.UploadAttachment(ctx, table, sn.SysID, name, "application/octet-stream", io.TeeReader(payload(o.seed, o.size), upHash))
	if err != nil {
		return fmt.Errorf("the assignee attaches the file: %w", err)
	}
	t0 := time.Now()
	want := hex.EncodeToString(upHash.Sum(nil))
	p.printf("attachment %s stored in %.2fs (sha256 %s)", att.SysID, t0.Sub(upStart).Seconds(), want)
	if att.SizeBytes != o.size || (att.Hash != "" && att.Hash != want) {
		return fmt.Errorf("the ServiceNow simulator stored %d bytes (hash %s), sent %d (%s)", att.SizeBytes, att.Hash, o.size, want)
	}

	// Wait for the proof.
	proof, seenAt, err := awaitProof(ctx, creator, tc, wk, task.ID, att.SysID, o.timeout)
	if err != nil {
		return err
	}
	t1 := seenAt
	if u := proof.UploadedOn; !u.IsZero() && u.After(t0.Add(-time.Second)) && !u.After(seenAt) {
		t1 = u // the simulator's own completion time (same clock, microseconds)
	}
	if t1.Before(t0) {
		t1 = t0.Add(time.Microsecond)
	}
	workerDur := t1.Sub(t0)
	cpu1, _ := cpuTime(wk.pid())
	p.printf("proof %s complete %.3fs after the upload (seen %.0f ms later); verifying", proof.ID, workerDur.Seconds(),
		float64(seenAt.Sub(t1).Microseconds())/1000)
	got, n, err := hashStream(func() (io.ReadCloser, error) { return creator.DownloadProof(ctx, proof.ID) })
	if err != nil {
		return fmt.Errorf("download the proof: %w", err)
	}
	if n != o.size || got != want || proof.Size != o.size {
		return fmt.Errorf("the proof is not identical: %d bytes (listed %d), sha256 %s; the attachment has %d bytes, sha256 %s",
			n, proof.Size, got, o.size, want)
	}
	peak := sampler.finish()
	if lines, herr := reactionTimeline(ctx, tc, task.ID, t0); herr == nil {
		p.printf("the worker's round, from the upload's answer (Temporal history):\n%s", strings.Join(lines, "\n"))
	}
	if hwmReset && peak.hwm > peak.rss {
		peak.rss = peak.hwm
	}

	// (f) The same bytes, directly.
	seeded := sims.hp.SeededTaskIDs()[0]
	p.printf("direct copy: ServiceNow attachment -> Hyperproof task %s (not linked), same clients", seeded)
	directCopy := func(hashing bool) (time.Duration, error) {
		// The API clients pace their requests (a token bucket per API in
		// the process): let it refill after the polling, so that the timed
		// copy never waits for a token.
		if err := sleepCtx(ctx, 1500*time.Millisecond); err != nil {
			return 0, err
		}
		syncDisks()
		key := "bench-direct-" + att.SysID
		if hashing {
			key = "bench-direct-sha256-" + att.SysID
		}
		start := time.Now()
		body, err := snInt.DownloadAttachment(ctx, att.SysID)
		if err != nil {
			return 0, fmt.Errorf("direct download: %w", err)
		}
		cr := &countingReader{r: body}
		if hashing {
			cr.h = sha256.New()
		}
		up, err := hpInt.UploadTaskProof(ctx, seeded, hyperproof.ProofUpload{
			Filename: name, ContentType: att.ContentType, Body: cr, SourceID: "bench-direct", SourceFileID: key,
		})
		body.Close()
		d := time.Since(start)
		if err != nil {
			return 0, fmt.Errorf("direct upload: %w", err)
		}
		if cr.n != o.size || up.Size != o.size {
			return 0, fmt.Errorf("direct copy: read %d bytes, stored %d, want %d", cr.n, up.Size, o.size)
		}
		if hashing && hex.EncodeToString(cr.h.Sum(nil)) != want {
			return 0, errors.New("direct copy: the bytes read differ from the attachment")
		}
		if sum, _, err := hashStream(func() (io.ReadCloser, error) { return creator.DownloadProof(ctx, up.ID) }); err != nil || sum != want {
			return 0, fmt.Errorf("direct copy differs (sha256 %s, want %s): %v", sum, want, err)
		}
		return d, nil
	}
	directDur, err := directCopy(false)
	if err != nil {
		return err
	}
	p.printf("direct copy again, hashing the bytes on the way as the worker does")
	hashedDur, err := directCopy(true)
	if err != nil {
		return err
	}

	// (g) The figures.
	workerRate := rate(o.size, workerDur)
	directRate := rate(o.size, directDur)
	ratio := workerRate / directRate
	growth := float64(peak.rss-idle) / mib
	fmt.Fprintf(stdout, "proof benchmark: %s attachment (%d bytes, seed %d), sha256 %s\n", formatSize(o.size), o.size, o.seed, want)
	fmt.Fprintf(stdout, "  proof identical on the Hyperproof task: yes (same size and SHA-256)\n")
	fmt.Fprintf(stdout, "  worker: %8.1f MiB/s  (%.3fs from upload finished to proof complete; worker CPU %.2fs)\n",
		workerRate, workerDur.Seconds(), (cpu1 - cpu0).Seconds())
	if d0, ok := sims.firstDownload(att.SysID); ok && d0.After(t0) && d0.Before(t1) {
		fmt.Fprintf(stdout, "          = %.3fs reaction (webhook, Temporal, activities up to the download request) + %.3fs copy at %.1f MiB/s\n",
			d0.Sub(t0).Seconds(), t1.Sub(d0).Seconds(), rate(o.size, t1.Sub(d0)))
	}
	fmt.Fprintf(stdout, "  direct: %8.1f MiB/s  (%.3fs ServiceNow download -> Hyperproof upload, same clients, no worker)\n",
		directRate, directDur.Seconds())
	fmt.Fprintf(stdout, "  ratio worker/direct: %.2f   target >= %.1f: %s\n", ratio, minRatio, verdict(ratio >= minRatio))
	how := "VmHWM after clear_refs, and VmRSS every 100 ms"
	if !hwmReset {
		how = "VmRSS every 100 ms; VmHWM could not be reset"
	}
	fmt.Fprintf(stdout, "  worker RSS: idle %.1f MiB, peak %.1f MiB, peak - idle %.1f MiB   target < %d MiB: %s  (%s, %d samples)\n",
		float64(idle)/mib, float64(peak.rss)/mib, growth, maxGrowthMiB, verdict(growth < maxGrowthMiB), how, peak.samples)
	fmt.Fprintf(stdout, "  (for reference: direct copy hashing SHA-256 on the way, as the worker does: %.1f MiB/s, %.3fs)\n",
		rate(o.size, hashedDur), hashedDur.Seconds())
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT MET"
}

func rate(n int64, d time.Duration) float64 {
	return float64(n) / mib / max(d.Seconds(), 1e-9)
}

func formatSize(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// awaitProof polls the task's proof every 100 ms (the measured time ends at
// the simulator's uploadedOn, not when the poll sees it) until the attachment's proof is there,
// the worker exits, the workflow says it skipped the file, or the timeout
// passes. The workflow's status is queried only after 5 s, then every 5 s.
func awaitProof(ctx context.Context, hp *hyperproof.Client, tc client.Client, wk *workerProc, taskID, attSysID string, timeout time.Duration) (hyperproof.Proof, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	lastErr := ""
	nextQuery := time.Now().Add(5 * time.Second)
	for {
		ps, err := hp.ListTaskProof(ctx, taskID, attSysID)
		now := time.Now()
		if err == nil {
			for _, p := range ps {
				if p.SourceFileID == attSysID {
					return p, now, nil
				}
			}
		} else {
			last = err
		}
		if now.After(nextQuery) {
			nextQuery = now.Add(5 * time.Second)
			if st, qerr := queryStatus(ctx, tc, taskID); qerr == nil {
				lastErr = st.LastError
				for _, r := range st.Proof {
					if r.AttachmentSysID == attSysID && r.Skipped != "" {
						return hyperproof.Proof{}, now, fmt.Errorf("the worker skipped the attachment: %s", r.Skipped)
					}
				}
			}
		}
		select {
		case <-wk.exited:
			return hyperproof.Proof{}, now, fmt.Errorf("the worker exited while copying: %v", wk.waitErr)
		case <-ctx.Done():
			return hyperproof.Proof{}, now, fmt.Errorf("the proof did not arrive on Hyperproof task %s within %s (last error: %v; workflow's last error: %q)",
				taskID, timeout, last, lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// reactionTimeline lists what the task's workflow did from t0 (the upload's
// answer) to the end of the copy, from its history, in ms after t0.
func reactionTimeline(ctx context.Context, tc client.Client, taskID string, t0 time.Time) ([]string, error) {
	ms := func(t time.Time) float64 { return float64(t.Sub(t0).Microseconds()) / 1000 }
	type act struct {
		name                        string
		scheduled, started, stopped time.Time
	}
	acts := map[int64]*act{}
	var order []int64
	var lines []string
	it := tc.GetWorkflowHistory(ctx, workflows.WorkflowID(taskID), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, err
		}
		at := ev.GetEventTime().AsTime()
		if at.Before(t0.Add(-time.Second)) {
			continue
		}
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
			lines = append(lines, fmt.Sprintf("    %+8.1f ms  signal %s", ms(at), ev.GetWorkflowExecutionSignaledEventAttributes().GetSignalName()))
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			acts[ev.GetEventId()] = &act{name: ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName(), scheduled: at}
			order = append(order, ev.GetEventId())
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			if a := acts[ev.GetActivityTaskStartedEventAttributes().GetScheduledEventId()]; a != nil {
				a.started = at
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			if a := acts[ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()]; a != nil {
				a.stopped = at
			}
		}
	}
	for _, id := range order {
		a := acts[id]
		lines = append(lines, fmt.Sprintf("    %+8.1f ms  %s scheduled, started %+.1f, completed %+.1f", ms(a.scheduled), a.name, ms(a.started), ms(a.stopped)))
		if strings.HasPrefix(a.name, "CopyAttachment") {
			break
		}
	}
	return lines, nil
}

// taskStatus is the part of the task workflow's "status" query the
// benchmark reads (decoded by name, so it does not depend on the type).
type taskStatus struct {
	LastError string
	Proof     []struct {
		AttachmentSysID string
		Skipped         string
	}
}

func queryStatus(ctx context.Context, tc client.Client, taskID string) (taskStatus, error) {
	var st taskStatus
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := tc.QueryWorkflow(qctx, workflows.WorkflowID(taskID), "", workflows.QueryStatus)
	if err != nil {
		return st, err
	}
	return st, v.Get(&st)
}

func hashStream(open func() (io.ReadCloser, error)) (string, int64, error) {
	rc, err := open()
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// countingReader counts what passes, and hashes it when h is set.
type countingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.h != nil {
		c.h.Write(p[:n])
	}
	return n, err
}

// ---------------------------------------------------------------------------
// Simulators

type sims struct {
	hp           *hpsim.Server
	sn           *snsim.Server
	hpURL, snURL string
	servers      []*http.Server

	mu        sync.Mutex
	downloads map[string]time.Time // attachment sys_id -> first GET of its bytes
}

// firstDownload is when the bytes of the attachment were first asked for.
func (s *sims) firstDownload(sysID string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.downloads[sysID]
	return t, ok
}

// watch notes the first download of each attachment, to split the worker's
// time into its reaction (webhook, Temporal) and the copy itself.
func (s *sims) watch(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			if rest, ok := strings.CutPrefix(r.URL.Path, "/api/now/attachment/"); ok {
				if id, ok := strings.CutSuffix(rest, "/file"); ok {
					now := time.Now()
					s.mu.Lock()
					if _, seen := s.downloads[id]; !seen {
						s.downloads[id] = now
					}
					s.mu.Unlock()
				}
			}
		}
		h.ServeHTTP(w, r)
	})
}

func startSims(dataDir, webhookURL, secret string) (*sims, error) {
	s := &sims{downloads: map[string]time.Time{}}
	var err error
	if s.hp, err = hpsim.New(hpsim.Options{DataDir: filepath.Join(dataDir, "hyperproof")}); err != nil {
		return nil, err
	}
	if s.sn, err = snsim.New(snsim.Options{DataDir: filepath.Join(dataDir, "servicenow"), WebhookURL: webhookURL, WebhookSecret: secret}); err != nil {
		s.hp.Close()
		return nil, err
	}
	for _, h := range []http.Handler{s.hp, s.watch(s.sn)} {
		ln, lerr := net.Listen("tcp", "127.0.0.1:0")
		if lerr != nil {
			s.stop(false)
			return nil, lerr
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		s.servers = append(s.servers, srv)
		go srv.Serve(ln)
		if s.hpURL == "" {
			s.hpURL = "http://" + ln.Addr().String()
		} else {
			s.snURL = "http://" + ln.Addr().String()
		}
	}
	return s, nil
}

// stop closes the listeners and, unless keep, the simulators (which removes
// the attachment files).
func (s *sims) stop(keep bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range s.servers {
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
	}
	if !keep {
		s.sn.Close()
		s.hp.Close()
	}
}

// ---------------------------------------------------------------------------
// The worker process

// configVars are the worker's settings; the inherited environment loses
// them so that only the benchmark's apply.
var configVars = []string{
	"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_TASK_QUEUE",
	"HYPERPROOF_API_URL", "HYPERPROOF_TOKEN_URL", "HYPERPROOF_CLIENT_ID", "HYPERPROOF_CLIENT_SECRET",
	"SERVICENOW_INSTANCE_URL", "SERVICENOW_USERNAME", "SERVICENOW_PASSWORD", "SERVICENOW_TABLE",
	"STATUS_MAP_FILE", "WEBHOOK_ADDR", "WEBHOOK_SECRET",
	"HYPERPROOF_POLL_INTERVAL", "SERVICENOW_POLL_INTERVAL", "SERVICENOW_SYNC_WORK_NOTES",
	"SANDBOX", "SANDBOX_HYPERPROOF_ADDR", "SANDBOX_SERVICENOW_ADDR", "HYPERPROOF_MAX_PROOF_BYTES",
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
	return env
}

type workerProc struct {
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	exited  chan struct{}
	waitErr error
	once    sync.Once
}

func (w *workerProc) pid() int { return w.cmd.Process.Pid }

// startWorker starts the worker and waits until its webhook listener's
// /healthz answers 200 (the listener is bound last, once the worker polls).
func startWorker(ctx context.Context, bin string, env []string, logPath, webhookAddr string) (*workerProc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	w := &workerProc{cmd: exec.Command(bin), logPath: logPath, logFile: lf, exited: make(chan struct{})}
	w.cmd.Env = env
	w.cmd.Stdout, w.cmd.Stderr = lf, lf
	setPdeathsig(w.cmd)
	if err := w.cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start worker: %w", err)
	}
	go func() { w.waitErr = w.cmd.Wait(); close(w.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := hc.Get("http://" + webhookAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return w, nil
			}
		}
		select {
		case <-w.exited:
			w.stop()
			return nil, fmt.Errorf("the worker exited at start (%v): %s", w.waitErr, tail(logPath, 2000))
		case <-ctx.Done():
			w.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			w.stop()
			return nil, fmt.Errorf("the worker did not start within a minute: %s", tail(logPath, 2000))
		}
	}
}

// stop sends SIGTERM, waits up to 15 s (the worker gives running activities
// 10 s), then kills.
func (w *workerProc) stop() {
	w.once.Do(func() {
		select {
		case <-w.exited:
		default:
			_ = w.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-w.exited:
			case <-time.After(15 * time.Second):
				_ = w.cmd.Process.Kill()
				<-w.exited
			}
		}
		w.logFile.Close()
	})
}

func tail(path string, n int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return string(bytes.TrimSpace(b))
}

// ---------------------------------------------------------------------------
// Memory and CPU of a process (Linux /proc)

// readMem returns VmRSS and VmHWM in bytes.
func readMem(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	found := 0
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, 0, fmt.Errorf("unexpected %s line %q", k, sc.Text())
		}
		kb, perr := strconv.ParseInt(fields[0], 10, 64)
		if perr != nil {
			return 0, 0, perr
		}
		if k == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
		found++
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("no VmRSS/VmHWM in /proc/%d/status", pid)
	}
	return rss, hwm, nil
}

// resetHWM sets VmHWM back to the current RSS (Linux >= 4.0).
func resetHWM(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// cpuTime is the process's user + system CPU time (clock ticks of 1/100 s,
// the Linux USER_HZ).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which is in parentheses and may hold
	// spaces): state is field 3; utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("malformed stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed stat")
	}
	return time.Duration(u+s) * 10 * time.Millisecond, nil
}

type peakMem struct {
	rss, hwm int64
	samples  int
}

type sampler struct {
	stop chan struct{}
	done chan peakMem
	once sync.Once
	res  peakMem
}

// startSampler reads VmRSS and VmHWM every interval and keeps the highest.
func startSampler(pid int, every time.Duration) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan peakMem, 1)}
	go func() {
		var pk peakMem
		t := time.NewTicker(every)
		defer t.Stop()
		sample := func() {
			if rss, hwm, err := readMem(pid); err == nil {
				pk.rss, pk.hwm = max(pk.rss, rss), max(pk.hwm, hwm)
				pk.samples++
			}
		}
		sample()
		for {
			select {
			case <-s.stop:
				sample()
				s.done <- pk
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return s
}

// finish stops the sampler (once) and returns the peaks.
func (s *sampler) finish() peakMem {
	s.once.Do(func() {
		close(s.stop)
		s.res = <-s.done
	})
	return s.res
}

// ---------------------------------------------------------------------------

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

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
