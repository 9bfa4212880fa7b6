package servicenow

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hpsync/internal/sandbox/seed"
	"hpsync/internal/sandbox/snsim"
)

// testClock is a settable clock for the simulator.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

type simEnv struct {
	sim      *snsim.Server
	srv      *httptest.Server
	client   *Client
	clock    *testClock
	requests atomic.Int64
}

var t0 = time.Date(2025, 9, 20, 8, 14, 3, 0, time.UTC)

func newSimEnv(t *testing.T, opts snsim.Options) *simEnv {
	t.Helper()
	e := &simEnv{clock: &testClock{t: t0}}
	if opts.Now == nil {
		opts.Now = e.clock.Now
	}
	sim, err := snsim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.sim = sim
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.requests.Add(1)
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		e.srv.Close()
		if err := sim.Close(); err != nil {
			t.Errorf("sim.Close: %v", err)
		}
	})
	e.client = e.newClient(t, seed.SNIntegrationUser, seed.SNIntegrationPassword, nil)
	return e
}

func (e *simEnv) newClient(t *testing.T, user, pass string, rt http.RoundTripper) *Client {
	t.Helper()
	var hc *http.Client
	if rt != nil {
		hc = &http.Client{Transport: rt}
	}
	c, err := New(Config{InstanceURL: e.srv.URL, Username: user, Password: pass, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func asAPIError(t *testing.T, err error) *APIError {
	t.Helper()
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an *APIError", err, err)
	}
	return ae
}

// ---------------------------------------------------------------------------

func TestNewValidates(t *testing.T) {
	for _, c := range []Config{
		{InstanceURL: "", Username: "u", Password: "p"},
		{InstanceURL: "ftp://x.example.com", Username: "u", Password: "p"},
		{InstanceURL: "https://", Username: "u", Password: "p"},
		{InstanceURL: "https://admin:hunter2secret@x.example.com", Username: "u", Password: "p"},
		{InstanceURL: "https://x.example.com?x=1", Username: "u", Password: "p"},
		{InstanceURL: "https://x.example.com", Username: "", Password: "p"},
		{InstanceURL: "https://x.example.com", Username: "u", Password: ""},
		{InstanceURL: "://bad hunter2secret", Username: "u", Password: "p"},
	} {
		_, err := New(c)
		if err == nil {
			t.Errorf("New(%q) accepted", c.InstanceURL)
			continue
		}
		if strings.Contains(err.Error(), "hunter2secret") {
			t.Errorf("error leaks credentials: %v", err)
		}
	}
	c, err := New(Config{InstanceURL: "https://x.example.com/", Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.endpoint("/api/now/table/sc_task", nil); got != "https://x.example.com/api/now/table/sc_task" {
		t.Errorf("endpoint %q", got)
	}
}

func TestTaskLifecycle(t *testing.T) {
	e := newSimEnv(t, snsim.Options{})
	c := e.client
	alice, err := c.FindUserByEmail(ctx(t), strings.ToUpper(seed.AssigneeEmail))
	if err != nil || alice == nil {
		t.Fatalf("FindUserByEmail: %v %v", alice, err)
	}
	if alice.UserName != seed.SNAssigneeUser || alice.Name != "Alice Assignee" || !alice.Active || alice.SysID != snsim.UserSysID(seed.SNAssigneeUser) {
		t.Errorf("alice = %+v", alice)
	}
	if u, err := c.FindUserByEmail(ctx(t), "nobody@example.com"); u != nil || err != nil {
		t.Errorf("unknown e-mail: %v %v", u, err)
	}
	if u, err := c.FindUserByUserName(ctx(t), "casey.creator"); err != nil || u == nil || u.Email != seed.CreatorEmail {
		t.Errorf("FindUserByUserName: %+v %v", u, err)
	}
	if u, err := c.GetUser(ctx(t), alice.SysID); err != nil || u.Email != seed.AssigneeEmail {
		t.Errorf("GetUser: %+v %v", u, err)
	}

	created, err := c.CreateTask(ctx(t), "sc_task", NewTask{
		ShortDescription:   "Provide Q3 firewall rule review",
		Description:        "Ünïcødé ✓ and \"quotes\" <b>kept</b>",
		AssignedTo:         alice.SysID,
		DueDate:            "2025-10-01 17:00:00",
		CorrelationID:      "hyperproof:task-1",
		CorrelationDisplay: "Hyperproof",
	})
	if err != nil {
		t.Fatal(err)
	}
	if created.Table != "sc_task" || created.Number != "SCTASK0010001" || created.State != "1" || !created.Active ||
		created.AssignedTo != alice.SysID || created.DueDate != "2025-10-01 17:00:00" || created.ModCount != 0 ||
		!created.UpdatedOn.Equal(t0) || created.UpdatedOn.Location() != time.UTC || created.UpdatedBy != seed.SNIntegrationUser ||
		created.Description != "Ünïcødé ✓ and \"quotes\" <b>kept</b>" || created.CorrelationDisplay != "Hyperproof" {
		t.Errorf("created = %+v", created)
	}

	got, err := c.GetTask(ctx(t), "sc_task", created.SysID)
	if err != nil || got != created {
		t.Errorf("GetTask = %+v, %v; want %+v", got, err, created)
	}

	found, err := c.FindTaskByCorrelation(ctx(t), "sc_task", "hyperproof:task-1")
	if err != nil || found == nil || found.SysID != created.SysID {
		t.Errorf("FindTaskByCorrelation = %+v, %v", found, err)
	}
	if found, err := c.FindTaskByCorrelation(ctx(t), "sc_task", "hyperproof:none"); found != nil || err != nil {
		t.Errorf("no match = %+v, %v", found, err)
	}

	e.clock.Set(t0.Add(5 * time.Second))
	up, err := c.UpdateTask(ctx(t), "sc_task", created.SysID, map[string]string{"state": "3", "assigned_to": ""})
	if err != nil {
		t.Fatal(err)
	}
	if up.State != "3" || up.Active || up.AssignedTo != "" || up.ModCount != 1 || !up.UpdatedOn.Equal(t0.Add(5*time.Second)) {
		t.Errorf("updated = %+v", up)
	}

	_, err = c.GetTask(ctx(t), "sc_task", "0123456789abcdef0123456789abcdef")
	if ae := asAPIError(t, err); ae.StatusCode != 404 || ae.Message != "No Record found" || ae.Retryable() {
		t.Errorf("404 = %+v", ae)
	}
	_, err = c.UpdateTask(ctx(t), "sc_task", "0123456789abcdef0123456789abcdef", map[string]string{"state": "2"})
	if ae := asAPIError(t, err); ae.StatusCode != 404 {
		t.Errorf("PATCH 404 = %+v", ae)
	}
	_, err = c.GetTask(ctx(t), "incident", created.SysID)
	if ae := asAPIError(t, err); ae.StatusCode != 400 || ae.Message != "Invalid table incident" || ae.Detail != "Table incident does not exist" {
		t.Errorf("400 = %+v", ae)
	}
	if _, err := c.FindTaskByCorrelation(ctx(t), "sc_task", "a^ORcorrelation_idISNOTEMPTY"); err == nil {
		t.Error("a ^ in a query value was accepted")
	}
}

func TestJournal(t *testing.T) {
	e := newSimEnv(t, snsim.Options{MaxPageSize: 2})
	c := e.client
	task, err := c.CreateTask(ctx(t), "incident_task", NewTask{ShortDescription: "x", CorrelationID: "hyperproof:j"})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Set(t0.Add(time.Second))
	texts := []string{"first", "second line 1\nline 2", "third", "same text", "same text"}
	for _, txt := range texts {
		if err := c.AddComment(ctx(t), "incident_task", task.SysID, txt); err != nil {
			t.Fatal(err)
		}
	}
	// A work note written by someone else, a second later.
	alice := e.newClient(t, seed.SNAssigneeUser, seed.SNAssigneePassword, nil)
	e.clock.Set(t0.Add(2 * time.Second))
	if _, err := alice.UpdateTask(ctx(t), "incident_task", task.SysID, map[string]string{"work_notes": "internal"}); err != nil {
		t.Fatal(err)
	}

	// The record reads back no journal text, but every write counted.
	got, err := c.GetTask(ctx(t), "incident_task", task.SysID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ModCount != 6 || got.UpdatedBy != seed.SNAssigneeUser {
		t.Errorf("after journal writes: %+v", got)
	}

	before := e.requests.Load()
	all, err := c.ListJournal(ctx(t), "incident_task", task.SysID, nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if pages := e.requests.Load() - before; pages != 3 {
		t.Errorf("read %d pages, want 3 (6 rows, page cap 2)", pages)
	}
	if len(all) != 6 {
		t.Fatalf("%d entries, want 6: %+v", len(all), all)
	}
	seen := map[string]bool{}
	for i, j := range all {
		if seen[j.SysID] {
			t.Errorf("entry %s twice", j.SysID)
		}
		seen[j.SysID] = true
		if j.ElementID != task.SysID || j.Table != "incident_task" {
			t.Errorf("entry %d: %+v", i, j)
		}
		if i > 0 && (j.CreatedOn.Before(all[i-1].CreatedOn) || (j.CreatedOn.Equal(all[i-1].CreatedOn) && j.SysID < all[i-1].SysID)) {
			t.Errorf("entries out of order at %d", i)
		}
	}
	if last := all[5]; last.Element != "work_notes" || last.Value != "internal" || last.CreatedBy != seed.SNAssigneeUser || !last.CreatedOn.Equal(t0.Add(2*time.Second)) {
		t.Errorf("work note = %+v", last)
	}
	var comments []string
	for _, j := range all[:5] {
		if j.Element != "comments" || j.CreatedBy != seed.SNIntegrationUser {
			t.Errorf("comment = %+v", j)
		}
		comments = append(comments, j.Value)
	}
	// Five entries share one second; the text order is not guaranteed by
	// ServiceNow within a second, but every one must be there exactly once.
	if strings.Join(sortedCopy(comments), "|") != strings.Join(sortedCopy(texts), "|") {
		t.Errorf("comments = %q", comments)
	}

	onlyNotes, err := c.ListJournal(ctx(t), "incident_task", task.SysID, []string{"work_notes"}, time.Time{})
	if err != nil || len(onlyNotes) != 1 {
		t.Errorf("work_notes only: %d %v", len(onlyNotes), err)
	}
	since, err := c.ListJournal(ctx(t), "incident_task", task.SysID, nil, t0.Add(2*time.Second+500*time.Millisecond))
	if err != nil || len(since) != 1 || since[0].Value != "internal" {
		t.Errorf("since: %+v %v", since, err)
	}
	if err := c.AddComment(ctx(t), "incident_task", task.SysID, "  "); err == nil {
		t.Error("blank comment accepted")
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestPagination_ListTasksUpdatedSincePagesAndSameSecond(t *testing.T) {
	e := newSimEnv(t, snsim.Options{MaxPageSize: 2})
	c := e.client
	mk := func(at time.Time, corr string) Task {
		e.clock.Set(at)
		task, err := c.CreateTask(ctx(t), "sc_task", NewTask{ShortDescription: "t", CorrelationID: corr})
		if err != nil {
			t.Fatal(err)
		}
		return task
	}
	mk(t0.Add(-time.Second), "hyperproof:old1")
	mk(t0.Add(-time.Second), "hyperproof:old2")
	want := map[string]bool{}
	for i := 0; i < 3; i++ {
		want[mk(t0, fmt.Sprintf("hyperproof:same%d", i)).SysID] = true
	}
	mk(t0, "other:same") // same second, not ours
	for i := 0; i < 4; i++ {
		want[mk(t0.Add(time.Second), fmt.Sprintf("hyperproof:later%d", i)).SysID] = true
	}

	before := e.requests.Load()
	// A cursor inside the boundary second still gets the whole second.
	got, err := c.ListTasksUpdatedSince(ctx(t), "sc_task", t0.Add(300*time.Millisecond), "hyperproof:")
	if err != nil {
		t.Fatal(err)
	}
	if pages := e.requests.Load() - before; pages != 4 {
		t.Errorf("read %d pages, want 4 (7 rows, page cap 2)", pages)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d tasks, want %d", len(got), len(want))
	}
	seen := map[string]bool{}
	for i, task := range got {
		if !want[task.SysID] || seen[task.SysID] {
			t.Errorf("row %d: %s unexpected or repeated", i, task.CorrelationID)
		}
		seen[task.SysID] = true
		if i > 0 {
			p := got[i-1]
			if task.UpdatedOn.Before(p.UpdatedOn) || (task.UpdatedOn.Equal(p.UpdatedOn) && task.SysID <= p.SysID) {
				t.Errorf("rows %d,%d not in (sys_updated_on, sys_id) order", i-1, i)
			}
		}
	}

	// Only the later second.
	later, err := c.ListTasksUpdatedSince(ctx(t), "sc_task", t0.Add(time.Second), "hyperproof:")
	if err != nil || len(later) != 4 {
		t.Errorf("later: %d %v", len(later), err)
	}
	// No prefix, no time: everything.
	everything, err := c.ListTasksUpdatedSince(ctx(t), "sc_task", time.Time{}, "")
	if err != nil || len(everything) != 10 {
		t.Errorf("everything: %d %v", len(everything), err)
	}
	none, err := c.ListTasksUpdatedSince(ctx(t), "sc_task", t0.Add(time.Hour), "hyperproof:")
	if err != nil || none == nil || len(none) != 0 {
		t.Errorf("none: %v %v", none, err)
	}
}

// noBodyTransport asks the instance not to send the created record back.
type noBodyTransport struct{ base http.RoundTripper }

func (n noBodyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-no-response-body", "true")
	return n.base.RoundTrip(r)
}

func TestCreateWithEmptyBodyAndLocation(t *testing.T) {
	e := newSimEnv(t, snsim.Options{})
	c := e.newClient(t, seed.SNIntegrationUser, seed.SNIntegrationPassword, noBodyTransport{http.DefaultTransport})
	before := e.requests.Load()
	task, err := c.CreateTask(ctx(t), "problem_task", NewTask{ShortDescription: "x", CorrelationID: "hyperproof:nb"})
	if err != nil {
		t.Fatal(err)
	}
	if n := e.requests.Load() - before; n != 2 {
		t.Errorf("%d requests, want POST + GET", n)
	}
	if task.Number != "PTASK0010001" || task.State != "151" || task.CorrelationID != "hyperproof:nb" || len(task.SysID) != 32 {
		t.Errorf("task = %+v", task)
	}

	// The same for an attachment upload.
	att, err := c.UploadAttachment(ctx(t), "problem_task", task.SysID, "a.txt", "text/plain", strings.NewReader("abc"))
	if err != nil {
		t.Fatal(err)
	}
	if att.FileName != "a.txt" || att.SizeBytes != 3 || att.TableSysID != task.SysID {
		t.Errorf("attachment = %+v", att)
	}
}

func TestUpdateWithEmptyBody(t *testing.T) {
	const id = "26d1744d47603110d737cd9bd36d436b"
	var patched, got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPatch && r.URL.Path == "/api/now/table/sc_task/"+id:
			patched.Add(1)
			b, _ := io.ReadAll(r.Body)
			if string(b) != `{"state":"2"}` || r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("PATCH body %s", b)
			}
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusOK)
		case r.Method == http.MethodGet && r.URL.Path == "/api/now/table/sc_task/"+id:
			got.Add(1)
			if r.URL.Query().Get("sysparm_exclude_reference_link") != "true" || r.URL.Query().Get("sysparm_display_value") != "false" {
				t.Errorf("read parameters: %s", r.URL.RawQuery)
			}
			w.Header().Set("Content-Type", "application/json;charset=UTF-8")
			fmt.Fprintf(w, `{"result":{"sys_id":"%s","number":"SCTASK0010042","state":"2","sys_mod_count":"8",
				"sys_updated_on":"2025-09-20 08:14:03","assigned_to":{"link":"https://x/api/now/table/sys_user/abc","value":"abc"}}}`, id)
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL)
			w.WriteHeader(500)
		}
	}))
	defer srv.Close()
	c, err := New(Config{InstanceURL: srv.URL, Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	task, err := c.UpdateTask(ctx(t), "sc_task", id, map[string]string{"state": "2"})
	if err != nil {
		t.Fatal(err)
	}
	if patched.Load() != 1 || got.Load() != 1 {
		t.Errorf("PATCH %d, GET %d", patched.Load(), got.Load())
	}
	if task.SysID != id || task.State != "2" || task.ModCount != 8 || task.AssignedTo != "abc" || !task.UpdatedOn.Equal(t0) {
		t.Errorf("task = %+v", task)
	}
}

func TestErrorEnvelopes(t *testing.T) {
	type resp struct {
		status int
		header map[string]string
		body   string
	}
	reset := time.Now().Add(90 * time.Second).Unix()
	cases := []struct {
		name      string
		resp      resp
		status    int
		message   string
		detail    string
		retry     time.Duration
		retryable bool
	}{
		{"400 message first", resp{400, nil, `{"error":{"message":"Invalid table sys_nonexistent","detail":"Table sys_nonexistent does not exist"},"status":"failure"}`},
			400, "Invalid table sys_nonexistent", "Table sys_nonexistent does not exist", 0, false},
		{"401 detail first", resp{401, map[string]string{"WWW-Authenticate": `BASIC realm="Service-now"`}, `{"error":{"detail":"Required to provide Auth information","message":"User Not Authenticated"},"status":"failure"}`},
			401, "User Not Authenticated", "Required to provide Auth information", 0, false},
		{"403 null detail", resp{403, nil, `{"error":{"message":"Insufficient rights to query records","detail":null},"status":"failure"}`},
			403, "Insufficient rights to query records", "", 0, false},
		{"403 without status", resp{403, nil, `{"error":{"message":"Operation Failed","detail":"ACL Exception Update Failed due to security constraints"}}`},
			403, "Operation Failed", "ACL Exception Update Failed due to security constraints", 0, false},
		{"404", resp{404, nil, `{"error":{"detail":"Record doesn't exist or ACL restricts the record retrieval","message":"No Record found"},"status":"failure"}`},
			404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval", 0, false},
		{"429 Retry-After", resp{429, map[string]string{"Retry-After": "37"}, "{\n  \"error\": {\n    \"message\": \"Rate limit exceeded\",\n    \"detail\": \"Rate limit of 100 requests per hour for Table API exceeded\"\n  },\n  \"status\": \"failure\"\n}"},
			429, "Rate limit exceeded", "Rate limit of 100 requests per hour for Table API exceeded", 37 * time.Second, true},
		{"429 X-RateLimit-Reset", resp{429, map[string]string{"X-RateLimit-Reset": fmt.Sprint(reset)}, `{"error":{"message":"Rate limit exceeded","detail":null},"status":"failure"}`},
			429, "Rate limit exceeded", "", 90 * time.Second, true},
		{"429 semaphore, no headers", resp{429, nil, `{"error":{"message":"Rate limit exceeded","detail":null},"status":"failure"}`},
			429, "Rate limit exceeded", "", 0, true},
		{"503 HTML", resp{503, map[string]string{"Content-Type": "text/html"}, "<html><head><title>Instance Hibernating page</title></head><body><p>wake it up</p></body></html>"},
			503, "Service Unavailable: Instance Hibernating page", "", 0, true},
		{"500 plain text", resp{500, map[string]string{"Content-Type": "text/plain"}, "upstream\nconnect error"},
			500, "Internal Server Error: upstream connect error", "", 0, true},
		{"502 empty", resp{502, nil, ""},
			502, "Bad Gateway", "", 0, true},
		{"oauth-style", resp{401, nil, `{"error_description":"access_denied","error":"server_error"}`},
			401, "server_error", "access_denied", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json;charset=UTF-8")
				for k, v := range tc.resp.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.resp.status)
				io.WriteString(w, tc.resp.body)
			}))
			defer srv.Close()
			c, err := New(Config{InstanceURL: srv.URL, Username: "u", Password: "p4ssw0rd!"})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.GetTask(ctx(t), "sc_task", "x")
			ae := asAPIError(t, err)
			if ae.StatusCode != tc.status || ae.Message != tc.message || ae.Detail != tc.detail || ae.Retryable() != tc.retryable {
				t.Errorf("got %+v (retryable %v)", ae, ae.Retryable())
			}
			if d := ae.RetryAfter - tc.retry; d < -2*time.Second || d > 2*time.Second {
				t.Errorf("RetryAfter = %v, want %v", ae.RetryAfter, tc.retry)
			}
			if !strings.Contains(err.Error(), fmt.Sprint(tc.status)) || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}
}

func TestNonJSONSuccessIsAnError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html><title>Your instance is hibernating</title></html>")
	}))
	defer srv.Close()
	c, _ := New(Config{InstanceURL: srv.URL, Username: "u", Password: "p"})
	err := c.Ping(ctx(t))
	var ae *APIError
	if err == nil || errors.As(err, &ae) || !strings.Contains(err.Error(), "hibernating") {
		t.Errorf("Ping = %v", err)
	}
}

