// Package hpsim is an in-process simulator of the parts of the Hyperproof
// REST API the integration uses: the OAuth2 client-credentials token
// endpoint, tasks, task statuses, comments, proof and users. It follows the
// paths and shapes of the API notes and, where the real behaviour is
// unconfirmed, does the less convenient thing (comments and proof do not
// change a task's updatedOn; nothing is de-duplicated for the caller).
package hpsim

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"hpsync/internal/sandbox/faults"
	"hpsync/internal/sandbox/seed"
)

// IntegrationAppUserID is the identity of the integration's service-account
// client (seed.IntegrationClientID): createdBy/updatedBy of what it writes.
const IntegrationAppUserID = "8e5b6a7f-9c0d-4e1f-a2b3-4c5d6e7f8a9b"

// TimeLayout is how the simulator writes timestamps.
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// Options configures a Server.
type Options struct {
	TokenTTL time.Duration // lifetime of access tokens (default 1h)
	DataDir  string        // where proof bytes are kept as files ("" = os.MkdirTemp)
	Logf     func(format string, args ...any)
	// FaultSpec is a fault spec in the SANDBOX_FAULTS grammar (package
	// faults); its hyperproof clauses are loaded into the injector. A bad
	// spec makes New fail.
	FaultSpec string
}

// Server is the simulator; it is an http.Handler and safe for concurrent use.
type Server struct {
	opts    Options
	dataDir string
	ownDir  bool
	mux     *http.ServeMux

	mu        sync.Mutex
	closed    bool
	lastNow   time.Time
	seq       int64
	tokens    map[string]*tokenRec
	clients   map[string]client
	users     map[string]*user // org users, by id
	userOrder []string
	service   *user // the service account behind the integration client
	statuses  []*taskStatus
	controls  map[string]string // id -> name
	labels    map[string]string
	tasks     map[string]*task
	comments  map[string][]*comment // by task id, oldest first
	proofs    map[string]*proof
	proofList []*proof // upload order
	faults    *faults.Injector
	handler   http.Handler // faults in front of serveLogged
	seeded    []string
}

type client struct {
	secret    string
	principal string // user id the tokens act as
}

type tokenRec struct {
	clientID  string
	principal string
	expires   time.Time
}

type user struct {
	ID        string
	Email     string
	GivenName string
	Surname   string
	Service   bool
}

type taskStatus struct {
	ID        string
	Name      string
	Type      string
	SortOrder int
	Color     string
	Icon      string
	CreatedOn time.Time
}

type task struct {
	ID           string
	Title        string
	Description  string
	AssigneeID   string
	TargetID     string
	TargetType   string
	TargetName   string
	TaskStatusID string
	Priority     string
	DueDate      *time.Time
	SortOrder    int64
	ClosedOn     *time.Time
	CreatedBy    string
	CreatedOn    time.Time
	UpdatedBy    string
	UpdatedOn    time.Time
}

type comment struct {
	ID              string
	TaskID          string
	Formatted       string
	Plain           string
	IsInternal      bool
	SourceCommentID string
	SourceUpdatedOn *time.Time
	CreatedBy       string
	CreatedOn       time.Time
}

type proof struct {
	seq              int64
	ID               string
	ObjectType       string
	ObjectID         string
	Filename         string
	ContentType      string
	Size             int64
	SourceID         string
	SourceFileID     string
	SourceModifiedOn *time.Time
	OwnedBy          string
	CreatedBy        string
	CreatedOn        time.Time
	path             string
}

// New starts a simulator seeded with the sandbox organisation: the creator
// and the assignee, the control and the label, and three fresh tasks.
func New(opts Options) (*Server, error) {
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = time.Hour
	}
	s := &Server{
		opts:     opts,
		tokens:   map[string]*tokenRec{},
		users:    map[string]*user{},
		controls: map[string]string{seed.ControlID: seed.ControlName},
		labels:   map[string]string{seed.LabelID: "Firewall evidence"},
		tasks:    map[string]*task{},
		comments: map[string][]*comment{},
		proofs:   map[string]*proof{},
		clients: map[string]client{
			seed.IntegrationClientID: {secret: seed.IntegrationClientSecret, principal: IntegrationAppUserID},
			seed.CreatorClientID:     {secret: seed.CreatorClientSecret, principal: seed.CreatorUserID},
		},
	}
	if opts.DataDir == "" {
		dir, err := os.MkdirTemp("", "hpsim-proof-")
		if err != nil {
			return nil, fmt.Errorf("hpsim: data dir: %w", err)
		}
		s.dataDir, s.ownDir = dir, true
	} else {
		if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("hpsim: data dir: %w", err)
		}
		s.dataDir = opts.DataDir
	}
	if err := s.seed(); err != nil {
		s.Close()
		return nil, err
	}
	s.routes()
	s.faults = faults.New(s.vendor())
	if err := s.faults.LoadString(opts.FaultSpec); err != nil {
		s.Close()
		return nil, fmt.Errorf("hpsim: %w", err)
	}
	s.handler = s.faults.Middleware(http.HandlerFunc(s.serveLogged))
	return s, nil
}

