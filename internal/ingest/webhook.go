// Package ingest turns outside changes (ServiceNow webhooks, pollers) into
// signals to the workflows of the linked tasks.
package ingest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"hpsync/internal/servicenow"
)

// WebhookPath is where ServiceNow's business rule posts (interfaces.md).
const WebhookPath = "/webhooks/servicenow"

// MaxWebhookBody is the largest webhook body accepted; larger is 413.
const MaxWebhookBody = 65536

// SignatureHeader carries "sha256=<hex of HMAC-SHA256(secret, raw body)>".
const SignatureHeader = "X-Signature-256"

// healthTimeout bounds one /healthz check.
const healthTimeout = 5 * time.Second

// ErrNotLinked is returned (possibly wrapped) by a Resolver or Signaler when
// the record or task has no running sync: the webhook is then accepted and
// nothing happens.
var ErrNotLinked = errors.New("task not linked")

// Resolver re-reads a ServiceNow record through the API and says which
// Hyperproof task it is linked to, if any.
type Resolver func(ctx context.Context, table, sysID string) (hyperproofTaskID string, linked bool, err error)

// Signaler tells the workflow of a Hyperproof task that its ServiceNow record
// changed. It returns an error wrapping ErrNotLinked when the task has no
// workflow.
type Signaler func(ctx context.Context, hyperproofTaskID string) error

// WebhookHandler serves the ServiceNow webhook and the health check. A webhook
// is only a hint: the record is re-read (Resolve) before the task's workflow
// is signalled; the ServiceNow poller is the safety net when this fails.
type WebhookHandler struct {
	Secret  []byte          // HMAC-SHA256 key; when empty every webhook is refused (401)
	Tables  map[string]bool // ServiceNow tables that are synced
	Resolve Resolver
	Signal  Signaler
	Healthy func(ctx context.Context) error // nil error: Temporal is reachable; a nil func counts as healthy
	Logger  *slog.Logger                    // nil: slog.Default()
}

// Routes returns the handler of POST /webhooks/servicenow and GET /healthz.
// It panics when Resolve or Signal is nil, a wiring mistake.
func (h *WebhookHandler) Routes() http.Handler {
	if h.Resolve == nil || h.Signal == nil {
		panic("ingest: WebhookHandler needs Resolve and Signal")
	}
	mux := http.NewServeMux()
	mux.HandleFunc(WebhookPath, h.serveWebhook)
	mux.HandleFunc("/healthz", h.serveHealth)
	return mux
}

func (h *WebhookHandler) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}

func (h *WebhookHandler) serveWebhook(w http.ResponseWriter, r *http.Request) {
	log := h.logger().With("remote", r.RemoteAddr)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, "error", "method not allowed")
		return
	}

	// The header's form is checked before anything is read; the MAC itself
	// needs the body. Neither the secret nor the signature is ever logged.
	mac, ok := parseSignature(r.Header.Get(SignatureHeader))
	if !ok || len(h.Secret) == 0 {
		log.Warn("servicenow webhook refused: signature missing or malformed")
		writeJSON(w, http.StatusUnauthorized, "error", "missing or malformed signature")
		return
	}

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			log.Warn("servicenow webhook refused: body too large", "limit", MaxWebhookBody)
			writeJSON(w, http.StatusRequestEntityTooLarge, "error", "body over 65536 bytes")
			return
		}
		log.Warn("servicenow webhook refused: reading body", "err", err)
		writeJSON(w, http.StatusBadRequest, "error", "cannot read body")
		return
	}

	m := hmac.New(sha256.New, h.Secret)
	m.Write(body)
	if !hmac.Equal(mac, m.Sum(nil)) {
		log.Warn("servicenow webhook refused: wrong signature")
		writeJSON(w, http.StatusUnauthorized, "error", "wrong signature")
		return
	}

	table, sysID, problem := parseHint(body)
	if problem != "" {
		log.Warn("servicenow webhook refused: bad body", "problem", problem)
		writeJSON(w, http.StatusBadRequest, "error", problem)
		return
	}
	log = log.With("table", table, "sys_id", sysID)
	if !h.Tables[table] {
		log.Info("servicenow webhook ignored: table not synced")
		accepted(w)
		return
	}

	ctx := r.Context()
	taskID, linked, err := h.Resolve(ctx, table, sysID)
	if errors.Is(err, ErrNotLinked) {
		err, linked = nil, false
	}
	if err != nil {
		log.Warn("servicenow webhook: cannot re-read the record; the poller will catch up", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, "error", "cannot resolve the record now")
		return
	}
	if !linked {
		log.Info("servicenow webhook ignored: record not linked")
		accepted(w)
		return
	}
	log = log.With("hyperproof_task", taskID)
	if err := h.Signal(ctx, taskID); err != nil {
		if errors.Is(err, ErrNotLinked) {
			log.Info("servicenow webhook ignored: no sync workflow for the task")
			accepted(w)
			return
		}
		log.Warn("servicenow webhook: cannot signal the workflow; the poller will catch up", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, "error", "cannot signal the task now")
		return
	}
	log.Info("servicenow webhook: workflow signalled")
	accepted(w)
}

func (h *WebhookHandler) serveHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, "error", "method not allowed")
		return
	}
	if h.Healthy != nil {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		if err := h.Healthy(ctx); err != nil {
			h.logger().Warn("health check failed", "err", err)
			writeJSON(w, http.StatusServiceUnavailable, "status", "unavailable")
			return
		}
	}
	writeJSON(w, http.StatusOK, "status", "ok")
}

// parseSignature returns the MAC of a "sha256=<hex>" header value.
func parseSignature(v string) ([]byte, bool) {
	hexMAC, ok := strings.CutPrefix(v, "sha256=")
	if !ok {
		return nil, false
	}
	mac, err := hex.DecodeString(hexMAC)
	if err != nil || len(mac) != sha256.Size {
		return nil, false
	}
	return mac, true
}

// parseHint reads {"table": "...", "sys_id": "<32 hex>"}; other fields are
// allowed and ignored. problem is "" when the body is good.
func parseHint(body []byte) (table, sysID, problem string) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return "", "", "body must be a JSON object"
	}
	table, ok := stringField(fields, "table")
	if !ok {
		return "", "", `"table" must be a string`
	}
	sysID, ok = stringField(fields, "sys_id")
	if !ok {
		return "", "", `"sys_id" must be a string`
	}
	if !servicenow.IsSysID(sysID) {
		return "", "", `"sys_id" must be 32 hex digits`
	}
	return table, sysID, ""
}

func stringField(fields map[string]json.RawMessage, name string) (string, bool) {
	raw, ok := fields[name]
	if !ok || len(raw) == 0 || raw[0] != '"' { // null would unmarshal as ""
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

func accepted(w http.ResponseWriter) { writeJSON(w, http.StatusAccepted, "status", "accepted") }

// writeJSON answers {key: value} with code.
func writeJSON(w http.ResponseWriter, code int, key, value string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{key: value})
}
