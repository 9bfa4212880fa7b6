// Package snsim is an in-process simulator of the parts of a ServiceNow
// instance the integration talks to: the Table API (sc_task, incident_task,
// problem_task, sys_user, sys_journal_field, sys_choice, sys_attachment) and
// the Attachment API, with basic auth and an async "business rule" that posts
// a signed webhook when a linked task changes.
//
// It reproduces the quirks recorded from real instances rather than the
// convenient behaviour: every value is a JSON string, references change JSON
// type with the query parameters, journal fields read back empty, lists page
// with a Link header whose first "prev" has a negative offset, errors come in
// the {"error":{...},"status":"failure"} envelope, and adding an attachment
// does not touch the parent record.
package snsim

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"hpsync/internal/sandbox/faults"
	"hpsync/internal/sandbox/seed"
)

// dateLayout is the raw ServiceNow date/time layout (UTC, no zone).
const dateLayout = "2006-01-02 15:04:05"

// Identities the simulator is seeded with besides those in package seed.
const (
	// CreatorUserName and CreatorPassword are the basic-auth credentials of
	// the creator account (e-mail seed.CreatorEmail).
	CreatorUserName = "casey.creator"
	CreatorPassword = "sandbox-casey-password"
	// IntegrationEmail is the e-mail of seed.SNIntegrationUser.
	IntegrationEmail = "hyperproof.integration@example.com"
)

// SignatureHeader carries "sha256=<hex HMAC-SHA256(WebhookSecret, body)>" on
// webhook posts.
const SignatureHeader = "X-Signature-256"

// CorrelationPrefix is the correlation_id prefix that makes the business rule
// post a webhook.
const CorrelationPrefix = "hyperproof:"

const defaultMaxPageSize = 10000

// Options configure a Server.
type Options struct {
	WebhookURL    string // where business rules post; "" = none
	WebhookSecret string // HMAC-SHA256 key for X-Signature-256
	MaxPageSize   int    // cap on sysparm_limit (default 10000)
	DataDir       string // where attachment bytes are kept as files ("" = os.MkdirTemp)
	Logf          func(format string, args ...any)
	// Now is the simulator's clock (nil = time.Now). Values are stored with
	// one-second resolution in UTC, as on a real instance. Tests set a fixed
	// clock to put several rows in the same second.
	Now func() time.Time
	// FaultSpec is a fault spec in the SANDBOX_FAULTS grammar (package
	// faults); its servicenow clauses are loaded into the injector. A bad
	// spec makes New fail.
	FaultSpec string
}

// Server is the simulated instance. It is an http.Handler.
type Server struct {
	opts    Options
	dataDir string
	ownDir  bool

	mu        sync.Mutex
	closed    bool
	tables    map[string]*table
	passwords map[string]string // user_name -> password
	files     map[string]string // attachment sys_id -> path of its bytes

	faults  *faults.Injector
	handler http.Handler // faults in front of serveLogged

	hooks      sync.WaitGroup
	hookCtx    context.Context
	hookCancel context.CancelFunc
	hookClient *http.Client
}

// New returns a seeded simulator.
func New(opts Options) (*Server, error) {
	if opts.MaxPageSize <= 0 {
		opts.MaxPageSize = defaultMaxPageSize
	}
	s := &Server{
		opts:       opts,
		passwords:  map[string]string{},
		files:      map[string]string{},
		hookClient: &http.Client{Timeout: 5 * time.Second},
	}
	if opts.DataDir == "" {
		dir, err := os.MkdirTemp("", "snsim-attachments-")
		if err != nil {
			return nil, fmt.Errorf("snsim: data dir: %w", err)
		}
		s.dataDir, s.ownDir = dir, true
	} else {
		if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("snsim: data dir: %w", err)
		}
		s.dataDir = opts.DataDir
	}
	s.hookCtx, s.hookCancel = context.WithCancel(context.Background())
	s.tables = newSchema()
	s.seed()
	s.faults = faults.New(s.vendor())
	if err := s.faults.LoadString(opts.FaultSpec); err != nil {
		s.Close()
		return nil, fmt.Errorf("snsim: %w", err)
	}
	s.handler = s.faults.Middleware(http.HandlerFunc(s.serveLogged))
	return s, nil
}