func (s *Server) seed() error {
	for _, u := range []*user{
		{ID: seed.CreatorUserID, Email: seed.CreatorEmail, GivenName: seed.CreatorGiven, Surname: seed.CreatorSurname},
		{ID: seed.AssigneeUserID, Email: seed.AssigneeEmail, GivenName: seed.AssigneeGiven, Surname: seed.AssigneeSurname},
	} {
		s.users[u.ID] = u
		s.userOrder = append(s.userOrder, u.ID)
	}
	s.service = &user{ID: IntegrationAppUserID, GivenName: "hpsync", Surname: "Service Account", Service: true}

	now := s.now()
	// Display names as an organisation renamed them: match by type.
	for i, st := range []struct{ name, typ, color, icon string }{
		{"Backlog", "notStarted", "#9e9e9e", "circle"},
		{"Doing", "inProgress", "#1e88e5", "progress"},
		{"Ready for review", "submitted", "#fb8c00", "review"},
		{"Done", "closed", "#43a047", "check"},
		{"Canceled", "cancelled", "#e53935", "cancel"},
	} {
		s.statuses = append(s.statuses, &taskStatus{ID: newID(), Name: st.name, Type: st.typ, SortOrder: i + 1, Color: st.color, Icon: st.icon, CreatedOn: now})
	}
	notStarted := s.statusByType("notStarted")
	due := now.Add(14 * 24 * time.Hour).Truncate(24 * time.Hour).Add(17 * time.Hour)
	for i, t := range []struct{ title, desc, prio string }{
		{"Export the Q3 firewall ruleset", "Export the production firewall ruleset and attach it as proof.", "high"},
		{"Provide approvals for firewall rule changes", "Attach the change tickets approving each rule added this quarter.", "medium"},
		{"Sign off the quarterly firewall review", "Attach the signed review minutes.", "low"},
	} {
		d := due
		tk := &task{
			ID: newID(), Title: t.title, Description: t.desc,
			AssigneeID: seed.AssigneeUserID, TargetID: seed.ControlID, TargetType: "control", TargetName: seed.ControlName,
			TaskStatusID: notStarted.ID, Priority: t.prio, DueDate: &d, SortOrder: int64(i + 1),
			CreatedBy: seed.CreatorUserID, CreatedOn: s.now(), UpdatedBy: seed.CreatorUserID,
		}
		tk.UpdatedOn = tk.CreatedOn
		s.tasks[tk.ID] = tk
		s.seeded = append(s.seeded, tk.ID)
	}
	return nil
}

// SeededTaskIDs returns the ids of the three tasks seeded by New.
func (s *Server) SeededTaskIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seeded...)
}

// RevokeTokens invalidates every access token issued so far (as a rotated
// client secret or a server-side revocation would).
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// Fault is a canned answer the simulator gives instead of serving matching
// requests: a 429, a transient 403 quota answer, a 5xx, or even a 2xx with
// an odd payload to exercise a client. It is a faults.KindStatus rule of the
// simulator's injector (see Faults).
type Fault struct {
	Method     string // "" = any
	PathPrefix string // "" = any /v1/ path
	StatusCode int
	Header     http.Header
	Body       string
	Times      int // how many requests it answers; 0 = 1
}

// InjectFault queues a canned answer; faults are matched in the order they
// were added.
func (s *Server) InjectFault(f Fault) {
	if f.Times <= 0 {
		f.Times = 1
	}
	if f.StatusCode == 0 {
		f.StatusCode = http.StatusInternalServerError
	}
	s.faults.MustAdd(faults.Rule{
		Kind:       faults.KindStatus,
		Method:     strings.ToUpper(f.Method),
		PathPrefix: f.PathPrefix,
		Status:     f.StatusCode,
		Header:     f.Header.Clone(),
		Body:       f.Body,
		Times:      f.Times,
	})
}

