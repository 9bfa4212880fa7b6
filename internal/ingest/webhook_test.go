package ingest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const (
	testSecret = "webhook-test-secret-4d2c"
	sysID      = "0123456789abcdef0123456789abcdef"
	taskID     = "hp-task-1"
)

func sign(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// fake records the calls the handler makes.
type fake struct {
	resolved   []string // "table/sys_id"
	signalled  []string
	linked     bool
	resolveErr error
	signalErr  error
	healthErr  error
	healthDead bool // the context given to Healthy had a deadline
}

func (f *fake) handler(logs *bytes.Buffer) *WebhookHandler {
	return &WebhookHandler{
		Secret: []byte(testSecret),
		Tables: map[string]bool{"sc_task": true, "incident_task": true},
		Resolve: func(ctx context.Context, table, id string) (string, bool, error) {
			f.resolved = append(f.resolved, table+"/"+id)
			if f.resolveErr != nil {
				return "", false, f.resolveErr
			}
			if !f.linked {
				return "", false, nil
			}
			return taskID, true, nil
		},
		Signal: func(ctx context.Context, id string) error {
			f.signalled = append(f.signalled, id)
			return f.signalErr
		},
		Healthy: func(ctx context.Context) error {
			_, f.healthDead = ctx.Deadline()
			return f.healthErr
		},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func post(h http.Handler, body string, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, WebhookPath, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func signed(body string) map[string]string {
	return map[string]string{SignatureHeader: sign(testSecret, body)}
}

// checkJSON checks that the answer is a small JSON object with key.
func checkJSON(t *testing.T, rec *httptest.ResponseRecorder, key string) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var got map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got[key] == "" {
		t.Errorf("body = %q, want a JSON object with %q", rec.Body.String(), key)
	}
}

func TestWebhookFlow(t *testing.T) {
	good := `{"table":"sc_task","sys_id":"` + sysID + `"}`
	tests := []struct {
		name       string
		body       string
		linked     bool
		resolveErr error
		signalErr  error
		want       int
		resolved   []string
		signalled  []string
	}{
		{name: "linked record is signalled", body: good, linked: true, want: 202,
			resolved: []string{"sc_task/" + sysID}, signalled: []string{taskID}},
		{name: "extra fields of the business rule are ignored", linked: true, want: 202,
			body:     `{"table":"incident_task","sys_id":"` + strings.ToUpper(sysID) + `","number":"TASK0001","sys_mod_count":"8","event":"update"}`,
			resolved: []string{"incident_task/" + strings.ToUpper(sysID)}, signalled: []string{taskID}},
		{name: "unlinked record: accepted, nothing signalled", body: good, linked: false, want: 202,
			resolved: []string{"sc_task/" + sysID}},
		{name: "resolver says not linked with ErrNotLinked", body: good, resolveErr: fmt.Errorf("lookup: %w", ErrNotLinked), want: 202,
			resolved: []string{"sc_task/" + sysID}},
		{name: "table not synced: accepted, not even resolved", want: 202,
			body: `{"table":"problem_task","sys_id":"` + sysID + `"}`},
		{name: "empty table: accepted, not resolved", want: 202,
			body: `{"table":"","sys_id":"` + sysID + `"}`},
		{name: "resolver error is 503", body: good, resolveErr: errors.New("servicenow: 502 bad gateway"), want: 503,
			resolved: []string{"sc_task/" + sysID}},
		{name: "workflow gone is 202", body: good, linked: true, signalErr: fmt.Errorf("signal hyperproof-task-1: %w", ErrNotLinked), want: 202,
			resolved: []string{"sc_task/" + sysID}, signalled: []string{taskID}},
		{name: "signal error is 503", body: good, linked: true, signalErr: errors.New("temporal unavailable"), want: 503,
			resolved: []string{"sc_task/" + sysID}, signalled: []string{taskID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			f := &fake{linked: tt.linked, resolveErr: tt.resolveErr, signalErr: tt.signalErr}
			rec := post(f.handler(&logs).Routes(), tt.body, signed(tt.body))
			if rec.Code != tt.want {
				t.Fatalf("status = %d, want %d (body %s)", rec.Code, tt.want, rec.Body)
			}
			if tt.want == 202 {
				checkJSON(t, rec, "status")
			} else {
				checkJSON(t, rec, "error")
			}
			if fmt.Sprint(f.resolved) != fmt.Sprint(tt.resolved) {
				t.Errorf("resolved %v, want %v", f.resolved, tt.resolved)
			}
			if fmt.Sprint(f.signalled) != fmt.Sprint(tt.signalled) {
				t.Errorf("signalled %v, want %v", f.signalled, tt.signalled)
			}
			if tt.want == 503 && !strings.Contains(logs.String(), "level=WARN") {
				t.Errorf("503 not logged as a warning: %s", logs.String())
			}
		})
	}
}

func TestWebhookRefusesBadSignature(t *testing.T) {
	body := `{"table":"sc_task","sys_id":"` + sysID + `"}`
	good := sign(testSecret, body)
	tests := []struct {
		name   string
		header map[string]string
		secret string // handler secret; default testSecret
	}{
		{name: "missing", header: nil},
		{name: "empty", header: map[string]string{SignatureHeader: ""}},
		{name: "wrong key", header: map[string]string{SignatureHeader: sign("another-secret", body)}},
		{name: "signature of another body", header: map[string]string{SignatureHeader: sign(testSecret, body+" ")}},
		{name: "no sha256= prefix", header: map[string]string{SignatureHeader: strings.TrimPrefix(good, "sha256=")}},
		{name: "sha1= prefix", header: map[string]string{SignatureHeader: "sha1=" + strings.TrimPrefix(good, "sha256=")}},
		{name: "upper-case prefix", header: map[string]string{SignatureHeader: "SHA256=" + strings.TrimPrefix(good, "sha256=")}},
		{name: "bad hex", header: map[string]string{SignatureHeader: "sha256=" + strings.Repeat("zz", 32)}},
		{name: "odd hex", header: map[string]string{SignatureHeader: good[:len(good)-1]}},
		{name: "truncated MAC", header: map[string]string{SignatureHeader: good[:len(good)-2]}},
		{name: "good signature under another header", header: map[string]string{"X-Hub-Signature-256": good}},
		{name: "no secret configured", header: map[string]string{SignatureHeader: sign("", body)}, secret: "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			f := &fake{linked: true}
			h := f.handler(&logs)
			if tt.secret == "-" {
				h.Secret = nil
			}
			rec := post(h.Routes(), body, tt.header)
			if rec.Code != http.StatusUnauthorized {
				t.Fatalf("status = %d, want 401", rec.Code)
			}
			checkJSON(t, rec, "error")
			if len(f.resolved) != 0 || len(f.signalled) != 0 {
				t.Errorf("resolved %v, signalled %v; want nothing", f.resolved, f.signalled)
			}
		})
	}
}

func TestWebhookRefusesBadBody(t *testing.T) {
	tests := []struct{ name, body string }{
		{"malformed JSON", `{"table":"sc_task","sys_id":`},
		{"not JSON", `table=sc_task&sys_id=` + sysID},
		{"empty body", ``},
		{"array body", `[{"table":"sc_task","sys_id":"` + sysID + `"}]`},
		{"string body", `"sc_task"`},
		{"null body", `null`},
		{"two objects", `{"table":"sc_task","sys_id":"` + sysID + `"} {}`},
		{"table missing", `{"sys_id":"` + sysID + `"}`},
		{"sys_id missing", `{"table":"sc_task"}`},
		{"table a number", `{"table":1,"sys_id":"` + sysID + `"}`},
		{"table null", `{"table":null,"sys_id":"` + sysID + `"}`},
		{"sys_id an object", `{"table":"sc_task","sys_id":{"value":"` + sysID + `"}}`},
		{"sys_id null", `{"table":"sc_task","sys_id":null}`},
		{"sys_id too short", `{"table":"sc_task","sys_id":"` + sysID[1:] + `"}`},
		{"sys_id too long", `{"table":"sc_task","sys_id":"` + sysID + `0"}`},
		{"sys_id not hex", `{"table":"sc_task","sys_id":"` + strings.Repeat("g", 32) + `"}`},
		{"sys_id empty", `{"table":"sc_task","sys_id":""}`},
		{"unknown table with bad sys_id", `{"table":"problem_task","sys_id":"x"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			f := &fake{linked: true}
			rec := post(f.handler(&logs).Routes(), tt.body, signed(tt.body))
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400 (body %s)", rec.Code, rec.Body)
			}
			checkJSON(t, rec, "error")
			if len(rec.Body.String()) > 100 {
				t.Errorf("error body is not short: %s", rec.Body)
			}
			if len(f.resolved) != 0 || len(f.signalled) != 0 {
				t.Errorf("resolved %v, signalled %v; want nothing", f.resolved, f.signalled)
			}
		})
	}
}

func TestWebhookBodyLimit(t *testing.T) {
	// A valid hint padded with spaces to an exact size.
	padded := func(size int) string {
		b := `{"table":"sc_task","sys_id":"` + sysID + `"}`
		return b + strings.Repeat(" ", size-len(b))
	}
	tests := []struct {
		size int
		want int
	}{
		{MaxWebhookBody, http.StatusAccepted},
		{MaxWebhookBody + 1, http.StatusRequestEntityTooLarge},
		{4 * MaxWebhookBody, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.size), func(t *testing.T) {
			var logs bytes.Buffer
			f := &fake{linked: true}
			body := padded(tt.size)
			if len(body) != tt.size {
				t.Fatalf("body is %d bytes", len(body))
			}
			rec := post(f.handler(&logs).Routes(), body, signed(body))
			if rec.Code != tt.want {
				t.Fatalf("status = %d, want %d", rec.Code, tt.want)
			}
			wantSignals := 0
			if tt.want == http.StatusAccepted {
				wantSignals = 1
			}
			if len(f.signalled) != wantSignals {
				t.Errorf("signalled %v, want %d signals", f.signalled, wantSignals)
			}
		})
	}
}

func TestWebhookMethods(t *testing.T) {
	var logs bytes.Buffer
	f := &fake{linked: true}
	h := f.handler(&logs).Routes()
	tests := []struct {
		method, path string
		want         int
		allow        string
	}{
		{http.MethodGet, WebhookPath, 405, "POST"},
		{http.MethodPut, WebhookPath, 405, "POST"},
		{http.MethodPost, "/healthz", 405, "GET, HEAD"},
		{http.MethodHead, "/healthz", 200, ""},
		{http.MethodGet, "/nowhere", 404, ""},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(tt.method, tt.path, nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.want || rec.Header().Get("Allow") != tt.allow {
			t.Errorf("%s %s = %d (Allow %q), want %d (Allow %q)", tt.method, tt.path, rec.Code, rec.Header().Get("Allow"), tt.want, tt.allow)
		}
	}
	if len(f.resolved) != 0 || len(f.signalled) != 0 {
		t.Errorf("resolved %v, signalled %v; want nothing", f.resolved, f.signalled)
	}
}

func TestHealthz(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		nilFunc bool
		want    int
		status  string
	}{
		{name: "temporal reachable", want: 200, status: "ok"},
		{name: "temporal unreachable", err: errors.New("dial tcp 127.0.0.1:7233: connection refused"), want: 503, status: "unavailable"},
		{name: "no check wired", nilFunc: true, want: 200, status: "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			f := &fake{healthErr: tt.err}
			h := f.handler(&logs)
			if tt.nilFunc {
				h.Healthy = nil
			}
			rec := httptest.NewRecorder()
			h.Routes().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
			if rec.Code != tt.want {
				t.Fatalf("status = %d, want %d", rec.Code, tt.want)
			}
			var got map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got["status"] != tt.status {
				t.Errorf("body = %s, want status %q", rec.Body, tt.status)
			}
			if !tt.nilFunc && !f.healthDead {
				t.Error("Healthy got a context without a deadline")
			}
		})
	}
}

// TestWebhookLogsNoSecrets runs every kind of request through one handler and
// checks the log never shows the secret or a signature.
func TestWebhookLogsNoSecrets(t *testing.T) {
	var logs bytes.Buffer
	f := &fake{linked: true}
	h := f.handler(&logs).Routes()
	good := `{"table":"sc_task","sys_id":"` + sysID + `"}`
	var sigs []string
	for _, c := range []struct{ body, sig string }{
		{good, sign(testSecret, good)},
		{good, sign("wrong", good)},
		{`[]`, sign(testSecret, `[]`)},
		{good, "sha256=zz"},
		{strings.Repeat(" ", MaxWebhookBody+1), sign(testSecret, strings.Repeat(" ", MaxWebhookBody+1))},
	} {
		sigs = append(sigs, strings.TrimPrefix(c.sig, "sha256="))
		post(h, c.body, map[string]string{SignatureHeader: c.sig})
	}
	f.resolveErr = errors.New("boom")
	post(h, good, signed(good))

	out := logs.String()
	if out == "" {
		t.Fatal("nothing logged")
	}
	if strings.Contains(out, testSecret) {
		t.Errorf("log shows the secret:\n%s", out)
	}
	for _, s := range sigs {
		if strings.Contains(out, s) {
			t.Errorf("log shows a signature %q:\n%s", s, out)
		}
	}
}

func TestRoutesNeedsResolveAndSignal(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Routes() with nil Resolve and Signal did not panic")
		}
	}()
	(&WebhookHandler{Secret: []byte(testSecret)}).Routes()
}