// Faults returns the fault injector in front of the simulator: add rules to
// it (or load a SANDBOX_FAULTS spec) and read how many faults fired.
func (s *Server) Faults() *faults.Injector { return s.faults }

// rateLimitRuleID is the sys_id the simulator reports in X-RateLimit-Rule.
const rateLimitRuleID = "5ab1e0c0db2f3010a1b2c3d4e5f60718"

// vendor describes the simulator to the fault injector: ServiceNow's error
// envelope and rate-limit headers, every path in scope.
func (s *Server) vendor() faults.Vendor {
	return faults.Vendor{
		Name: faults.ServiceNow,
		Error: func(w http.ResponseWriter, status int, retryAfter time.Duration) {
			if status == http.StatusTooManyRequests {
				w.Header().Set("X-RateLimit-Limit", "1000")
				w.Header().Set("X-RateLimit-Rule", rateLimitRuleID)
				writeError(w, status, "Too Many Requests",
					strp(fmt.Sprintf("Rate limit of 1000 requests per hour exceeded; retry after %d seconds", int64(retryAfter/time.Second))))
				return
			}
			writeError(w, status, http.StatusText(status), strp("Transaction failed (fault injected by the sandbox)"))
		},
		Logf:   s.logf,
		Caller: caller,
	}
}

// caller names who a request acts as, for as= fault rules: the basic-auth
// user name (whether or not the password is right).
func caller(r *http.Request) string {
	u, _, _ := r.BasicAuth()
	return u
}