// RateLimitFault is Hyperproof's throttling answer: 429 with the "Try again
// in N seconds" text (and no Retry-After header).
func RateLimitFault(seconds int) Fault {
	return Fault{StatusCode: http.StatusTooManyRequests, Body: rateLimitBody(seconds)}
}

func rateLimitBody(seconds int) string {
	return fmt.Sprintf(`{"statusCode":429,"message":"Rate limit is exceeded. Try again in %d seconds."}`, seconds)
}

// QuotaFault is Hyperproof's transient bandwidth-quota answer (a 403).
func QuotaFault() Fault {
	return Fault{StatusCode: http.StatusForbidden, Body: `{"statusCode":403,"message":"Bandwidth quota exceeded. Try again later."}`}
}

// Faults returns the fault injector in front of the simulator: add rules to
// it (or load a SANDBOX_FAULTS spec) and read how many faults fired.
func (s *Server) Faults() *faults.Injector { return s.faults }

// vendor describes the simulator to the fault injector: Hyperproof's error
// body, its /v1/ API scope (the token endpoint is hit only when a rule
// names it) and how a token expires.
func (s *Server) vendor() faults.Vendor {
	return faults.Vendor{
		Name:  faults.Hyperproof,
		Scope: "/v1/",
		Error: func(w http.ResponseWriter, status int, retryAfter time.Duration) {
			if status == http.StatusTooManyRequests {
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
				w.WriteHeader(status)
				_, _ = w.Write([]byte(rateLimitBody(int(retryAfter / time.Second))))
				return
			}
			writeError(w, status, http.StatusText(status)+".")
		},
		ExpireToken: s.expireBearer,
		Logf:        s.logf,
		Caller:      s.caller,
	}
}

// caller names who a request acts as, for as= fault rules: the OAuth client
// id the bearer token was issued to, or on the token endpoint the client id
// asking (HTTP basic or the form body, which is read and put back). "" when
// it cannot be told.
func (s *Server) caller(r *http.Request) string {
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		s.mu.Lock()
		defer s.mu.Unlock()
		if rec := s.tokens[strings.TrimSpace(tok)]; rec != nil {
			return rec.clientID
		}
		return ""
	}
	if r.Method != http.MethodPost || r.URL.Path != "/oauth/token" {
		return ""
	}
	if id, _, ok := r.BasicAuth(); ok {
		return id
	}
	if r.Body == nil || !strings.HasPrefix(strings.ToLower(r.Header.Get("Content-Type")), "application/x-www-form-urlencoded") {
		return ""
	}
	// The handler reads at most 64 KiB of the form; peek at as much, then
	// hand the same bytes (and the rest) on.
	head, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), r.Body), r.Body}
	if err != nil {
		return ""
	}
	form, err := url.ParseQuery(string(head))
	if err != nil {
		return ""
	}
	return form.Get("client_id")
}

// expireBearer makes the access token of r expire now: the request in
// flight (already authenticated) goes on, the next one with the token is
// answered 401.
func (s *Server) expireBearer(r *http.Request) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec := s.tokens[strings.TrimSpace(tok)]; rec != nil {
		rec.expires = time.Now()
	}
}

// Close removes the proof files when the data directory was a temporary one;
// afterwards every request is answered 503.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if s.ownDir {
		return os.RemoveAll(s.dataDir)
	}
	return nil
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

// now returns a strictly increasing UTC time at microsecond precision (the
// precision timestamps are written with), so that every change has its own
// updatedOn and a modifiedAfter cursor is exact. Callers hold s.mu or run
// before the server is shared.
func (s *Server) now() time.Time {
	t := time.Now().UTC().Truncate(time.Microsecond)
	if !t.After(s.lastNow) {
		t = s.lastNow.Add(time.Microsecond)
	}
	s.lastNow = t
	return t
}

func (s *Server) statusByType(typ string) *taskStatus {
	for _, st := range s.statuses {
		if st.Type == typ {
			return st
		}
	}
	return nil
}

func (s *Server) statusByID(id string) *taskStatus {
	for _, st := range s.statuses {
		if st.ID == id {
			return st
		}
	}
	return nil
}

