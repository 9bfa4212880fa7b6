// Command demo is the product's main job on the embedded defaults: it starts
// a Temporal dev server (database file in ./data), the worker in SANDBOX
// mode, links a task and walks it through its whole life as its users would,
// printing each step when it is observed on the other side. It exits
// non-zero when a step is not observed in time.
//
//	go run ./demo
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"hpsync/internal/codec"
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

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

// setDefault sets an environment variable unless the user already has.
func setDefault(key, value string) {
	if _, ok := os.LookupEnv(key); !ok {
		os.Setenv(key, value)
	}
}

func run() error {
	stepTimeout := flag.Duration("step-timeout", 2*time.Minute, "how long each step may take to be observed")
	flag.Parse()

	root, err := devserver.RepoRoot()
	if err != nil {
		return err
	}
	dataDir := filepath.Join(root, "data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	// The demo always runs on the sandbox. Hyperproof has no task webhooks,
	// so its poll interval bounds how fast Hyperproof-side steps are seen;
	// the demo polls every 2 s unless told otherwise.
	os.Setenv("SANDBOX", "true")
	setDefault("HYPERPROOF_POLL_INTERVAL", "2s")
	setDefault("SERVICENOW_POLL_INTERVAL", "10s")
	// The simulated users share the simulators (and so the request pacing)
	// with the worker; the sandbox allows more than the production defaults.
	setDefault("HYPERPROOF_REQUESTS_PER_SECOND", "50")
	setDefault("SERVICENOW_REQUESTS_PER_SECOND", "50")
	// Payloads are encrypted with a key kept in data/payload-keys (made on
	// the first run), so the histories in data/temporal.db stay readable on
	// the next run. PAYLOAD_KEYS set (to keys, or to nothing for no
	// encryption) wins over the file.
	keyFile := filepath.Join(dataDir, "payload-keys")
	if _, ok := os.LookupEnv("PAYLOAD_KEYS"); !ok {
		spec, created, err := codec.LoadOrCreateKeyFile(keyFile, "demo1")
		if err != nil {
			return err
		}
		if created {
			fmt.Printf("made a payload encryption key in %s (keep it with data/temporal.db: histories written with it need it)\n", keyFile)
			if _, err := os.Stat(filepath.Join(dataDir, "temporal.db")); err == nil {
				fmt.Println("note: data/temporal.db is older than this key; if its histories were encrypted with a key that is gone, delete it")
			}
		}
		os.Setenv("PAYLOAD_KEYS", spec)
	}
	if strings.TrimSpace(os.Getenv("PAYLOAD_KEYS")) != "" {
		// The codec server for the dev server's UI (and the CLI).
		setDefault("CODEC_ADDR", "127.0.0.1:8081")
		setDefault("CODEC_CORS_ORIGIN", "http://127.0.0.1:8233,http://localhost:8233")
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}

	logPath := filepath.Join(dataDir, "worker.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := slog.New(workerapp.NewLogHandler(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo}), cfg))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	uiURL := "http://127.0.0.1:8233"
	if devserver.Listening(cfg.TemporalAddress) {
		fmt.Printf("using the Temporal server already listening at %s (TEMPORAL_ADDRESS); its Web UI, if it has one, is its own\n", cfg.TemporalAddress)
	} else {
		_, portStr, err := net.SplitHostPort(cfg.TemporalAddress)
		if err != nil {
			return fmt.Errorf("TEMPORAL_ADDRESS: %w", err)
		}
		port, _ := strconv.Atoi(portStr)
		fmt.Printf("starting the Temporal dev server on %s (database %s)\n", cfg.TemporalAddress, filepath.Join(dataDir, "temporal.db"))
		opts := devserver.Options{Port: port, UIPort: 8233, DBFile: filepath.Join(dataDir, "temporal.db"), Log: logFile}
		if cfg.CodecAddr != "" {
			opts.UICodecEndpoint = "http://" + cfg.CodecAddr
		}
		srv, err := devserver.Start(ctx, opts)
		if err != nil {
			return err
		}
		defer srv.Stop()
		uiURL = srv.UIURL
	}

	w, err := workerapp.Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer w.Stop()
	fmt.Printf("worker running in SANDBOX mode (Hyperproof simulator %s, ServiceNow simulator %s; log %s)\n\n",
		cfg.HyperproofAPIURL, cfg.ServiceNowInstanceURL, logPath)

	creator, err := hyperproof.New(hyperproof.Config{
		APIURL: cfg.HyperproofAPIURL, TokenURL: cfg.HyperproofTokenURL,
		ClientID: seed.CreatorClientID, ClientSecret: seed.CreatorClientSecret,
	})
	if err != nil {
		return err
	}
	assignee, err := servicenow.New(servicenow.Config{
		InstanceURL: cfg.ServiceNowInstanceURL, Username: seed.SNAssigneeUser, Password: seed.SNAssigneePassword,
	})
	if err != nil {
		return err
	}

	var workflowID string
	out, storyErr := story.Run(ctx, story.Env{
		Creator:     creator,
		Assignee:    assignee,
		StepTimeout: *stepTimeout,
		Link: func(ctx context.Context, taskID string) (string, string, error) {
			res, err := link.Link(ctx, w.Client, w.HP, cfg.StatusMap, link.Request{
				HyperproofTaskID: taskID, Table: cfg.ServiceNowTable, TaskQueue: cfg.TemporalTaskQueue,
			})
			if err == nil {
				workflowID = res.WorkflowID
				fmt.Println(res)
			}
			return res.Table, res.Number, err
		},
		Report: func(s story.Step) {
			fmt.Printf("[%7.1fs] step %d: %s\n           observed after %.1fs: %s\n", s.At.Seconds(), s.N, s.Action, s.Took.Seconds(), s.Observed)
		},
	})

	fmt.Println()
	fmt.Println("Hyperproof task", out.HyperproofTaskID)
	fmt.Printf("  status type %s, %d comments in the Activity Feed, proof: %q\n", out.HyperproofStatus, out.TaskComments, out.TaskProof)
	fmt.Printf("  on the control's Proof tab: %q\n", out.ControlProof)
	fmt.Printf("ServiceNow %s %s (sys_id %s)\n", out.Table, out.Number, out.SysID)
	fmt.Printf("  state %s, %d additional comments\n", out.ServiceNowState, out.JournalEntries)
	if workflowID != "" {
		if st, err := queryStatus(ctx, w, workflowID); err == nil {
			fmt.Println("workflow status query:")
			fmt.Println(st)
		}
		fmt.Printf("\nTemporal UI: %s/namespaces/%s/workflows/%s\n", uiURL, cfg.TemporalNamespace, workflowID)
		if ids := cfg.Keyring().IDs(); len(ids) > 0 {
			fmt.Printf("payloads are encrypted (key %s)", ids[0])
			if cfg.CodecAddr != "" {
				fmt.Printf("; the UI (pointed at the codec server http://%s) and the CLI\n"+
					"  (bin/temporal workflow show -w %s --codec-endpoint http://%s) show them decrypted while a worker serves it",
					cfg.CodecAddr, workflowID, cfg.CodecAddr)
			}
			fmt.Println()
		}
	}
	if storyErr != nil {
		return storyErr
	}
	fmt.Printf("\nthe whole story was observed on both sides in %.1fs\n", out.Steps[len(out.Steps)-1].At.Seconds())
	return nil
}

func queryStatus(ctx context.Context, w *workerapp.Running, id string) (string, error) {
	v, err := w.Client.QueryWorkflow(ctx, id, "", workflows.QueryStatus)
	if err != nil {
		return "", err
	}
	var st workflows.Status
	if err := v.Get(&st); err != nil {
		return "", err
	}
	st.Proof = nil // listed above; keep the summary short
	b, err := json.MarshalIndent(st, "  ", "  ")
	return "  " + string(b), err
}
