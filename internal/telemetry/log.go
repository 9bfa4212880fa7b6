package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Redacted replaces a secret in a log line.
const Redacted = "[redacted]"

// TaskIDKey is the attribute a log line of a task workflow (or of one of its
// activities) gets: the Hyperproof task id read from the workflow id.
const TaskIDKey = "hyperproof_task_id"

// minSecretLen is the shortest configured secret replaced wherever it
// occurs; shorter ones would blank ordinary words (they are still hidden
// under sensitive attribute names and in the patterns below).
const minSecretLen = 4

// LogOptions configures NewLogHandler.
type LogOptions struct {
	// Secrets are values that must never reach the output: the client
	// secret, passwords, the webhook secret, payload keys.
	Secrets []string
	// TaskIDFromWorkflowID reads a Hyperproof task id out of a workflow id;
	// when set, records carrying a WorkflowID attribute (the Temporal SDK's
	// workflow and activity loggers add it) also get TaskIDKey.
	TaskIDFromWorkflowID func(workflowID string) (string, bool)
}

// NewLogHandler wraps inner so that no secret reaches it: every message and
// attribute (nested groups, errors, values formatted with %+v, values
// resolved from slog.LogValuer) has the configured secrets, their URL- and
// quote-escaped forms, URL passwords, bearer tokens, Authorization header
// values and key=value pairs of password/secret/token keys replaced by
// "[redacted]"; an attribute whose key names a secret (password, secret,
// token, authorization, api key, cookie, payload keys) is redacted whole.
// Values of kind Any are logged as their redacted text.
func NewLogHandler(inner slog.Handler, opts LogOptions) slog.Handler {
	return &logHandler{inner: inner, r: newRedactor(opts.Secrets), taskID: opts.TaskIDFromWorkflowID}
}

type logHandler struct {
	inner   slog.Handler
	r       *redactor
	taskID  func(string) (string, bool)
	hasTask bool
}

func (h *logHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h *logHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.String(rec.Message), rec.PC)
	task := ""
	rec.Attrs(func(a slog.Attr) bool {
		if task == "" && !h.hasTask {
			task = h.task(a)
		}
		out.AddAttrs(h.r.Attr(a))
		return true
	})
	if task != "" {
		out.AddAttrs(slog.String(TaskIDKey, h.r.String(task)))
	}
	return h.inner.Handle(ctx, out)
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, 0, len(attrs)+1)
	task := ""
	for _, a := range attrs {
		if task == "" && !h.hasTask {
			task = h.task(a)
		}
		red = append(red, h.r.Attr(a))
	}
	n := *h
	if task != "" {
		red = append(red, slog.String(TaskIDKey, h.r.String(task)))
		n.hasTask = true
	}
	n.inner = h.inner.WithAttrs(red)
	return &n
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	n := *h
	n.inner = h.inner.WithGroup(h.r.String(name))
	return &n
}

// task is the task id of a WorkflowID attribute, or "".
func (h *logHandler) task(a slog.Attr) string {
	if h.taskID == nil || a.Key != "WorkflowID" {
		return ""
	}
	id, ok := h.taskID(a.Value.Resolve().String())
	if !ok {
		return ""
	}
	return id
}

// Secret patterns that hold whatever the configured secrets are.
var (
	// scheme://user:password@ → scheme://user:[redacted]@
	urlPassword = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*):[^/\s@]*@`)
	// Authorization: <anything>, Authorization=[Basic ...], "authorization":"..."
	authHeader = regexp.MustCompile(`(?i)(authorization["']?\s*[:=]\s*\[?\s*["']?)[^"'\]\r\n,;}]+`)
	// Bearer <token>
	bearer = regexp.MustCompile(`(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]{8,}=*`)
	// client_secret=..., "password": "...", access_token=..., PAYLOAD_KEYS=...
	keyValue = regexp.MustCompile(`(?i)\b([\w.\-]*(?:password|passwd|secret|token|api[_-]?key|payload[_-]?keys)[\w.\-]*)(["']?\s*[:=]\s*["']?)([^\s"'&,;}\]\[][^\s"'&,;}\]]*)`)
	// attribute keys whose values are secret whatever they hold
	sensitiveKey = regexp.MustCompile(`(?i)(password|passwd|secret|token|authorization|api[_-]?key|cookie|payload[_-]?keys|private[_-]?key|credential)`)
)

type redactor struct {
	secrets *strings.Replacer
}

func newRedactor(secrets []string) *redactor {
	seen := map[string]bool{}
	var forms []string
	for _, s := range secrets {
		s = strings.TrimSpace(s)
		if len(s) < minSecretLen {
			continue
		}
		quoted, _ := json.Marshal(s)
		for _, f := range []string{
			s,
			url.QueryEscape(s),
			url.PathEscape(s),
			strings.Trim(strconv.Quote(s), `"`),
			strings.Trim(string(quoted), `"`),
		} {
			if !seen[f] {
				seen[f] = true
				forms = append(forms, f)
			}
		}
	}
	// Longest first: the replacer tries its arguments in order.
	slices.SortFunc(forms, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(forms))
	for _, f := range forms {
		pairs = append(pairs, f, Redacted)
	}
	return &redactor{secrets: strings.NewReplacer(pairs...)}
}

// String redacts one text.
func (r *redactor) String(s string) string {
	s = r.secrets.Replace(s)
	s = urlPassword.ReplaceAllString(s, "${1}:"+Redacted+"@")
	s = authHeader.ReplaceAllString(s, "${1}"+Redacted)
	s = bearer.ReplaceAllString(s, "${1} "+Redacted)
	s = keyValue.ReplaceAllString(s, "${1}${2}"+Redacted)
	return s
}

// Attr redacts one attribute, recursively.
func (r *redactor) Attr(a slog.Attr) slog.Attr {
	a.Value = a.Value.Resolve()
	key := r.String(a.Key)
	if sensitiveKey.MatchString(a.Key) {
		return slog.String(key, Redacted)
	}
	switch a.Value.Kind() {
	case slog.KindString:
		return slog.String(key, r.String(a.Value.String()))
	case slog.KindGroup:
		group := a.Value.Group()
		red := make([]any, len(group))
		for i, g := range group {
			red[i] = r.Attr(g)
		}
		return slog.Group(key, red...)
	case slog.KindAny:
		switch v := a.Value.Any().(type) {
		case nil:
			return slog.Any(key, nil)
		case error:
			return slog.String(key, r.String(v.Error()))
		case []byte:
			return slog.String(key, r.String(string(v)))
		default:
			return slog.String(key, r.String(fmt.Sprintf("%+v", v)))
		}
	default: // numbers, booleans, durations, times
		a.Key = key
		return a
	}
}
