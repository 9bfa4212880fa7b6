package hyperproof_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hpsync/internal/hyperproof"
	"hpsync/internal/sandbox/hpsim"
	"hpsync/internal/sandbox/seed"
)

// env is a simulator behind a loopback httptest server that counts requests.
type env struct {
	sim    *hpsim.Server
	srv    *httptest.Server
	tokens atomic.Int64 // token requests
	mu     sync.Mutex
	hits   map[string]int // "METHOD /path" -> count
}

func newEnv(t *testing.T, opts hpsim.Options) *env {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	sim, err := hpsim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{sim: sim, hits: map[string]int{}}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth/token" {
			e.tokens.Add(1)
		}
		e.mu.Lock()
		e.hits[r.Method+" "+r.URL.Path]++
		e.mu.Unlock()
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		e.srv.Close()
		sim.Close()
	})
	return e
}

func (e *env) hitCount(key string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.hits[key]
}

// client returns a client of the simulator without request pacing (the
// tests of the rate limiter use configWith).
func (e *env) client(t *testing.T, id, secret string, margin time.Duration) *hyperproof.Client {
	t.Helper()
	return e.configWith(t, hyperproof.Config{
		ClientID:           id,
		ClientSecret:       secret,
		TokenRefreshMargin: margin,
		RequestsPerSecond:  -1,
	})
}

// configWith returns a client of the simulator with cfg's settings; the
// endpoints, the HTTP client and (when empty) the integration's credentials
// are filled in.
func (e *env) configWith(t *testing.T, cfg hyperproof.Config) *hyperproof.Client {
	t.Helper()
	cfg.APIURL = e.srv.URL
	cfg.TokenURL = e.srv.URL + "/oauth/token"
	cfg.HTTPClient = e.srv.Client()
	if cfg.ClientID == "" {
		cfg.ClientID, cfg.ClientSecret = seed.IntegrationClientID, seed.IntegrationClientSecret
	}
	c, err := hyperproof.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) integration(t *testing.T) *hyperproof.Client {
	return e.client(t, seed.IntegrationClientID, seed.IntegrationClientSecret, 0)
}

func (e *env) creator(t *testing.T) *hyperproof.Client {
	return e.client(t, seed.CreatorClientID, seed.CreatorClientSecret, 0)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func asAPIError(t *testing.T, err error, status int) *hyperproof.APIError {
	t.Helper()
	var ae *hyperproof.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want *APIError %d, got %T %v", status, err, err)
	}
	if ae.StatusCode != status {
		t.Fatalf("want status %d, got %d (%s)", status, ae.StatusCode, ae.Message)
	}
	return ae
}