// newID returns a random (version 4) UUID.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func newToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

type ctxKey struct{}

// principal returns the user id the request's token acts as.
func principal(r *http.Request) string {
	p, _ := r.Context().Value(ctxKey{}).(string)
	return p
}

// ServeHTTP implements http.Handler: the fault injector, then the
// simulator.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

func (s *Server) serveLogged(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	start := time.Now()
	s.serve(rec, r)
	// Only the method, path and status are logged: never headers, bodies
	// or query strings (which could carry credentials).
	s.logf("hpsim: %s %s -> %d (%s)", r.Method, r.URL.Path, rec.status, time.Since(start).Round(time.Microsecond))
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		writeError(w, http.StatusServiceUnavailable, "The simulator is closed.")
		return
	}
	if strings.HasPrefix(r.URL.Path, "/v1/") {
		p, msg := s.authenticate(r)
		if p == "" {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, msg)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, p))
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) authenticate(r *http.Request) (principal, message string) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if h == "" || !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", "Access denied due to missing access token."
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.tokens[strings.TrimSpace(tok)]
	if rec == nil {
		return "", "Access denied due to invalid access token."
	}
	if !time.Now().Before(rec.expires) {
		delete(s.tokens, strings.TrimSpace(tok))
		return "", "Access denied: the access token has expired."
	}
	return rec.principal, ""
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("POST /oauth/token", s.handleToken)
	m.HandleFunc("POST /v1/tasks", s.handleCreateTask)
	m.HandleFunc("PUT /v1/tasks/filter", s.handleFilterTasks)
	m.HandleFunc("GET /v1/tasks/{id}", s.handleGetTask)
	m.HandleFunc("PATCH /v1/tasks/{id}", s.handlePatchTask)
	m.HandleFunc("GET /v1/taskstatuses", s.handleStatuses)
	m.HandleFunc("GET /v1/tasks/{id}/comments", s.handleListComments)
	m.HandleFunc("POST /v1/tasks/{id}/comments", s.handleAddComment)
	m.HandleFunc("GET /v1/tasks/{id}/proof", s.handleListTaskProof)
	m.HandleFunc("POST /v1/tasks/{id}/proof", s.uploadHandler("task"))
	m.HandleFunc("POST /v1/controls/{id}/proof", s.uploadHandler("control"))
	m.HandleFunc("POST /v1/labels/{id}/proof", s.uploadHandler("label"))
	m.HandleFunc("GET /v1/proof", s.handleListProof)
	m.HandleFunc("GET /v1/proof/{id}/contents", s.handleDownloadProof)
	m.HandleFunc("GET /v1/users", s.handleUsers)
	m.HandleFunc("GET /v1/users/me", s.handleMe)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "Resource not found.")
	})
	s.mux = m
}

// handleToken is the OAuth2 token endpoint (client credentials grant; client
// authentication in the form or with HTTP basic).
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/x-www-form-urlencoded") {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "malformed form body")
		return
	}
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "only grant_type=client_credentials is supported")
		return
	}
	s.mu.Lock()
	c, known := s.clients[id]
	s.mu.Unlock()
	if id == "" || !known || secret != c.secret {
		if basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="hyperproof"`)
		}
		s.logf("hpsim: token refused for client %q", id)
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed: unknown client or wrong client secret.")
		return
	}
	tok := newToken()
	ttl := s.opts.TokenTTL
	s.mu.Lock()
	now := time.Now()
	for k, t := range s.tokens {
		if !now.Before(t.expires) {
			delete(s.tokens, k)
		}
	}
	s.tokens[tok] = &tokenRec{clientID: id, principal: c.principal, expires: now.Add(ttl)}
	s.mu.Unlock()
	// expires_in is rounded down, so that a client never believes a token
	// lives longer than it does.
	secs := int64(ttl / time.Second)
	if secs < 1 {
		secs = 1
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"token_type":   "Bearer",
		"expires_in":   secs,
	})
}

func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encoding failed")
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]any{"statusCode": status, "message": msg})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// decodeJSON reads a JSON body of at most 1 MiB into v.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errors.New("the body is too large")
		}
		return fmt.Errorf("invalid JSON body: %v", err)
	}
	return nil
}

type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func formatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

func timePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := formatTime(*t)
	return &s
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// parseTime accepts the timestamp layouts Hyperproof clients send.
func parseTime(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700", "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid date-time %q", v)
}