func TestWrongPasswordAndUnreachable(t *testing.T) {
	e := newSimEnv(t, snsim.Options{})
	if err := e.client.Ping(ctx(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	const bad = "Wr0ng-Pa55word-xyz"
	c := e.newClient(t, seed.SNIntegrationUser, bad, nil)
	for name, call := range map[string]func() error{
		"Ping":    func() error { return c.Ping(ctx(t)) },
		"GetTask": func() error { _, err := c.GetTask(ctx(t), "sc_task", "abc"); return err },
		"Upload": func() error {
			_, err := c.UploadAttachment(ctx(t), "sc_task", "abc", "a", "text/plain", strings.NewReader("x"))
			return err
		},
	} {
		err := call()
		ae := asAPIError(t, err)
		if ae.StatusCode != 401 || ae.Message != "User Not Authenticated" || ae.Retryable() {
			t.Errorf("%s: %+v", name, ae)
		}
		if strings.Contains(err.Error(), bad) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), bad) {
			t.Errorf("%s: error contains the password: %v", name, err)
		}
	}

	// Unreachable: a transport error, not an APIError, without the password.
	ln := httptest.NewServer(http.NotFoundHandler())
	addr := ln.URL
	ln.Close()
	c2, _ := New(Config{InstanceURL: addr, Username: "u", Password: bad})
	err := c2.Ping(ctx(t))
	var ae *APIError
	if err == nil || errors.As(err, &ae) || strings.Contains(err.Error(), bad) {
		t.Errorf("unreachable: %v", err)
	}
	// A cancelled context is reported as such.
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.client.Ping(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestAttachments(t *testing.T) {
	e := newSimEnv(t, snsim.Options{MaxPageSize: 2})
	c := e.client
	task, err := c.CreateTask(ctx(t), "sc_task", NewTask{ShortDescription: "evidence", CorrelationID: "hyperproof:att"})
	if err != nil {
		t.Fatal(err)
	}
	all256 := make([]byte, 256*3)
	for i := range all256 {
		all256[i] = byte(i)
	}
	big := bytes.Repeat([]byte("0123456789abcdef\x00\xff\r\n"), 50000) // 1 MB
	files := []struct {
		name, ctype string
		data        []byte
		reader      func([]byte) io.Reader
	}{
		{"all-bytes.bin", "application/octet-stream", all256, nil},
		{"empty.txt", "text/plain", nil, nil},
		{"Relevé de contrôle [v2] (final) ünï.pdf", "application/pdf", []byte("%PDF-1.7\n…"), nil},
		{"streamed.dat", "", big, func(b []byte) io.Reader { return struct{ io.Reader }{bytes.NewReader(b)} }}, // unknown length: chunked
	}
	var ids []string
	for i, f := range files {
		e.clock.Set(t0.Add(time.Duration(i) * time.Second))
		var body io.Reader = bytes.NewReader(f.data)
		if f.reader != nil {
			body = f.reader(f.data)
		}
		a, err := c.UploadAttachment(ctx(t), "sc_task", task.SysID, f.name, f.ctype, body)
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		sum := sha256.Sum256(f.data)
		wantType := f.ctype
		if wantType == "" {
			wantType = "application/octet-stream"
		}
		if a.FileName != f.name || a.SizeBytes != int64(len(f.data)) || a.ContentType != wantType || a.Hash != hex.EncodeToString(sum[:]) ||
			a.TableName != "sc_task" || a.TableSysID != task.SysID || a.CreatedBy != seed.SNIntegrationUser || a.State != "available" ||
			!a.CreatedOn.Equal(t0.Add(time.Duration(i)*time.Second)) || !strings.HasSuffix(a.DownloadLink, "/api/now/attachment/"+a.SysID+"/file") {
			t.Errorf("%s: metadata %+v", f.name, a)
		}
		ids = append(ids, a.SysID)
	}

	// Adding attachments does not bump the parent.
	after, err := c.GetTask(ctx(t), "sc_task", task.SysID)
	if err != nil || after.ModCount != 0 || !after.UpdatedOn.Equal(task.UpdatedOn) {
		t.Errorf("parent after uploads: %+v %v", after, err)
	}

	list, err := c.ListAttachments(ctx(t), "sc_task", task.SysID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(files) {
		t.Fatalf("listed %d, want %d", len(list), len(files))
	}
	for i, a := range list {
		if a.SysID != ids[i] {
			t.Errorf("list[%d] = %s (%s), want %s", i, a.SysID, a.FileName, ids[i])
		}
		rc, err := c.DownloadAttachment(ctx(t), a.SysID)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, files[i].data) {
			t.Errorf("%s: downloaded %d bytes differ from the %d uploaded", a.FileName, len(got), len(files[i].data))
		}
	}

	meta, err := c.GetAttachment(ctx(t), ids[2])
	if err != nil || meta.FileName != files[2].name {
		t.Errorf("GetAttachment: %+v %v", meta, err)
	}
	_, err = c.GetAttachment(ctx(t), "0123456789abcdef0123456789abcdef")
	if ae := asAPIError(t, err); ae.StatusCode != 404 {
		t.Errorf("missing attachment: %+v", ae)
	}
	_, err = c.DownloadAttachment(ctx(t), "0123456789abcdef0123456789abcdef")
	if ae := asAPIError(t, err); ae.StatusCode != 404 {
		t.Errorf("missing download: %+v", ae)
	}
	_, err = c.UploadAttachment(ctx(t), "sc_task", "0123456789abcdef0123456789abcdef", "x", "text/plain", strings.NewReader("x"))
	if ae := asAPIError(t, err); ae.StatusCode != 404 {
		t.Errorf("upload to missing record: %+v", ae)
	}

	// Created-since across tables, over pages, boundary second included.
	other, _ := c.CreateTask(ctx(t), "problem_task", NewTask{ShortDescription: "o"})
	e.clock.Set(t0.Add(2 * time.Second))
	if _, err := c.UploadAttachment(ctx(t), "problem_task", other.SysID, "p.txt", "text/plain", strings.NewReader("p")); err != nil {
		t.Fatal(err)
	}
	since, err := c.ListAttachmentsCreatedSince(ctx(t), []string{"sc_task", "problem_task"}, t0.Add(2*time.Second+900*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range since {
		names = append(names, a.FileName)
	}
	sort := func(s []string) string { return strings.Join(sortedCopy(s), ",") }
	if sort(names) != sort([]string{files[2].name, "p.txt", "streamed.dat"}) {
		t.Errorf("created since: %q", names)
	}
	onlySC, err := c.ListAttachmentsCreatedSince(ctx(t), []string{"sc_task"}, time.Time{})
	if err != nil || len(onlySC) != len(files) {
		t.Errorf("sc_task only: %d %v", len(onlySC), err)
	}
}

func TestListChoices(t *testing.T) {
	e := newSimEnv(t, snsim.Options{})
	c := e.client
	sc, err := c.ListChoices(ctx(t), "sc_task", "state")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ch := range sc {
		if ch.Table != "sc_task" || ch.Element != "state" {
			t.Errorf("choice %+v", ch)
		}
		got = append(got, ch.Value+"="+ch.Label)
	}
	if strings.Join(got, ",") != "-5=Pending,1=Open,2=Work in Progress,3=Closed Complete,4=Closed Incomplete,7=Closed Skipped" {
		t.Errorf("sc_task: %v", got)
	}
	pt, err := c.ListChoices(ctx(t), "problem_task", "state")
	if err != nil || len(pt) != 4 || pt[0].Value != "151" || pt[3].Label != "Closed" {
		t.Errorf("problem_task: %+v %v", pt, err)
	}
}

func TestPaginationFollowsLinks(t *testing.T) {
	var hits atomic.Int64
	var srvURL string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if u, p, _ := r.BasicAuth(); u != "u" || p != "p" {
			t.Errorf("page %s without credentials", r.URL)
		}
		w.Header().Set("Content-Type", "application/json")
		row := func(id string) string {
			return `{"sys_id":"` + id + `","sys_updated_on":"2025-09-20 08:14:03","sys_mod_count":"0"}`
		}
		switch r.URL.Query().Get("page") {
		case "":
			// Absolute link on another host name for the instance, with a
			// comma inside the URL: followed on the configured host.
			w.Header().Set("Link", `<https://other-name.example.com/api/now/table/sc_task?page=2&sysparm_fields=a,b>;rel="next", <`+srvURL+`/api/now/table/sc_task?page=9>;rel="last"`)
			io.WriteString(w, `{"result":[`+row("a1")+`,`+row("a2")+`]}`)
		case "2":
			// Relative link in a separate header line.
			w.Header().Add("Link", `</api/now/table/sc_task?page=3>; rel="next"`)
			io.WriteString(w, `{"result":[`+row("a3")+`]}`)
		case "3":
			// Empty page with a next link pointing at itself: must stop.
			w.Header().Set("Link", `<`+srvURL+`/api/now/table/sc_task?page=3>;rel="next"`)
			io.WriteString(w, `{"result":[]}`)
		default:
			t.Errorf("unexpected page %s", r.URL)
		}
	}))
	defer srv.Close()
	srvURL = srv.URL
	c, _ := New(Config{InstanceURL: srv.URL, Username: "u", Password: "p"})
	_, err := c.ListTasksUpdatedSince(ctx(t), "sc_task", time.Time{}, "")
	if err == nil || !strings.Contains(err.Error(), "pagination loop") {
		t.Errorf("self-referencing next: %v", err)
	}
	if hits.Load() != 3 {
		t.Errorf("%d requests, want 3", hits.Load())
	}
}

func TestListQueryParameters(t *testing.T) {
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("sysparm_limit") == "" {
			t.Errorf("%s without sysparm_limit", r.URL.Path)
		}
		if strings.HasPrefix(r.URL.Path, "/api/now/table/") && (q.Get("sysparm_exclude_reference_link") != "true" || q.Get("sysparm_display_value") != "false") {
			t.Errorf("%s: read parameters missing: %s", r.URL.Path, r.URL.RawQuery)
		}
		if r.Header.Get("Accept") != "application/json" {
			t.Errorf("Accept = %q", r.Header.Get("Accept"))
		}
		queries = append(queries, r.URL.Path+" "+q.Get("sysparm_query"))
		io.WriteString(w, `{"result":[]}`)
	}))
	defer srv.Close()
	c, _ := New(Config{InstanceURL: srv.URL, Username: "u", Password: "p"})
	since := time.Date(2025, 9, 20, 10, 14, 3, 999, time.FixedZone("CEST", 2*3600))
	if _, err := c.ListTasksUpdatedSince(ctx(t), "sc_task", since, "hyperproof:"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListJournal(ctx(t), "sc_task", "abc", []string{"comments", "work_notes"}, since); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListAttachmentsCreatedSince(ctx(t), []string{"sc_task", "incident_task"}, since); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/api/now/table/sc_task sys_updated_on>=2025-09-20 08:14:03^correlation_idSTARTSWITHhyperproof:^ORDERBYsys_updated_on^ORDERBYsys_id",
		"/api/now/table/sys_journal_field element_id=abc^element=comments^ORelement=work_notes^sys_created_on>=2025-09-20 08:14:03^ORDERBYsys_created_on^ORDERBYsys_id",
		"/api/now/attachment table_nameINsc_task,incident_task^sys_created_on>=2025-09-20 08:14:03^ORDERBYsys_created_on^ORDERBYsys_id",
	}
	if strings.Join(queries, "\n") != strings.Join(want, "\n") {
		t.Errorf("queries:\n%s\nwant:\n%s", strings.Join(queries, "\n"), strings.Join(want, "\n"))
	}
}

func TestErrorsNeverCarryThePassword(t *testing.T) {
	const secret = "S3cr3t-pa55-phrase"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A misbehaving proxy that echoes the credentials it was sent.
		u, p, _ := r.BasicAuth()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `{"error":{"message":"Operation Failed for %s/%s","detail":"Authorization: %s"},"status":"failure"}`, u, p, r.Header.Get("Authorization"))
	}))
	defer srv.Close()
	c, _ := New(Config{InstanceURL: srv.URL, Username: "u", Password: secret})
	err := c.Ping(ctx(t))
	ae := asAPIError(t, err)
	if ae.StatusCode != 403 || strings.Contains(err.Error(), secret) || strings.Contains(ae.Detail, secret) {
		t.Errorf("error = %v", err)
	}
}
