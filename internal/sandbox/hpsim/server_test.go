package hpsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"hpsync/internal/sandbox/seed"
)

type fixture struct {
	t   *testing.T
	sim *Server
	srv *httptest.Server
}

func start(t *testing.T, opts Options) *fixture {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	var logMu sync.Mutex
	var logs []string
	opts.Logf = func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		logs = append(logs, fmt.Sprintf(format, args...))
	}
	sim, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() {
		srv.Close()
		sim.Close()
		logMu.Lock()
		defer logMu.Unlock()
		for _, l := range logs {
			for _, secret := range []string{seed.IntegrationClientSecret, seed.CreatorClientSecret, "wrong-secret"} {
				if strings.Contains(l, secret) {
					t.Errorf("log line carries a secret: %s", l)
				}
			}
		}
	})
	return &fixture{t: t, sim: sim, srv: srv}
}

func (f *fixture) token(id, secret string) string {
	f.t.Helper()
	resp, err := http.PostForm(f.srv.URL+"/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}})
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if resp.StatusCode != 200 {
		f.t.Fatalf("token: %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" || body.TokenType != "Bearer" || body.ExpiresIn < 1 {
		f.t.Fatalf("token body %+v %v", body, err)
	}
	return body.AccessToken
}

// call sends a request and decodes a JSON answer into out (when not nil).
func (f *fixture) call(tok, method, path string, body io.Reader, contentType string, out any) (int, http.Header, []byte) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(raw, out); err != nil {
			f.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return resp.StatusCode, resp.Header, raw
}

func (f *fixture) jsonCall(tok, method, path string, in, out any) (int, []byte) {
	f.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	status, _, raw := f.call(tok, method, path, body, "application/json", out)
	return status, raw
}

func wantError(t *testing.T, status int, raw []byte, want int) {
	t.Helper()
	if status != want {
		t.Fatalf("status %d, want %d: %s", status, want, raw)
	}
	var e struct {
		StatusCode int    `json:"statusCode"`
		Message    string `json:"message"`
	}
	if err := json.Unmarshal(raw, &e); err != nil || e.StatusCode != want || e.Message == "" {
		t.Fatalf("error body %s", raw)
	}
}

var tsRe = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`)

func TestTokenEndpoint(t *testing.T) {
	f := start(t, Options{TokenTTL: time.Second})
	// Form credentials.
	tok := f.token(seed.CreatorClientID, seed.CreatorClientSecret)
	var me map[string]any
	if s, _, raw := f.call(tok, "GET", "/v1/users/me", nil, "", &me); s != 200 || me["id"] != seed.CreatorUserID || me["email"] != seed.CreatorEmail {
		t.Fatalf("me = %d %s", s, raw)
	}
	// HTTP basic client authentication.
	req, _ := http.NewRequest("POST", f.srv.URL+"/oauth/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(seed.IntegrationClientID, seed.IntegrationClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("basic auth: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	// Wrong secret.
	resp, err = http.PostForm(f.srv.URL+"/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {seed.IntegrationClientID}, "client_secret": {"wrong-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	var oe map[string]string
	json.NewDecoder(resp.Body).Decode(&oe)
	resp.Body.Close()
	if resp.StatusCode != 401 || oe["error"] != "invalid_client" || oe["error_description"] == "" {
		t.Fatalf("wrong secret: %d %v", resp.StatusCode, oe)
	}
	// Wrong grant.
	resp, _ = http.PostForm(f.srv.URL+"/oauth/token", url.Values{"grant_type": {"password"}, "client_id": {seed.IntegrationClientID}, "client_secret": {seed.IntegrationClientSecret}})
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("password grant: %d", resp.StatusCode)
	}
	// Missing, garbage and expired tokens.
	s, _, raw := f.call("", "GET", "/v1/users", nil, "", nil)
	wantError(t, s, raw, 401)
	s, _, raw = f.call("garbage", "GET", "/v1/users", nil, "", nil)
	wantError(t, s, raw, 401)
	time.Sleep(1050 * time.Millisecond)
	s, _, raw = f.call(tok, "GET", "/v1/users", nil, "", nil)
	wantError(t, s, raw, 401)
	// A fresh token works; revocation kills it.
	tok = f.token(seed.CreatorClientID, seed.CreatorClientSecret)
	if s, _, _ := f.call(tok, "GET", "/v1/users", nil, "", nil); s != 200 {
		t.Fatalf("fresh token: %d", s)
	}
	f.sim.RevokeTokens()
	s, _, raw = f.call(tok, "GET", "/v1/users", nil, "", nil)
	wantError(t, s, raw, 401)
}

func TestSeed(t *testing.T) {
	f := start(t, Options{})
	other, err := New(Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ids := f.sim.SeededTaskIDs()
	if len(ids) != 3 || slices.ContainsFunc(ids, func(id string) bool { return slices.Contains(other.SeededTaskIDs(), id) }) {
		t.Fatalf("seeded ids not fresh: %v vs %v", ids, other.SeededTaskIDs())
	}
	tok := f.token(seed.IntegrationClientID, seed.IntegrationClientSecret)
	var statuses []map[string]any
	f.jsonCall(tok, "GET", "/v1/taskstatuses", nil, &statuses)
	names := map[string]string{}
	for _, s := range statuses {
		names[s["type"].(string)] = s["name"].(string)
	}
	if len(statuses) != 5 || names["notStarted"] != "Backlog" || names["inProgress"] != "Doing" || names["submitted"] != "Ready for review" || names["closed"] != "Done" || names["cancelled"] != "Canceled" {
		t.Fatalf("statuses %v", names)
	}
	var notStarted string
	for _, s := range statuses {
		if s["type"] == "notStarted" {
			notStarted = s["id"].(string)
		}
	}
	for _, id := range ids {
		var task map[string]any
		if s, raw := f.jsonCall(tok, "GET", "/v1/tasks/"+id, nil, &task); s != 200 {
			t.Fatalf("%d %s", s, raw)
		}
		if task["targetId"] != seed.ControlID || task["targetType"] != "control" || task["assigneeId"] != seed.AssigneeUserID ||
			task["createdBy"] != seed.CreatorUserID || task["taskStatusId"] != notStarted || task["orgId"] != seed.OrgID ||
			!tsRe.MatchString(task["updatedOn"].(string)) || !tsRe.MatchString(task["createdOn"].(string)) {
			t.Fatalf("seeded task %v", task)
		}
	}
	var users []map[string]any
	f.jsonCall(tok, "GET", "/v1/users", nil, &users)
	if len(users) != 2 || users[0]["email"] != seed.CreatorEmail || users[1]["email"] != seed.AssigneeEmail || users[1]["givenName"] != seed.AssigneeGiven {
		t.Fatalf("users %v", users)
	}
	var me map[string]any
	f.jsonCall(tok, "GET", "/v1/users/me", nil, &me)
	if me["id"] != IntegrationAppUserID {
		t.Fatalf("me %v", me)
	}
}

func TestTaskValidationAndIdentity(t *testing.T) {
	f := start(t, Options{})
	tok := f.token(seed.IntegrationClientID, seed.IntegrationClientSecret)
	target := map[string]string{"objectType": "control", "objectId": seed.ControlID}
	for _, body := range []any{
		map[string]any{"targetObject": target},
		map[string]any{"title": "  ", "targetObject": target},
		map[string]any{"title": "x"},
		map[string]any{"title": "x", "targetObject": map[string]string{"objectType": "risk", "objectId": "r"}},
		map[string]any{"title": "x", "targetObject": map[string]string{"objectType": "control", "objectId": "nope"}},
		map[string]any{"title": "x", "targetObject": target, "priority": "urgent"},
		map[string]any{"title": "x", "targetObject": target, "assigneeId": IntegrationAppUserID},
		map[string]any{"title": strings.Repeat("x", 251), "targetObject": target},
		"not an object",
	} {
		s, raw := f.jsonCall(tok, "POST", "/v1/tasks", body, nil)
		wantError(t, s, raw, 400)
	}
	var task map[string]any
	s, raw := f.jsonCall(tok, "POST", "/v1/tasks", map[string]any{"title": "x", "targetObject": map[string]string{"objectType": "label", "objectId": seed.LabelID}}, &task)
	if s != 201 || task["createdBy"] != IntegrationAppUserID || task["updatedBy"] != IntegrationAppUserID || task["targetType"] != "label" {
		t.Fatalf("create %d %s", s, raw)
	}
	id := task["id"].(string)
	s, raw = f.jsonCall(tok, "PATCH", "/v1/tasks/"+id, map[string]any{"taskStatusId": "nope"}, nil)
	wantError(t, s, raw, 400)
	s, raw = f.jsonCall(tok, "PATCH", "/v1/tasks/"+id, map[string]any{"title": 12}, nil)
	wantError(t, s, raw, 400)
	s, raw = f.jsonCall(tok, "PATCH", "/v1/tasks/missing", map[string]any{"title": "y"}, nil)
	wantError(t, s, raw, 404)
	s, raw = f.jsonCall(tok, "GET", "/v1/tasks/missing", nil, nil)
	wantError(t, s, raw, 404)
	s, raw = f.jsonCall(tok, "GET", "/v1/nothing", nil, nil)
	wantError(t, s, raw, 404)

	casey := f.token(seed.CreatorClientID, seed.CreatorClientSecret)
	var patched map[string]any
	s, raw = f.jsonCall(casey, "PATCH", "/v1/tasks/"+id, map[string]any{"dueDate": "2030-01-02T03:04:05+0000", "assigneeId": seed.AssigneeUserID}, &patched)
	if s != 200 || patched["updatedBy"] != seed.CreatorUserID || patched["createdBy"] != IntegrationAppUserID || patched["dueDate"] != "2030-01-02T03:04:05.000000Z" ||
		patched["updatedOn"].(string) <= task["updatedOn"].(string) || patched["title"] != "x" {
		t.Fatalf("patch %d %s", s, raw)
	}
}

func TestCommentsAndProofDoNotBumpUpdatedOn(t *testing.T) {
	f := start(t, Options{})
	tok := f.token(seed.IntegrationClientID, seed.IntegrationClientSecret)
	id := f.sim.SeededTaskIDs()[0]
	var before map[string]any
	f.jsonCall(tok, "GET", "/v1/tasks/"+id, nil, &before)

	var c map[string]any
	s, raw := f.jsonCall(tok, "POST", "/v1/tasks/"+id+"/comments", map[string]any{
		"commentTextFormatted": "<p>hi <b>there</b></p>", "isInternalComment": false, "objectType": "task", "objectId": id,
		"sourceCommentId": "sn:1", "sourceUpdatedOn": "2025-09-20T08:14:03Z",
	}, &c)
	if s != 201 {
		t.Fatalf("%d %s", s, raw)
	}
	for _, k := range []string{"id", "orgId", "objectType", "objectId", "commentTextFormatted", "commentPlainText", "isInternal", "sourceCommentId", "createdBy", "createdOn", "updatedOn"} {
		if _, ok := c[k]; !ok {
			t.Errorf("comment lacks %s: %s", k, raw)
		}
	}
	if c["commentPlainText"] != "hi there" || c["createdBy"] != IntegrationAppUserID || c["sourceCommentId"] != "sn:1" {
		t.Fatalf("comment %s", raw)
	}
	for _, body := range []map[string]any{{}, {"commentTextFormatted": ""}, {"commentTextFormatted": "x", "objectId": "other"}, {"commentTextFormatted": "x", "objectType": "control"}} {
		s, raw := f.jsonCall(tok, "POST", "/v1/tasks/"+id+"/comments", body, nil)
		wantError(t, s, raw, 400)
	}
	s, raw = f.jsonCall(tok, "POST", "/v1/tasks/missing/comments", map[string]any{"commentTextFormatted": "x"}, nil)
	wantError(t, s, raw, 404)

	s, p := upload(t, f, tok, "/v1/tasks/"+id+"/proof", "a.txt", "text/plain", []byte("abc"), map[string]string{"hp-proof-source-file-id": "att-1"})
	if s != 201 {
		t.Fatalf("upload %d %v", s, p)
	}
	var after map[string]any
	f.jsonCall(tok, "GET", "/v1/tasks/"+id, nil, &after)
	if after["updatedOn"] != before["updatedOn"] {
		t.Fatalf("updatedOn changed: %v -> %v", before["updatedOn"], after["updatedOn"])
	}
	var list []map[string]any
	f.jsonCall(tok, "PUT", "/v1/tasks/filter", map[string]any{"modifiedAfter": before["updatedOn"], "taskIds": []string{id}}, &list)
	if len(list) != 0 {
		t.Fatalf("filter sees the task: %v", list)
	}
}

func upload(t *testing.T, f *fixture, tok, path, name, ctype string, data []byte, fields map[string]string) (int, map[string]any) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="proof"; filename=%q`, name))
	if ctype != "" {
		h.Set("Content-Type", ctype)
	}
	pw, _ := mw.CreatePart(h)
	pw.Write(data)
	for k, v := range fields { // fields after the file must work too
		mw.WriteField(k, v)
	}
	mw.Close()
	var out map[string]any
	s, _, raw := f.call(tok, "POST", path, &buf, mw.FormDataContentType(), &out)
	if s/100 != 2 {
		out = map[string]any{"raw": string(raw)}
	}
	return s, out
}

