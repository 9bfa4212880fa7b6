package telemetry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	tlog "go.temporal.io/sdk/log"
)

const (
	clientSecret  = "hp-client-secret-7f3a9e"
	snPassword    = "p@ss/w:rd 9c1d" // needs escaping in a URL
	webhookSecret = "webhook-secret-5e8b21"
	payloadKey    = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq8w="
	payloadKeys   = "k1:" + payloadKey
)

// unknownToken and unknownPassword are not configured: only the patterns
// (bearer, Authorization, URL password, key=value, attribute name) hide them.
const (
	unknownToken    = "eyJhbGciOiJIUzI1NiJ9.unknown-token-1234"
	unknownPassword = "unlisted-pw-4711"
)

type creds struct {
	User     string
	Password string
}

type secretValuer struct{}

func (secretValuer) LogValue() slog.Value { return slog.StringValue("from LogValue: " + clientSecret) }

// logEverything logs the secrets in every way a line can carry them.
func logEverything(l *slog.Logger) {
	ctx := context.Background()
	l.Info("token exchange with " + clientSecret + " failed")
	l.Info(fmt.Sprintf("calling https://integration:%s@acme.service-now.com/api", url.PathEscape(snPassword)))
	l.Info("attribute", "value", webhookSecret)
	l.Info("any", "value", []string{"x", clientSecret})
	l.Info("struct", "creds", creds{User: "integration", Password: snPassword})
	l.Info("bytes", "body", []byte("secret="+webhookSecret))
	l.Info("nested", slog.Group("request", slog.String("host", "acme"), slog.Group("auth", slog.String("basic", snPassword))))
	l.Info("named", "password", unknownPassword, "client_secret", "whatever-it-is", "PAYLOAD_KEYS", payloadKeys)
	l.Info("key material", "keys", payloadKeys, "key", payloadKey)
	l.Error("failed", "error", fmt.Errorf("servicenow: login with %q: %w", snPassword, errors.New("401 for "+clientSecret)))
	l.Error("failed", "err", errors.New(`oauth2: "access_token":"`+unknownToken+`"`))
	u, _ := url.Parse("https://integration@acme.service-now.com/api")
	u.User = url.UserPassword("integration", snPassword)
	l.Info("url value", "url", u)
	l.Info("url string", "url", u.String())
	l.Info("other url", "url", "https://svc:"+unknownPassword+"@proxy.example:3128/")
	l.Info("header", "headers", http.Header{"Authorization": {"Bearer " + unknownToken}, "Accept": {"application/json"}})
	l.Info("header line Authorization: Basic " + "aW50ZWdyYXRpb246" + unknownPassword)
	l.Info("bearer in text: got Bearer " + unknownToken + " back")
	l.Info("form", "body", "grant_type=client_credentials&client_secret="+unknownPassword+"&client_id=abc")
	l.Info("valuer", "v", secretValuer{})
	l.With("webhook", webhookSecret).Info("with attrs")
	l.WithGroup("g").With("inner", clientSecret).Info("grouped", "more", payloadKey)
	l.LogAttrs(ctx, slog.LevelWarn, "attrs "+webhookSecret, slog.Any("secret-ish", clientSecret))
	// The Temporal SDK's logger over the same handler.
	tlog.NewStructuredLogger(l).Info("sdk "+clientSecret, "Error", errors.New("bad "+webhookSecret))
	tlog.With(tlog.NewStructuredLogger(l), "Password", snPassword).Warn("sdk with")
}

func TestNoSecretReachesTheLog(t *testing.T) {
	secrets := []string{clientSecret, snPassword, webhookSecret, payloadKeys}
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			var inner slog.Handler = slog.NewTextHandler(&buf, nil)
			if format == "json" {
				inner = slog.NewJSONHandler(&buf, nil)
			}
			logEverything(slog.New(NewLogHandler(inner, LogOptions{Secrets: append(secrets, payloadKey)})))
			out := buf.String()
			for _, s := range []string{
				clientSecret, snPassword, webhookSecret, payloadKey, unknownToken, unknownPassword,
				url.PathEscape(snPassword), url.QueryEscape(snPassword), "whatever-it-is",
				"7f3a9e", "5e8b21", "unknown-token", "4711", // no fragments either
			} {
				if strings.Contains(out, s) {
					t.Errorf("%q reached the log:\n%s", s, out)
				}
			}
			if n := strings.Count(out, "\n"); n != 24 {
				t.Errorf("%d lines, want 24 (a line was lost):\n%s", n, out)
			}
			// What is not secret stays readable.
			for _, keep := range []string{"integration", "acme.service-now.com", "proxy.example:3128", "application/json",
				"client_id=abc", "grant_type=client_credentials", "token exchange with", "host", "401 for", Redacted} {
				if !strings.Contains(out, keep) {
					t.Errorf("%q is missing from the log:\n%s", keep, out)
				}
			}
			if t.Failed() {
				return
			}
			t.Logf("%s", out)
		})
	}
}

func TestTaskIDFromWorkflowID(t *testing.T) {
	var buf bytes.Buffer
	h := NewLogHandler(slog.NewJSONHandler(&buf, nil), LogOptions{
		TaskIDFromWorkflowID: func(id string) (string, bool) {
			return strings.TrimPrefix(id, "hyperproof-task-"), strings.HasPrefix(id, "hyperproof-task-")
		},
	})
	sdk := tlog.NewStructuredLogger(slog.New(h))
	// As the SDK's activity logger: tags added through With.
	tlog.With(sdk, "ActivityType", "CopyCommentToHyperproof", "WorkflowID", "hyperproof-task-T42").Info("copied")
	// As a direct call with the tag on the line.
	sdk.Info("round", "WorkflowID", "hyperproof-task-T43")
	sdk.Info("poller", "WorkflowID", "poller-hyperproof")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("lines: %q", lines)
	}
	for i, want := range []string{`"hyperproof_task_id":"T42"`, `"hyperproof_task_id":"T43"`, ""} {
		if want == "" {
			if strings.Contains(lines[i], TaskIDKey) {
				t.Errorf("line %d has a task id: %s", i, lines[i])
			}
			continue
		}
		if strings.Count(lines[i], want) != 1 {
			t.Errorf("line %d lacks %s once: %s", i, want, lines[i])
		}
	}
}

func TestShortSecretsDoNotBlankWords(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(NewLogHandler(slog.NewTextHandler(&buf, nil), LogOptions{Secrets: []string{"a", "", "  "}}))
	l.Info("a task was linked", "table", "sc_task")
	if !strings.Contains(buf.String(), "a task was linked") {
		t.Fatalf("a one-letter secret blanked the text: %s", buf.String())
	}
}