func TestTokenCachedAndRefreshedAfterExpiry(t *testing.T) {
	e := newEnv(t, hpsim.Options{TokenTTL: time.Second})
	c := e.client(t, seed.IntegrationClientID, seed.IntegrationClientSecret, 300*time.Millisecond)
	ctx := ctx(t)

	me, err := c.Me(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if me.ID != hpsim.IntegrationAppUserID {
		t.Fatalf("integration client acts as %q, want the service account", me.ID)
	}
	if _, err := c.ListUsers(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.tokens.Load(); n != 1 {
		t.Fatalf("token requests after two calls = %d, want 1 (cached)", n)
	}
	time.Sleep(1100 * time.Millisecond) // the first token has expired on the server
	if _, err := c.Me(ctx); err != nil {
		t.Fatalf("call after expiry: %v", err)
	}
	if n := e.tokens.Load(); n != 2 {
		t.Fatalf("token requests after expiry = %d, want 2", n)
	}
}

func TestRevokedTokenIsReplacedOnce(t *testing.T) {
	e := newEnv(t, hpsim.Options{})
	c := e.integration(t)
	ctx := ctx(t)
	if _, err := c.Me(ctx); err != nil {
		t.Fatal(err)
	}
	e.sim.RevokeTokens()
	// The 401 drops the token; the call is repeated once with a new one.
	if _, err := c.Me(ctx); err != nil {
		t.Fatalf("call after revocation: %v", err)
	}
	if n := e.tokens.Load(); n != 2 {
		t.Fatalf("token requests = %d, want 2", n)
	}
	if n := e.hitCount("GET /v1/users/me"); n != 3 {
		t.Fatalf("GET /v1/users/me sent %d times, want 3 (ok, 401, repeat)", n)
	}
	// A second 401 in a row is the answer: not retryable, and no more
	// repeats.
	e.sim.InjectFault(hpsim.Fault{StatusCode: 401, Body: `{"statusCode":401,"message":"Access denied due to invalid access token."}`, Times: 2})
	ae := asAPIError(t, mustErr(c.Me(ctx)), 401)
	if ae.Retryable() {
		t.Error("401 must not be Retryable")
	}
	if n := e.hitCount("GET /v1/users/me"); n != 5 {
		t.Fatalf("GET /v1/users/me sent %d times, want 5", n)
	}
	if n := e.tokens.Load(); n != 3 {
		t.Fatalf("token requests = %d, want 3 (one per refused token)", n)
	}
	if _, err := c.Me(ctx); err != nil {
		t.Fatalf("call after the 401s: %v", err)
	}
}

func mustErr[T any](_ T, err error) error { return err }

func TestWrongSecretIsAClearErrorWithoutTheSecret(t *testing.T) {
	e := newEnv(t, hpsim.Options{})
	const secret = "wrong-secret-d41d8cd98f00b204"
	c := e.client(t, seed.IntegrationClientID, secret, 0)
	_, err := c.Me(ctx(t))
	if err == nil {
		t.Fatal("no error with a wrong secret")
	}
	if !errors.Is(err, hyperproof.ErrCredentialsRejected) {
		t.Errorf("errors.Is(err, ErrCredentialsRejected) is false: %v", err)
	}
	var ae *hyperproof.AuthError
	if !errors.As(err, &ae) || ae.StatusCode != 401 || ae.Code != "invalid_client" || ae.Retryable() {
		t.Errorf("want *AuthError 401 invalid_client, not retryable; got %#v", err)
	}
	msg := err.Error()
	t.Log(msg)
	if !strings.Contains(msg, "rejected the client credentials") || !strings.Contains(msg, seed.IntegrationClientID) {
		t.Errorf("message is not clear: %s", msg)
	}
	if strings.Contains(msg, secret) || strings.Contains(fmt.Sprintf("%+v %#v", err, ae), secret) {
		t.Errorf("the secret leaks: %s", msg)
	}
	if e.hitCount("GET /v1/users/me") != 0 {
		t.Error("the API was called without a token")
	}
}

func TestUnreachableTokenEndpoint(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	c, err := hyperproof.New(hyperproof.Config{APIURL: url, TokenURL: url + "/oauth/token", ClientID: "x", ClientSecret: "s3cr3t-value"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Me(ctx(t))
	var ae *hyperproof.AuthError
	if !errors.As(err, &ae) || !ae.Retryable() || errors.Is(err, hyperproof.ErrCredentialsRejected) {
		t.Fatalf("want a retryable *AuthError, got %v", err)
	}
	if strings.Contains(err.Error(), "s3cr3t-value") {
		t.Fatal("secret in error")
	}
}

func TestNewValidatesConfig(t *testing.T) {
	for _, cfg := range []hyperproof.Config{
		{ClientSecret: "s"},
		{ClientID: "c"},
		{ClientID: "c", ClientSecret: "s", APIURL: "ftp://x"},
		{ClientID: "c", ClientSecret: "s", TokenURL: "not a url"},
	} {
		if _, err := hyperproof.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestCreateGetFilter(t *testing.T) {
	e := newEnv(t, hpsim.Options{})
	hp := e.integration(t)
	casey := e.creator(t)
	ctx := ctx(t)

	due := time.Date(2030, 10, 1, 17, 0, 0, 0, time.UTC)
	created, err := casey.CreateTask(ctx, hyperproof.NewTask{
		Title: "Provide Q3 firewall rule review", Description: "Export and attach the ruleset.",
		TargetType: "control", TargetID: seed.ControlID, AssigneeID: seed.AssigneeUserID, Priority: "high", DueDate: &due,
	})
	if err != nil {
		t.Fatal(err)
	}
	if created.ID == "" || created.CreatedBy != seed.CreatorUserID || created.TargetID != seed.ControlID ||
		created.TargetType != "control" || created.AssigneeID != seed.AssigneeUserID || created.OrgID != seed.OrgID ||
		created.DueDate == nil || !created.DueDate.Equal(due) || created.UpdatedOn.IsZero() {
		t.Fatalf("created task: %+v", created)
	}
	got, err := hp.GetTask(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Title != created.Title || !got.UpdatedOn.Equal(created.UpdatedOn) || got.TaskStatusID != created.TaskStatusID {
		t.Fatalf("get = %+v, want %+v", got, created)
	}
	asAPIError(t, mustErr(hp.GetTask(ctx, "00000000-0000-4000-8000-000000000000")), 404)
	asAPIError(t, mustErr(hp.CreateTask(ctx, hyperproof.NewTask{Title: "x", TargetType: "control", TargetID: "nope"})), 400)

	// modifiedAfter is exclusive.
	ids := func(ts []hyperproof.Task) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.ID)
		}
		return out
	}
	list, err := hp.FilterTasks(ctx, created.UpdatedOn.Add(-time.Microsecond), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(ids(list), created.ID) {
		t.Fatalf("filter before updatedOn misses the task: %v", ids(list))
	}
	list, err = hp.FilterTasks(ctx, created.UpdatedOn, nil)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(ids(list), created.ID) {
		t.Fatal("filter at updatedOn returns the task")
	}
	all, err := hp.FilterTasks(ctx, time.Time{}, nil)
	if err != nil || len(all) != 4 {
		t.Fatalf("filter all = %d tasks, %v; want 3 seeded + 1", len(all), err)
	}
	seeded := e.sim.SeededTaskIDs()
	only, err := hp.FilterTasks(ctx, time.Time{}, seeded[:2])
	if err != nil || len(only) != 2 {
		t.Fatalf("filter by ids = %v, %v", ids(only), err)
	}

	// Comments and proof do not change updatedOn: a poll on tasks misses them.
	if _, err := hp.AddComment(ctx, created.ID, hyperproof.NewComment{Text: "hello"}); err != nil {
		t.Fatal(err)
	}
	if _, err := hp.UploadTaskProof(ctx, created.ID, hyperproof.ProofUpload{Filename: "a.txt", ContentType: "text/plain", Body: strings.NewReader("a")}); err != nil {
		t.Fatal(err)
	}
	after, err := hp.GetTask(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !after.UpdatedOn.Equal(created.UpdatedOn) {
		t.Fatalf("updatedOn moved on comment/proof: %v -> %v", created.UpdatedOn, after.UpdatedOn)
	}
	if list, _ := hp.FilterTasks(ctx, created.UpdatedOn, nil); len(list) != 0 {
		t.Fatalf("filter sees %d tasks after comment/proof", len(list))
	}
}

func TestSetStatusByType(t *testing.T) {
	e := newEnv(t, hpsim.Options{})
	hp := e.integration(t)
	ctx := ctx(t)
	statuses, err := hp.ListTaskStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(statuses) != 5 {
		t.Fatalf("%d statuses", len(statuses))
	}
	for _, typ := range []string{hyperproof.StatusNotStarted, hyperproof.StatusInProgress, hyperproof.StatusSubmitted, hyperproof.StatusClosed, hyperproof.StatusCancelled} {
		if _, ok := hyperproof.StatusByType(statuses, typ); !ok {
			t.Fatalf("no status of type %s", typ)
		}
	}
	inProgress, _ := hyperproof.StatusByType(statuses, hyperproof.StatusInProgress)
	if inProgress.Name == "In progress" {
		t.Fatal("the simulator should use a renamed status")
	}
	taskID := e.sim.SeededTaskIDs()[0]
	before, err := hp.GetTask(ctx, taskID)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := hyperproof.StatusByType(statuses, hyperproof.StatusNotStarted); before.TaskStatusID != s.ID {
		t.Fatal("seeded task is not notStarted")
	}
	updated, err := hp.SetTaskStatus(ctx, taskID, inProgress.ID)
	if err != nil {
		t.Fatal(err)
	}
	if updated.TaskStatusID != inProgress.ID || !updated.UpdatedOn.After(before.UpdatedOn) || updated.UpdatedBy != hpsim.IntegrationAppUserID {
		t.Fatalf("after PATCH: %+v", updated)
	}
	all, err := hp.FilterTasks(ctx, time.Time{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var cursor time.Time // the newest updatedOn before the PATCH
	for _, tk := range all {
		if tk.ID != taskID && tk.UpdatedOn.After(cursor) {
			cursor = tk.UpdatedOn
		}
	}
	if before.UpdatedOn.After(cursor) {
		cursor = before.UpdatedOn
	}
	list, err := hp.FilterTasks(ctx, cursor, nil)
	if err != nil || len(list) != 1 || list[0].ID != taskID {
		t.Fatalf("filter after PATCH = %+v, %v", list, err)
	}
	ae := asAPIError(t, mustErr(hp.SetTaskStatus(ctx, taskID, "not-a-status")), 400)
	if ae.Retryable() || ae.Message == "" {
		t.Fatalf("400: %+v", ae)
	}
	asAPIError(t, mustErr(hp.SetTaskStatus(ctx, "00000000-0000-4000-8000-000000000000", inProgress.ID)), 404)
}

func TestCommentsRoundTrip(t *testing.T) {
	e := newEnv(t, hpsim.Options{})
	hp := e.integration(t)
	casey := e.creator(t)
	ctx := ctx(t)
	taskID := e.sim.SeededTaskIDs()[1]

	first, err := casey.AddComment(ctx, taskID, hyperproof.NewComment{Text: "<p>Please attach the <b>export</b> &amp; sign-off</p>"})
	if err != nil {
		t.Fatal(err)
	}
	srcTime := time.Date(2025, 9, 20, 8, 14, 3, 0, time.UTC)
	text := "Done — attached ✅ (from ServiceNow)"
	second, err := hp.AddComment(ctx, taskID, hyperproof.NewComment{Text: text, SourceCommentID: "sn:0a1b2c", SourceUpdatedOn: srcTime})
	if err != nil {
		t.Fatal(err)
	}
	// The same text again is a different comment.
	third, err := hp.AddComment(ctx, taskID, hyperproof.NewComment{Text: text, SourceCommentID: "sn:0a1b2d"})
	if err != nil {
		t.Fatal(err)
	}
	if second.ID == "" || second.SourceCommentID != "sn:0a1b2c" || !second.SourceUpdatedOn.Equal(srcTime) || second.CreatedBy != hpsim.IntegrationAppUserID {
		t.Fatalf("added comment: %+v", second)
	}
	list, err := hp.ListComments(ctx, taskID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].ID != first.ID || list[1].ID != second.ID || list[2].ID != third.ID {
		t.Fatalf("comments not oldest first: %+v", list)
	}
	if list[0].CreatedBy != seed.CreatorUserID || list[0].PlainText != "Please attach the export & sign-off" || list[0].SourceCommentID != "" {
		t.Fatalf("creator comment: %+v", list[0])
	}
	if list[1].Text != text || list[1].SourceCommentID != "sn:0a1b2c" || list[1].IsInternal || list[1].CreatedOn.IsZero() {
		t.Fatalf("integration comment: %+v", list[1])
	}
	asAPIError(t, mustErr(hp.ListComments(ctx, "00000000-0000-4000-8000-000000000000")), 404)
}

// genReader yields n pseudo-random bytes without allocating.
type genReader struct {
	n     int64
	state uint64
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.n {
		p = p[:g.n]
	}
	for i := range p {
		g.state ^= g.state << 13
		g.state ^= g.state >> 7
		g.state ^= g.state << 17
		p[i] = byte(g.state)
	}
	g.n -= int64(len(p))
	return len(p), nil
}

func sha(b []byte) [32]byte { return sha256.Sum256(b) }

func download(t *testing.T, c *hyperproof.Client, id string) [32]byte {
	t.Helper()
	rc, err := c.DownloadProof(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatal(err)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

func TestProofUploadListDownloadByteExact(t *testing.T) {
	e := newEnv(t, hpsim.Options{})
	hp := e.integration(t)
	ctx := ctx(t)
	taskID := e.sim.SeededTaskIDs()[2]

	all := make([]byte, 256*40)
	for i := range all {
		all[i] = byte(i)
	}
	modified := time.Date(2025, 9, 12, 20, 59, 47, 694353000, time.UTC)
	cases := []struct {
		name, ctype string
		data        []byte
	}{
		{"all-bytes.bin", "application/octet-stream", all},
		{"empty.txt", "text/plain", nil},
		{"Évaluation des risques [v2] (finale) — été.pdf", "application/pdf", []byte("%PDF-1.7 fake")},
		{"README", "", []byte("no extension here\r\n")},
		{`quote"and\backslash;semi.csv`, "text/csv", []byte("a,b\n1,2\n")},
	}
	for i, tc := range cases {
		fileID := fmt.Sprintf("sys-attachment-%02d", i)
		up, err := hp.UploadTaskProof(ctx, taskID, hyperproof.ProofUpload{
			Filename: tc.name, ContentType: tc.ctype, Body: bytes.NewReader(tc.data),
			SourceID: "sc_task:abc", SourceFileID: fileID, SourceModifiedOn: modified,
		})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if up.Filename != tc.name || up.Size != int64(len(tc.data)) || up.SourceFileID != fileID || up.SourceID != "sc_task:abc" ||
			!up.SourceModifiedOn.Equal(modified) || up.CreatedBy != hpsim.IntegrationAppUserID || up.UploadedOn.IsZero() || up.Status != "active" {
			t.Fatalf("%s: metadata %+v", tc.name, up)
		}
		if tc.ctype != "" && up.ContentType != tc.ctype {
			t.Fatalf("%s: content type %q", tc.name, up.ContentType)
		}
		found, err := hp.ListTaskProof(ctx, taskID, fileID)
		if err != nil {
			t.Fatal(err)
		}
		if len(found) != 1 || found[0].ID != up.ID || found[0].Filename != tc.name {
			t.Fatalf("%s: by sourceFileId: %+v", tc.name, found)
		}
		if got := download(t, hp, up.ID); got != sha(tc.data) {
			t.Fatalf("%s: downloaded bytes differ", tc.name)
		}
	}
	list, err := hp.ListTaskProof(ctx, taskID, "")
	if err != nil || len(list) != len(cases) {
		t.Fatalf("task proof = %d, %v", len(list), err)
	}
	if none, err := hp.ListTaskProof(ctx, taskID, "unknown-file"); err != nil || len(none) != 0 {
		t.Fatalf("unknown sourceFileId = %+v, %v", none, err)
	}
	asAPIError(t, mustErr(hp.DownloadProof(ctx, "00000000-0000-4000-8000-000000000000")), 404)
	asAPIError(t, mustErr(hp.UploadTaskProof(ctx, "00000000-0000-4000-8000-000000000000", hyperproof.ProofUpload{Filename: "x", Body: strings.NewReader("x")})), 404)
}

func TestTargetProofOnControlAndLabel(t *testing.T) {
	e := newEnv(t, hpsim.Options{})
	casey := e.creator(t)
	ctx := ctx(t)
	for _, target := range []struct{ typ, id string }{{"control", seed.ControlID}, {"label", seed.LabelID}} {
		data := []byte("closed-task evidence for " + target.typ)
		up, err := casey.UploadTargetProof(ctx, target.typ, target.id, hyperproof.ProofUpload{Filename: "evidence.txt", ContentType: "text/plain", Body: bytes.NewReader(data), SourceFileID: "f-" + target.typ})
		if err != nil {
			t.Fatal(err)
		}
		if up.CreatedBy != seed.CreatorUserID {
			t.Fatalf("createdBy %q", up.CreatedBy)
		}
		list, err := casey.ListProof(ctx, target.typ, target.id)
		if err != nil || len(list) != 1 || list[0].ID != up.ID {
			t.Fatalf("%s proof = %+v, %v", target.typ, list, err)
		}
		if download(t, casey, up.ID) != sha(data) {
			t.Fatal("bytes differ")
		}
		asAPIError(t, mustErr(casey.UploadTargetProof(ctx, target.typ, "00000000-0000-4000-8000-000000000000", hyperproof.ProofUpload{Filename: "x", Body: strings.NewReader("x")})), 404)
	}
	if _, err := casey.UploadTargetProof(ctx, "../tasks", "x", hyperproof.ProofUpload{Filename: "x", Body: strings.NewReader("x")}); err == nil {
		t.Fatal("an object type with a path in it was accepted")
	}
}

func TestListProofFollowsNextToken(t *testing.T) {
	e := newEnv(t, hpsim.Options{})
	hp := e.integration(t)
	ctx := ctx(t)
	const n = 1203 // three pages of 500
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				_, err := hp.UploadTargetProof(ctx, "label", seed.LabelID, hyperproof.ProofUpload{Filename: fmt.Sprintf("p%04d.txt", i), Body: strings.NewReader(strconv.Itoa(i)), SourceFileID: strconv.Itoa(i)})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	list, err := hp.ListProof(ctx, "label", seed.LabelID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != n {
		t.Fatalf("listed %d, want %d", len(list), n)
	}
	seen := map[string]bool{}
	for _, p := range list {
		if seen[p.SourceFileID] {
			t.Fatalf("duplicate %s", p.SourceFileID)
		}
		seen[p.SourceFileID] = true
	}
	if pages := e.hitCount("GET /v1/proof"); pages != 3 {
		t.Fatalf("%d page requests, want 3", pages)
	}
	other, err := hp.ListProof(ctx, "control", seed.ControlID)
	if err != nil || len(other) != 0 {
		t.Fatalf("control proof = %d, %v", len(other), err)
	}
}

func TestPagedAnswersAreFollowed(t *testing.T) {
	e := newEnv(t, hpsim.Options{})
	hp := e.integration(t)
	task := func(id string) string {
		return `{"id":"` + id + `","title":"t","updatedOn":"2025-09-12T20:59:47.694353Z","createdOn":"2025-09-12T20:59:47Z"}`
	}
	e.sim.InjectFault(hpsim.Fault{Method: "PUT", PathPrefix: "/v1/tasks/filter", StatusCode: 200, Body: `{"data":[` + task("a") + `,` + task("b") + `],"nextToken":"p2"}`})
	e.sim.InjectFault(hpsim.Fault{Method: "PUT", PathPrefix: "/v1/tasks/filter", StatusCode: 200, Body: `{"data":[` + task("c") + `],"nextToken":null}`})
	list, err := hp.FilterTasks(ctx(t), time.Now().Add(-time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[2].ID != "c" {
		t.Fatalf("paged filter = %+v", list)
	}
	// A server that repeats its token is caught, not followed forever.
	loop := hpsim.Fault{Method: "GET", PathPrefix: "/v1/tasks/x/comments", StatusCode: 200, Body: `{"data":[],"nextToken":"same"}`, Times: 5}
	e.sim.InjectFault(loop)
	if _, err := hp.ListComments(ctx(t), "x"); err == nil || !strings.Contains(err.Error(), "repeated") {
		t.Fatalf("repeated token: %v", err)
	}
}

func TestErrorDecoding(t *testing.T) {
	e := newEnv(t, hpsim.Options{})
	ctx := ctx(t)
	reset := time.Now().Add(30 * time.Second).Unix()
	cases := []struct {
		name      string
		fault     hpsim.Fault
		status    int
		retryable bool
		after     time.Duration // 0 = none; checked within 2 s
		message   string
	}{
		{"429 Retry-After", hpsim.Fault{StatusCode: 429, Header: http.Header{"Retry-After": {"7"}}, Body: `{"statusCode":429,"message":"Rate limit is exceeded. Try again in 5 seconds."}`}, 429, true, 7 * time.Second, "Rate limit is exceeded"},
		{"429 text", hpsim.RateLimitFault(5), 429, true, 5 * time.Second, "Try again in 5 seconds"},
		{"429 reset header", hpsim.Fault{StatusCode: 429, Header: http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {strconv.FormatInt(reset, 10)}}, Body: `{"statusCode":429,"message":"Rate limit is exceeded."}`}, 429, true, 30 * time.Second, "Rate limit"},
		{"403 quota", hpsim.QuotaFault(), 403, true, 0, "Bandwidth quota exceeded"},
		{"403 real", hpsim.Fault{StatusCode: 403, Body: `{"statusCode":403,"message":"User does not have permission to perform this action."}`}, 403, false, 0, "permission"},
		{"500 html", hpsim.Fault{StatusCode: 500, Header: http.Header{"Content-Type": {"text/html"}}, Body: "<html><body>\n<h1>Internal   Server Error</h1></body></html>"}, 500, true, 0, "Internal Server Error"},
		{"502 empty", hpsim.Fault{StatusCode: 502}, 502, true, 0, "Bad Gateway"},
		{"400 oauth-like", hpsim.Fault{StatusCode: 400, Body: `{"error":"invalid_request","error_description":"bad thing"}`}, 400, false, 0, "invalid_request: bad thing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A limiter of its own: the waits the answers ask for must not
			// hold back the next case.
			hp := e.configWith(t, hyperproof.Config{RateLimitKey: tc.name})
			if _, err := hp.Me(ctx); err != nil { // token first, so faults hit the API call
				t.Fatal(err)
			}
			e.sim.InjectFault(tc.fault)
			ae := asAPIError(t, mustErr(hp.ListUsers(ctx)), tc.status)
			if ae.Retryable() != tc.retryable {
				t.Errorf("Retryable = %v", ae.Retryable())
			}
			if d := ae.RetryAfter - tc.after; d < -2*time.Second || d > 2*time.Second {
				t.Errorf("RetryAfter = %v, want %v", ae.RetryAfter, tc.after)
			}
			if !strings.Contains(ae.Message, tc.message) || strings.Contains(ae.Message, "<") {
				t.Errorf("Message = %q", ae.Message)
			}
		})
	}
	// Real 400, 401 and 404 answers of the simulator.
	hp := e.integration(t)
	asAPIError(t, mustErr(hp.SetTaskStatus(ctx, e.sim.SeededTaskIDs()[0], "nope")), 400)
	asAPIError(t, mustErr(hp.GetTask(ctx, "missing")), 404)
	// A 401 is repeated once with a new token; the second is the answer.
	// Here every token has expired on the server by the time it is used.
	stale := newEnv(t, hpsim.Options{TokenTTL: time.Nanosecond})
	hp = stale.integration(t)
	ae := asAPIError(t, mustErr(hp.ListUsers(ctx)), 401)
	if n := stale.hitCount("GET /v1/users"); n != 2 {
		t.Errorf("GET /v1/users sent %d times, want 2", n)
	}
	if ae.Retryable() || !strings.Contains(ae.Message, "token") {
		t.Errorf("401 = %+v", ae)
	}
}

func TestTimestampLayouts(t *testing.T) {
	e := newEnv(t, hpsim.Options{})
	hp := e.integration(t)
	e.sim.InjectFault(hpsim.Fault{PathPrefix: "/v1/tasks/odd", StatusCode: 200, Body: `{"id":"odd","title":"t",
		"dueDate":"2025-09-12T20:59:47.694353Z","createdOn":"2023-05-12T14:16:27.4176600+00:00","updatedOn":"2024-02-24T12:01:57+0000",
		"targetObject":{"objectType":"control","objectId":"c1"}}`})
	task, err := hp.GetTask(ctx(t), "odd")
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Time{
		time.Date(2025, 9, 12, 20, 59, 47, 694353000, time.UTC),
		time.Date(2023, 5, 12, 14, 16, 27, 417660000, time.UTC),
		time.Date(2024, 2, 24, 12, 1, 57, 0, time.UTC),
	}
	if task.DueDate == nil || !task.DueDate.Equal(want[0]) || !task.CreatedOn.Equal(want[1]) || !task.UpdatedOn.Equal(want[2]) {
		t.Fatalf("times: due %v created %v updated %v", task.DueDate, task.CreatedOn, task.UpdatedOn)
	}
	if task.TargetType != "control" || task.TargetID != "c1" {
		t.Fatalf("targetObject fallback: %+v", task)
	}
	e.sim.InjectFault(hpsim.Fault{PathPrefix: "/v1/tasks/odd/proof", StatusCode: 200, Body: `[{"id":"p","filename":"f","size":"627","version":0,
		"uploadedOn":"2024-02-24T12:01:57+0000","sourceModifiedOn":"2023-05-12T14:16:27.4176600+00:00"}]`})
	proofs, err := hp.ListTaskProof(ctx(t), "odd", "")
	if err != nil || len(proofs) != 1 || proofs[0].Size != 627 || !proofs[0].UploadedOn.Equal(want[2]) || !proofs[0].SourceModifiedOn.Equal(want[1]) {
		t.Fatalf("proof = %+v, %v", proofs, err)
	}
}

func TestUploadIsStreamed(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 128 MiB over loopback")
	}
	e := newEnv(t, hpsim.Options{})
	hp := e.integration(t)
	ctx := ctx(t)
	taskID := e.sim.SeededTaskIDs()[0]
	if _, err := hp.Me(ctx); err != nil { // warm up: token, connections
		t.Fatal(err)
	}
	const size = 64 << 20
	h := sha256.New()
	if _, err := io.Copy(h, &genReader{n: size, state: 88172645463325252}); err != nil {
		t.Fatal(err)
	}
	var want [32]byte
	copy(want[:], h.Sum(nil))

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	up, err := hp.UploadTaskProof(ctx, taskID, hyperproof.ProofUpload{Filename: "big.bin", ContentType: "application/octet-stream", Body: &genReader{n: size, state: 88172645463325252}, SourceFileID: "big"})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("upload of %d MiB allocated %.2f MiB (client and simulator together)", size>>20, float64(alloc)/(1<<20))
	if alloc > 16<<20 {
		t.Fatalf("upload allocated %d bytes: not streamed", alloc)
	}
	if up.Size != size {
		t.Fatalf("size %d", up.Size)
	}
	runtime.ReadMemStats(&before)
	got := download(t, hp, up.ID)
	runtime.ReadMemStats(&after)
	if got != want {
		t.Fatal("downloaded bytes differ")
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Fatalf("download allocated %d bytes: not streamed", alloc)
	}
}

// failingReader fails after a few bytes; the upload must fail cleanly.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	f.n--
	p[0] = 'x'
	return 1, nil
}

func TestUploadBodyErrorFailsTheUpload(t *testing.T) {
	e := newEnv(t, hpsim.Options{})
	hp := e.integration(t)
	taskID := e.sim.SeededTaskIDs()[0]
	_, err := hp.UploadTaskProof(ctx(t), taskID, hyperproof.ProofUpload{Filename: "x.bin", Body: &failingReader{n: 10}})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("err = %v", err)
	}
	list, err := hp.ListTaskProof(ctx(t), taskID, "")
	if err != nil || len(list) != 0 {
		t.Fatalf("a failed upload left proof: %+v %v", list, err)
	}
}
