package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hpsync/internal/hyperproof"
	"hpsync/internal/sandbox/seed"
	"hpsync/internal/servicenow"
)

// TestServeAndStop starts the command on free ports with a webhook receiver,
// acts through both APIs with the seeded credentials (the assignee attaches
// a file to a linked task, which must post a signed webhook), then stops it
// and checks that the data directory is gone.
func TestServeAndStop(t *testing.T) {
	const secret = "test-webhook-secret"
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hooks := make(chan bool, 10)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(body)
		hooks <- r.Header.Get("X-Signature-256") == "sha256="+hex.EncodeToString(m.Sum(nil))
		w.WriteHeader(http.StatusAccepted)
	}))
	defer recv.Close()

	parent := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	readyc := make(chan Serving, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{
			"-hyperproof-addr", "127.0.0.1:0", "-servicenow-addr", "127.0.0.1:0",
			"-webhook-url", recv.URL + "/webhooks/servicenow", "-webhook-secret-file", secretFile,
			"-data-dir", parent,
		}, &out, io.Discard, func(s Serving) { readyc <- s })
	}()
	var sv Serving
	select {
	case sv = <-readyc:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	if len(sv.SeededTasks) != 3 || !strings.Contains(out.String(), sv.SeededTasks[0]) || strings.Count(out.String(), "\n") != 2 {
		t.Fatalf("output %q, seeded %v", out.String(), sv.SeededTasks)
	}

	hp, err := hyperproof.New(hyperproof.Config{APIURL: sv.HyperproofURL, TokenURL: sv.HyperproofURL + "/oauth/token",
		ClientID: seed.IntegrationClientID, ClientSecret: seed.IntegrationClientSecret})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hp.GetTask(ctx, sv.SeededTasks[0]); err != nil {
		t.Fatalf("hyperproof: %v", err)
	}
	sn, err := servicenow.New(servicenow.Config{InstanceURL: sv.ServiceNowURL, Username: seed.SNIntegrationUser, Password: seed.SNIntegrationPassword})
	if err != nil {
		t.Fatal(err)
	}
	task, err := sn.CreateTask(ctx, "sc_task", servicenow.NewTask{ShortDescription: "sandbox test", CorrelationID: "hyperproof:" + sv.SeededTasks[0]})
	if err != nil {
		t.Fatalf("servicenow: %v", err)
	}
	drain := func() {
		for len(hooks) > 0 {
			<-hooks
		}
	}
	time.Sleep(100 * time.Millisecond)
	drain() // the insert's own webhook
	assignee, err := servicenow.New(servicenow.Config{InstanceURL: sv.ServiceNowURL, Username: seed.SNAssigneeUser, Password: seed.SNAssigneePassword})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := assignee.UploadAttachment(ctx, "sc_task", task.SysID, "a.txt", "text/plain", strings.NewReader("hello")); err != nil {
		t.Fatalf("attach: %v", err)
	}
	select {
	case ok := <-hooks:
		if !ok {
			t.Fatal("webhook signature does not verify with the secret file's key")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no webhook after an attachment on a linked task")
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 1 {
		t.Fatalf("data dir holds %d entries while serving, want 1", len(entries))
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not stop")
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Fatalf("data left behind: %v", entries)
	}
}
