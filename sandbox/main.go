// Command sandbox serves the two API simulators (internal/sandbox/hpsim and
// internal/sandbox/snsim, the same handlers the worker serves in SANDBOX
// mode) in a process of their own, so that a worker pointed at them can be
// killed and restarted without losing their state: crash tests, and
// measuring the worker's own memory without the simulators in it.
//
//	go run ./sandbox [-hyperproof-addr 127.0.0.1:8091] [-servicenow-addr 127.0.0.1:8092]
//	    [-webhook-url http://127.0.0.1:8088/webhooks/servicenow] [-webhook-secret-file path]
//	    [-data-dir dir] [-v]
//
// It prints one line per simulator (its URL and its seeded task ids) once
// both listen, and runs until SIGINT or SIGTERM; then it stops both and
// removes the attachment and proof bytes it wrote. Their state (tasks,
// comments, attachments, proof) lives in this process, so it survives any
// number of worker restarts and ends with this command.
//
// The ServiceNow simulator's business rule posts the signed webhook to
// -webhook-url ("" turns webhooks off) with the key read from
// -webhook-secret-file (surrounding white space ignored). Without that flag
// a random key is written to a file in the data directory and the file is
// named on the servicenow line.
//
// A worker uses it with SANDBOX=false (the worker then serves no simulators
// of its own) and, for the default addresses:
//
//	SANDBOX=false
//	HYPERPROOF_API_URL=http://127.0.0.1:8091
//	HYPERPROOF_TOKEN_URL=http://127.0.0.1:8091/oauth/token
//	HYPERPROOF_CLIENT_ID=sandbox-integration            # seed.IntegrationClientID
//	HYPERPROOF_CLIENT_SECRET=sandbox-integration-secret # seed.IntegrationClientSecret
//	SERVICENOW_INSTANCE_URL=http://127.0.0.1:8092
//	SERVICENOW_USERNAME=hyperproof.integration          # seed.SNIntegrationUser
//	SERVICENOW_PASSWORD=sandbox-integration-password    # seed.SNIntegrationPassword
//	WEBHOOK_ADDR=127.0.0.1:8088                         # host:port of -webhook-url
//	WEBHOOK_SECRET=$(cat <the webhook secret file>)     # same key as the simulator
//	TEMPORAL_ADDRESS=...  TEMPORAL_TASK_QUEUE=...       # as usual
//
// (or WEBHOOK_ADDR= with -webhook-url "" to run without webhooks; the
// worker's ServiceNow poller then finds changes every
// SERVICENOW_POLL_INTERVAL). The starter takes the same variables. Users
// act through the APIs with the seeded personal credentials: the creator
// with seed.CreatorClientID/CreatorClientSecret on the Hyperproof
// simulator, the assignee with seed.SNAssigneeUser/SNAssigneePassword on
// the ServiceNow simulator.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"hpsync/internal/sandbox/hpsim"
	"hpsync/internal/sandbox/seed"
	"hpsync/internal/sandbox/snsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(1)
	}
}

// Serving is what run reports once both simulators listen.
type Serving struct {
	HyperproofURL, ServiceNowURL string
	SeededTasks                  []string
	WebhookSecretFile            string
	DataDir                      string
}