func TestProofEndpoints(t *testing.T) {
	f := start(t, Options{})
	tok := f.token(seed.CreatorClientID, seed.CreatorClientSecret)
	id := f.sim.SeededTaskIDs()[1]
	s, p := upload(t, f, tok, "/v1/tasks/"+id+"/proof", "Ruleset.PDF", "application/pdf", []byte("%PDF"), map[string]string{
		"hp-proof-source-id": "sc_task:1", "hp-proof-source-file-id": "att-1", "hp-proof-source-modified-on": "2024-02-24T12:01:57+0000",
	})
	if s != 201 || p["filename"] != "Ruleset.PDF" || p["fileExtension"] != "pdf" || p["size"] != float64(4) || p["version"] != float64(0) ||
		p["sourceId"] != "sc_task:1" || p["sourceFileId"] != "att-1" || p["sourceModifiedOn"] != "2024-02-24T12:01:57.000000Z" ||
		p["createdBy"] != seed.CreatorUserID || p["status"] != "active" || !tsRe.MatchString(p["uploadedOn"].(string)) {
		t.Fatalf("upload %d %v", s, p)
	}
	// Bad uploads.
	if s, _, raw := f.call(tok, "POST", "/v1/tasks/"+id+"/proof", strings.NewReader("x"), "text/plain", nil); s != 400 {
		t.Fatalf("non-multipart: %d %s", s, raw)
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("hp-proof-source-file-id", "x")
	mw.Close()
	s, _, raw := f.call(tok, "POST", "/v1/tasks/"+id+"/proof", &buf, mw.FormDataContentType(), nil)
	wantError(t, s, raw, 400)
	if s, _ := upload(t, f, tok, "/v1/tasks/"+id+"/proof", "a", "", nil, map[string]string{"hp-proof-source-modified-on": "soon"}); s != 400 {
		t.Fatalf("bad modified-on: %d", s)
	}
	if s, _ := upload(t, f, tok, "/v1/controls/nope/proof", "a", "", nil, nil); s != 404 {
		t.Fatalf("unknown control: %d", s)
	}
	if s, _ := upload(t, f, tok, "/v1/labels/nope/proof", "a", "", nil, nil); s != 404 {
		t.Fatalf("unknown label: %d", s)
	}
	if s, _ := upload(t, f, tok, "/v1/tasks/nope/proof", "a", "", nil, nil); s != 404 {
		t.Fatalf("unknown task: %d", s)
	}
	// Only the good upload left a file behind.
	entries, _ := os.ReadDir(f.sim.dataDir)
	if len(entries) != 1 {
		t.Fatalf("%d files in the data dir", len(entries))
	}

	// Download: stored content type and bytes.
	status, h, body := f.call(tok, "GET", "/v1/proof/"+p["id"].(string)+"/contents", nil, "", nil)
	if status != 200 || h.Get("Content-Type") != "application/pdf" || string(body) != "%PDF" || !strings.Contains(h.Get("Content-Disposition"), "Ruleset.PDF") {
		t.Fatalf("download %d %v %q", status, h, body)
	}
	s, _, raw = f.call(tok, "GET", "/v1/proof/nope/contents", nil, "", nil)
	wantError(t, s, raw, 404)

	// Task proof list, filtered by source file id.
	upload(t, f, tok, "/v1/tasks/"+id+"/proof", "b.txt", "text/plain", []byte("b"), map[string]string{"hp-proof-source-file-id": "att-2"})
	var list []map[string]any
	f.jsonCall(tok, "GET", "/v1/tasks/"+id+"/proof", nil, &list)
	if len(list) != 2 {
		t.Fatalf("task proof %v", list)
	}
	f.jsonCall(tok, "GET", "/v1/tasks/"+id+"/proof?sourceFileId=att-2", nil, &list)
	if len(list) != 1 || list[0]["filename"] != "b.txt" {
		t.Fatalf("by source file id %v", list)
	}
}

func TestProofPaging(t *testing.T) {
	f := start(t, Options{})
	tok := f.token(seed.IntegrationClientID, seed.IntegrationClientSecret)
	for i := 0; i < 30; i++ {
		if s, p := upload(t, f, tok, "/v1/controls/"+seed.ControlID+"/proof", fmt.Sprintf("c%02d", i), "", []byte{byte(i)}, nil); s != 201 {
			t.Fatalf("%d %v", s, p)
		}
	}
	upload(t, f, tok, "/v1/labels/"+seed.LabelID+"/proof", "l", "", nil, nil)
	type page struct {
		Data      []map[string]any `json:"data"`
		NextToken *string          `json:"nextToken"`
	}
	var pg page
	base := "/v1/proof?objectType=control&objectId=" + seed.ControlID
	f.jsonCall(tok, "GET", base, nil, &pg)
	if len(pg.Data) != 25 || pg.NextToken == nil {
		t.Fatalf("default page: %d %v", len(pg.Data), pg.NextToken)
	}
	var names []string
	next := ""
	for pages := 0; ; pages++ {
		q := base + "&limit=7"
		if next != "" {
			q += "&nextToken=" + url.QueryEscape(next)
		}
		pg = page{}
		if s, raw := f.jsonCall(tok, "GET", q, nil, &pg); s != 200 {
			t.Fatalf("%d %s", s, raw)
		}
		for _, p := range pg.Data {
			names = append(names, p["filename"].(string))
		}
		if pg.NextToken == nil {
			if pages != 4 {
				t.Fatalf("%d pages", pages+1)
			}
			break
		}
		next = *pg.NextToken
	}
	if len(names) != 30 || names[0] != "c00" || names[29] != "c29" {
		t.Fatalf("names %v", names)
	}
	for _, q := range []string{base + "&limit=501", base + "&limit=0", base + "&limit=x", base + "&nextToken=garbage",
		"/v1/proof?objectType=label&objectId=" + seed.LabelID + "&nextToken=" + url.QueryEscape(next)} {
		s, raw := f.jsonCall(tok, "GET", q, nil, nil)
		wantError(t, s, raw, 400)
	}
	f.jsonCall(tok, "GET", "/v1/proof?limit=500", nil, &pg)
	if len(pg.Data) != 31 || pg.NextToken != nil {
		t.Fatalf("all proof: %d", len(pg.Data))
	}
}

func TestFaultsAndClose(t *testing.T) {
	dir := t.TempDir()
	sim, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()
	f := &fixture{t: t, sim: sim, srv: srv}
	tok := f.token(seed.IntegrationClientID, seed.IntegrationClientSecret)
	sim.InjectFault(RateLimitFault(3))
	sim.InjectFault(Fault{Method: "GET", PathPrefix: "/v1/users", StatusCode: 503, Header: http.Header{"Retry-After": {"2"}}, Times: 2})
	s, _, raw := f.call(tok, "GET", "/v1/users", nil, "", nil)
	if s != 429 || !strings.Contains(string(raw), "Try again in 3 seconds") {
		t.Fatalf("%d %s", s, raw)
	}
	for i := 0; i < 2; i++ {
		if s, h, _ := f.call(tok, "GET", "/v1/users", nil, "", nil); s != 503 || h.Get("Retry-After") != "2" {
			t.Fatalf("fault %d: %d", i, s)
		}
	}
	if s, _, _ := f.call(tok, "GET", "/v1/users", nil, "", nil); s != 200 {
		t.Fatalf("after faults: %d", s)
	}
	data := sim.dataDir
	if _, err := os.Stat(data); err != nil || data == dir {
		t.Fatal("no temporary data dir")
	}
	sim.Close()
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatal("temporary data dir kept after Close")
	}
	if s, _, _ := f.call(tok, "GET", "/v1/users", nil, "", nil); s != 503 {
		t.Fatalf("after Close: %d", s)
	}
}