// Close waits for in-flight webhook posts (cancelling them) and removes the
// attachment files the simulator wrote. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	files := s.files
	s.files = map[string]string{}
	s.mu.Unlock()

	s.hookCancel()
	s.hooks.Wait()

	var errs []error
	if s.ownDir {
		errs = append(errs, os.RemoveAll(s.dataDir))
	} else {
		for _, p := range files {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// UserSysID is the sys_id the simulator gives a seeded user.
func UserSysID(userName string) string {
	sum := sha256.Sum256([]byte("snsim/sys_user/" + userName))
	return hex.EncodeToString(sum[:16])
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

func (s *Server) now() time.Time {
	t := time.Now()
	if s.opts.Now != nil {
		t = s.opts.Now()
	}
	return t.UTC().Truncate(time.Second)
}

func (s *Server) nowString() string { return s.now().Format(dateLayout) }

// seed fills sys_user and sys_choice with the sandbox identities and the
// out-of-box state choices.
func (s *Server) seed() {
	now := s.nowString()
	users := []struct{ user, pass, first, last, email string }{
		{seed.SNIntegrationUser, seed.SNIntegrationPassword, "Hyperproof", "Integration", IntegrationEmail},
		{seed.SNAssigneeUser, seed.SNAssigneePassword, seed.AssigneeGiven, seed.AssigneeSurname, seed.AssigneeEmail},
		{CreatorUserName, CreatorPassword, seed.CreatorGiven, seed.CreatorSurname, seed.CreatorEmail},
	}
	ut := s.tables["sys_user"]
	for _, u := range users {
		rec := ut.blank()
		id := UserSysID(u.user)
		rec["sys_id"] = id
		rec["user_name"] = u.user
		rec["first_name"] = u.first
		rec["last_name"] = u.last
		rec["name"] = u.first + " " + u.last
		rec["email"] = u.email
		rec["active"] = "true"
		stampCreate(rec, now, "system")
		ut.rows[id] = rec
		s.passwords[u.user] = u.pass
	}

	taskStates := []struct{ value, label string }{
		{"-5", "Pending"}, {"1", "Open"}, {"2", "Work in Progress"},
		{"3", "Closed Complete"}, {"4", "Closed Incomplete"}, {"7", "Closed Skipped"},
	}
	problemTaskStates := []struct{ value, label string }{
		{"151", "New"}, {"152", "Assess"}, {"154", "Work in Progress"}, {"157", "Closed"},
	}
	ct := s.tables["sys_choice"]
	add := func(tableName, value, label string, seq int) {
		rec := ct.blank()
		id := newSysID()
		rec["sys_id"] = id
		rec["name"] = tableName
		rec["element"] = "state"
		rec["value"] = value
		rec["label"] = label
		rec["sequence"] = fmt.Sprint(seq)
		rec["language"] = "en"
		rec["inactive"] = "false"
		stampCreate(rec, now, "system")
		ct.rows[id] = rec
	}
	for _, tn := range []string{"task", "sc_task", "incident_task"} {
		for i, c := range taskStates {
			add(tn, c.value, c.label, i*10)
		}
	}
	for i, c := range problemTaskStates {
		add("problem_task", c.value, c.label, i*10)
	}
}

func stampCreate(rec record, now, user string) {
	rec["sys_created_on"] = now
	rec["sys_created_by"] = user
	if _, ok := rec["sys_updated_on"]; ok {
		rec["sys_updated_on"] = now
		rec["sys_updated_by"] = user
	}
	if _, ok := rec["sys_mod_count"]; ok {
		rec["sys_mod_count"] = "0"
	}
}

// ---------------------------------------------------------------------------
// HTTP plumbing

// statusWriter remembers the status for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// reqCtx is what a handler needs to know about the request.
type reqCtx struct {
	user      string // authenticated user_name
	base      string // scheme://host
	apiPrefix string // "/api/now" or "/api/now/v2" as the caller used it
}

// ServeHTTP implements http.Handler: the fault injector, then the
// simulator.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

func (s *Server) serveLogged(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	user := s.serve(sw, r)
	if s.opts.Logf != nil {
		if user == "" {
			user = "-"
		}
		s.logf("snsim: %s %s -> %d (%s)", r.Method, r.URL.Path, sw.status, user)
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) string {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		writeError(w, http.StatusServiceUnavailable, "Service Unavailable", strp("simulator closed"))
		return ""
	}

	user, ok := s.authenticate(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `BASIC realm="Service-now"`)
		writeError(w, http.StatusUnauthorized, "User Not Authenticated", strp("Required to provide Auth information"))
		return ""
	}

	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	rc := &reqCtx{user: user, base: scheme + "://" + r.Host, apiPrefix: "/api/now"}

	rest, ok := strings.CutPrefix(r.URL.Path, "/api/now/")
	if !ok {
		writeError(w, http.StatusBadRequest, "Requested URI does not represent any resource", nil)
		return user
	}
	for _, v := range []string{"v1/", "v2/"} {
		if after, found := strings.CutPrefix(rest, v); found {
			rest = after
			rc.apiPrefix = "/api/now/" + strings.TrimSuffix(v, "/")
			break
		}
	}
	rest = strings.TrimSuffix(rest, "/")
	switch {
	case strings.HasPrefix(rest, "table/"):
		s.serveTable(w, r, rc, strings.TrimPrefix(rest, "table/"))
	case rest == "attachment" || strings.HasPrefix(rest, "attachment/"):
		s.serveAttachment(w, r, rc, strings.TrimPrefix(strings.TrimPrefix(rest, "attachment"), "/"))
	default:
		writeError(w, http.StatusBadRequest, "Requested URI does not represent any resource", nil)
	}
	return user
}

func (s *Server) authenticate(r *http.Request) (string, bool) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	want, known := s.passwords[user]
	if !known {
		return "", false
	}
	if subtle.ConstantTimeCompare([]byte(pass), []byte(want)) != 1 {
		return "", false
	}
	// A deactivated user cannot log in.
	if u := s.tables["sys_user"].findBy("user_name", user); u != nil && u["active"] != "true" {
		return "", false
	}
	return user, true
}

func strp(s string) *string { return &s }

// writeError writes the ServiceNow error envelope. detail nil = JSON null.
func writeError(w http.ResponseWriter, status int, message string, detail *string) {
	body := struct {
		Error struct {
			Message string  `json:"message"`
			Detail  *string `json:"detail"`
		} `json:"error"`
		Status string `json:"status"`
	}{Status: "failure"}
	body.Error.Message = message
	body.Error.Detail = detail
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-cache,no-store,must-revalidate,max-age=-1")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(strings.TrimSuffix(b.String(), "\n")))
}

func notFound(w http.ResponseWriter) {
	writeError(w, http.StatusNotFound, "No Record found", strp("Record doesn't exist or ACL restricts the record retrieval"))
}

func invalidTable(w http.ResponseWriter, name string) {
	writeError(w, http.StatusBadRequest, "Invalid table "+name, strp("Table "+name+" does not exist"))
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusMethodNotAllowed, "Method not Supported", strp("Method "+r.Method+" is not supported for this resource"))
}