// run serves until ctx is done. ready, when not nil, is called once both
// listeners are bound.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(Serving)) (err error) {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	hpAddr := fs.String("hyperproof-addr", "127.0.0.1:8091", "where the Hyperproof simulator listens")
	snAddr := fs.String("servicenow-addr", "127.0.0.1:8092", "where the ServiceNow simulator listens")
	webhookURL := fs.String("webhook-url", "http://127.0.0.1:8088/webhooks/servicenow", `where the ServiceNow business rule posts ("" = no webhooks)`)
	secretFile := fs.String("webhook-secret-file", "", "file holding the webhook HMAC key (default: a random key written to the data directory)")
	dataParent := fs.String("data-dir", "", "directory under which attachment and proof bytes are kept (default: the system temp directory)")
	verbose := fs.Bool("v", false, "log every request (method, path, status) to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *webhookURL != "" {
		if u, perr := url.Parse(*webhookURL); perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("-webhook-url %q is not an absolute http(s) URL", *webhookURL)
		}
	}

	// A fresh directory of our own, removed at the end whatever -data-dir is.
	if *dataParent != "" {
		if err := os.MkdirAll(*dataParent, 0o755); err != nil {
			return fmt.Errorf("-data-dir: %w", err)
		}
	}
	dir, err := os.MkdirTemp(*dataParent, "hpsync-sandbox-")
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = fmt.Errorf("removing %s: %w", dir, rerr)
		}
	}()

	secret := ""
	generated := ""
	if *webhookURL != "" {
		if *secretFile != "" {
			b, rerr := os.ReadFile(*secretFile)
			if rerr != nil {
				return fmt.Errorf("-webhook-secret-file: %w", rerr)
			}
			secret = strings.TrimSpace(string(b))
			if secret == "" {
				return fmt.Errorf("-webhook-secret-file %s is empty", *secretFile)
			}
		} else {
			secret = randomHex(32)
			generated = filepath.Join(dir, "webhook-secret")
			if err := os.WriteFile(generated, []byte(secret+"\n"), 0o600); err != nil {
				return fmt.Errorf("webhook secret file: %w", err)
			}
		}
	}

	var logf func(string, ...any)
	if *verbose {
		l := log.New(stderr, "", log.LstdFlags|log.Lmicroseconds)
		logf = l.Printf
	}
	hp, err := hpsim.New(hpsim.Options{DataDir: filepath.Join(dir, "hyperproof"), Logf: logf})
	if err != nil {
		return err
	}
	defer hp.Close()
	sn, err := snsim.New(snsim.Options{
		WebhookURL: *webhookURL, WebhookSecret: secret,
		DataDir: filepath.Join(dir, "servicenow"), Logf: logf,
	})
	if err != nil {
		return err
	}
	defer sn.Close()

	hpLn, err := net.Listen("tcp", *hpAddr)
	if err != nil {
		return fmt.Errorf("-hyperproof-addr: %w", err)
	}
	snLn, err := net.Listen("tcp", *snAddr)
	if err != nil {
		hpLn.Close()
		return fmt.Errorf("-servicenow-addr: %w", err)
	}
	servers := []*http.Server{
		{Handler: hp, ReadHeaderTimeout: 10 * time.Second},
		{Handler: sn, ReadHeaderTimeout: 10 * time.Second},
	}
	errc := make(chan error, 2)
	for i, ln := range []net.Listener{hpLn, snLn} {
		go func() {
			if serr := servers[i].Serve(ln); serr != nil && !errors.Is(serr, http.ErrServerClosed) {
				errc <- serr
			}
		}()
	}
	// Stop the listeners before the simulators (deferred above) close.
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, s := range servers {
			if s.Shutdown(sctx) != nil {
				s.Close() // long transfers still running: cut them
			}
		}
	}()

	sv := Serving{
		HyperproofURL: "http://" + hpLn.Addr().String(),
		ServiceNowURL: "http://" + snLn.Addr().String(),
		SeededTasks:   hp.SeededTaskIDs(),
		DataDir:       dir,
	}
	hooks := "webhooks off"
	if *webhookURL != "" {
		hooks = "webhooks to " + *webhookURL
		if generated != "" {
			sv.WebhookSecretFile = generated
			hooks += " (secret in " + generated + ")"
		} else {
			sv.WebhookSecretFile = *secretFile
		}
	}
	fmt.Fprintf(stdout, "hyperproof simulator %s (token %s/oauth/token, client %s), seeded tasks: %s\n",
		sv.HyperproofURL, sv.HyperproofURL, seed.IntegrationClientID, strings.Join(sv.SeededTasks, " "))
	fmt.Fprintf(stdout, "servicenow simulator %s (user %s), seeded tasks: none (users %s, %s, %s), %s\n",
		sv.ServiceNowURL, seed.SNIntegrationUser, seed.SNIntegrationUser, seed.SNAssigneeUser, snsim.CreatorUserName, hooks)
	if ready != nil {
		ready(sv)
	}

	select {
	case <-ctx.Done():
		return nil
	case serr := <-errc:
		return fmt.Errorf("listener stopped: %w", serr)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand never fails (Go 1.24+)
	return hex.EncodeToString(b)
}