func TestConcurrentUse(t *testing.T) {
	f := start(t, Options{})
	id := f.sim.SeededTaskIDs()[0]
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := f.token(seed.IntegrationClientID, seed.IntegrationClientSecret)
			for i := 0; i < 10; i++ {
				f.jsonCall(tok, "POST", "/v1/tasks/"+id+"/comments", map[string]any{"commentTextFormatted": "same text"}, nil)
				f.jsonCall(tok, "PATCH", "/v1/tasks/"+id, map[string]any{"priority": "low"}, nil)
				upload(t, f, tok, "/v1/tasks/"+id+"/proof", "x", "", []byte("x"), nil)
				f.jsonCall(tok, "PUT", "/v1/tasks/filter", map[string]any{}, nil)
			}
		}()
	}
	wg.Wait()
	tok := f.token(seed.IntegrationClientID, seed.IntegrationClientSecret)
	var comments []map[string]any
	f.jsonCall(tok, "GET", "/v1/tasks/"+id+"/comments", nil, &comments)
	if len(comments) != 80 {
		t.Fatalf("%d comments (identical texts must not be merged)", len(comments))
	}
	for i := 1; i < len(comments); i++ {
		if comments[i]["createdOn"].(string) <= comments[i-1]["createdOn"].(string) {
			t.Fatal("comments not oldest first")
		}
	}
}
