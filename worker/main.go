// Command worker runs the Hyperproof ⇄ ServiceNow task sync: the task and
// poller workflows, their activities and the ServiceNow webhook listener.
// Configuration comes from the environment (see README).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"hpsync/internal/config"
	"hpsync/internal/workerapp"
)

func main() {
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// Secrets of cfg (and any password, token or Authorization value) are
	// redacted from every line; task lines carry hyperproof_task_id.
	log := slog.New(workerapp.NewLogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}), cfg))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := workerapp.Start(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
	<-ctx.Done()
	log.Info("stopping")
	r.Stop()
}
