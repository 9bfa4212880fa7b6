package snsim

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"hpsync/internal/sandbox/seed"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	t   *testing.T
	sim *Server
	srv *httptest.Server
	clk *clock
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	clk := &clock{t: time.Date(2025, 9, 20, 8, 14, 3, 0, time.UTC)}
	if opts.Now == nil {
		opts.Now = clk.Now
	}
	sim, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() {
		srv.Close()
		if err := sim.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &env{t: t, sim: sim, srv: srv, clk: clk}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, a.body)
	}
	return m
}

func (a answer) result(t *testing.T) map[string]any {
	t.Helper()
	r, ok := a.json(t)["result"].(map[string]any)
	if !ok {
		t.Fatalf("result is not an object: %s", a.body)
	}
	return r
}

func (a answer) results(t *testing.T) []map[string]any {
	t.Helper()
	raw, ok := a.json(t)["result"].([]any)
	if !ok {
		t.Fatalf("result is not a list: %s", a.body)
	}
	out := make([]map[string]any, len(raw))
	for i, r := range raw {
		out[i] = r.(map[string]any)
	}
	return out
}

func (e *env) call(method, path string, body any, hdr ...string) answer {
	return e.callAs(seed.SNIntegrationUser, seed.SNIntegrationPassword, method, path, body, hdr...)
}

func (e *env) callAs(user, pass, method, path string, body any, hdr ...string) answer {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	target := path
	if !strings.HasPrefix(path, "http") {
		target = e.srv.URL + path
	}
	req, err := http.NewRequest(method, target, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: data}
}

func (e *env) createTask(table string, body map[string]any) map[string]any {
	e.t.Helper()
	a := e.call("POST", "/api/now/table/"+table, body)
	if a.status != http.StatusCreated {
		e.t.Fatalf("create: %d %s", a.status, a.body)
	}
	return a.result(e.t)
}

func (e *env) upload(table, sysID, name, ctype string, data []byte) map[string]any {
	e.t.Helper()
	q := url.Values{"table_name": {table}, "table_sys_id": {sysID}, "file_name": {name}}
	a := e.call("POST", "/api/now/attachment/file?"+q.Encode(), data, "Content-Type", ctype)
	if a.status != http.StatusCreated {
		e.t.Fatalf("upload: %d %s", a.status, a.body)
	}
	return a.result(e.t)
}

func errorOf(t *testing.T, a answer) (msg string, detail any) {
	t.Helper()
	m := a.json(t)
	if m["status"] != "failure" {
		t.Errorf("status = %v, want failure", m["status"])
	}
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object: %s", a.body)
	}
	return e["message"].(string), e["detail"]
}

// ---------------------------------------------------------------------------

func TestRecordShapesAndJournal(t *testing.T) {
	e := newEnv(t, Options{})
	alice := UserSysID(seed.SNAssigneeUser)
	rec := e.createTask("sc_task", map[string]any{
		"short_description": "Quarterly firewall review",
		"assigned_to":       alice,
		"due_date":          "2025-10-01 17:00:00",
		"correlation_id":    "hyperproof:t1",
		"comments":          "first comment",
	})
	for k, v := range rec {
		if k == "assigned_to" {
			continue
		}
		if _, ok := v.(string); !ok {
			t.Errorf("%s = %#v, want a JSON string", k, v)
		}
	}
	if rec["number"] != "SCTASK0010001" || rec["state"] != "1" || rec["active"] != "true" || rec["sys_mod_count"] != "0" {
		t.Errorf("defaults: number=%v state=%v active=%v mod=%v", rec["number"], rec["state"], rec["active"], rec["sys_mod_count"])
	}
	if rec["sys_created_by"] != seed.SNIntegrationUser || rec["sys_updated_on"] != "2025-09-20 08:14:03" {
		t.Errorf("stamps: %v %v", rec["sys_created_by"], rec["sys_updated_on"])
	}
	if rec["comments"] != "" {
		t.Errorf("comments read back %q, want \"\"", rec["comments"])
	}
	ref, ok := rec["assigned_to"].(map[string]any)
	if !ok || ref["value"] != alice || ref["link"] != e.srv.URL+"/api/now/table/sys_user/"+alice || len(ref) != 2 {
		t.Errorf("assigned_to = %#v", rec["assigned_to"])
	}
	id := rec["sys_id"].(string)
	if len(id) != 32 {
		t.Errorf("sys_id %q is not 32 hex", id)
	}

	// Reference shapes by query parameters.
	get := func(q string) map[string]any {
		a := e.call("GET", "/api/now/table/sc_task/"+id+"?"+q, nil)
		if a.status != 200 {
			t.Fatalf("GET: %d %s", a.status, a.body)
		}
		return a.result(t)
	}
	if v := get("sysparm_exclude_reference_link=true")["assigned_to"]; v != alice {
		t.Errorf("exclude_reference_link: %#v", v)
	}
	if v := get("sysparm_display_value=true")["assigned_to"].(map[string]any); v["display_value"] != "Alice Assignee" || v["value"] != nil || v["link"] == nil {
		t.Errorf("display_value=true: %#v", v)
	}
	if v := get("sysparm_display_value=all")["assigned_to"].(map[string]any); v["display_value"] != "Alice Assignee" || v["value"] != alice || v["link"] == nil {
		t.Errorf("display_value=all: %#v", v)
	}
	if v := get("sysparm_display_value=true")["state"]; v != "Open" {
		t.Errorf("state display = %#v", v)
	}
	if v := get("sysparm_fields=number,state"); len(v) != 2 {
		t.Errorf("sysparm_fields: %#v", v)
	}

	// Journal write via PATCH: value "" in the answer, a row in
	// sys_journal_field, mod count and stamps move.
	e.clk.Add(2 * time.Second)
	a := e.callAs(seed.SNAssigneeUser, seed.SNAssigneePassword, "PATCH", "/api/now/table/sc_task/"+id, map[string]any{"comments": "second comment"})
	if a.status != 200 {
		t.Fatalf("PATCH: %d %s", a.status, a.body)
	}
	up := a.result(t)
	if up["comments"] != "" || up["sys_mod_count"] != "1" || up["sys_updated_by"] != seed.SNAssigneeUser || up["sys_updated_on"] != "2025-09-20 08:14:05" {
		t.Errorf("after journal write: comments=%q mod=%v by=%v on=%v", up["comments"], up["sys_mod_count"], up["sys_updated_by"], up["sys_updated_on"])
	}
	q := url.Values{"sysparm_query": {"element_id=" + id + "^element=comments^ORDERBYsys_created_on"}}
	rows := e.call("GET", "/api/now/table/sys_journal_field?"+q.Encode(), nil).results(t)
	if len(rows) != 2 || rows[0]["value"] != "first comment" || rows[1]["value"] != "second comment" ||
		rows[1]["sys_created_by"] != seed.SNAssigneeUser || rows[1]["name"] != "sc_task" || rows[1]["element"] != "comments" {
		t.Errorf("journal rows: %#v", rows)
	}
	if h := get("sysparm_display_value=true")["comments"].(string); !strings.HasPrefix(h, "2025-09-20 08:14:05 - Alice Assignee (Additional comments)\nsecond comment\n\n") {
		t.Errorf("journal display: %q", h)
	}

	// A PATCH that changes nothing is not an update.
	a = e.call("PATCH", "/api/now/table/sc_task/"+id, map[string]any{"short_description": "Quarterly firewall review"})
	if a.result(t)["sys_mod_count"] != "1" {
		t.Errorf("no-op PATCH bumped sys_mod_count: %s", a.body)
	}
	// Closing makes the task inactive.
	a = e.call("PATCH", "/api/now/table/sc_task/"+id, map[string]any{"state": "3"})
	if r := a.result(t); r["active"] != "false" || r["sys_mod_count"] != "2" {
		t.Errorf("close: active=%v mod=%v", r["active"], r["sys_mod_count"])
	}

	// Empty reference is "".
	other := e.createTask("problem_task", map[string]any{"short_description": "x"})
	if other["assigned_to"] != "" || other["number"] != "PTASK0010001" || other["state"] != "151" {
		t.Errorf("problem_task defaults: %#v", other)
	}

	// Journal table is read-only.
	if a := e.call("POST", "/api/now/table/sys_journal_field", map[string]any{"value": "x"}); a.status != http.StatusForbidden {
		t.Errorf("journal insert: %d", a.status)
	}

	// DELETE 204 with empty body, then 404 envelope.
	if a := e.call("DELETE", "/api/now/table/problem_task/"+other["sys_id"].(string), nil); a.status != 204 || len(a.body) != 0 {
		t.Errorf("DELETE: %d %q", a.status, a.body)
	}
	a = e.call("GET", "/api/now/table/problem_task/"+other["sys_id"].(string), nil)
	if msg, detail := errorOf(t, a); a.status != 404 || msg != "No Record found" || detail != "Record doesn't exist or ACL restricts the record retrieval" {
		t.Errorf("404: %d %s", a.status, a.body)
	}
}

func TestCreateWithoutResponseBody(t *testing.T) {
	e := newEnv(t, Options{})
	a := e.call("POST", "/api/now/table/incident_task", map[string]any{"short_description": "x"}, "X-no-response-body", "true")
	if a.status != http.StatusCreated || len(a.body) != 0 {
		t.Fatalf("got %d %q", a.status, a.body)
	}
	loc := a.header.Get("Location")
	if !strings.HasPrefix(loc, e.srv.URL+"/api/now/table/incident_task/") {
		t.Fatalf("Location = %q", loc)
	}
	r := e.call("GET", loc, nil).result(t)
	if r["number"] != "INCTASK0010001" {
		t.Errorf("number = %v", r["number"])
	}
}

func TestErrors(t *testing.T) {
	e := newEnv(t, Options{})
	for _, c := range []struct{ user, pass string }{
		{"", ""},
		{seed.SNIntegrationUser, "wrong"},
		{"nobody", "x"},
	} {
		a := e.callAs(c.user, c.pass, "GET", "/api/now/table/sc_task", nil)
		msg, detail := errorOf(t, a)
		if a.status != 401 || msg != "User Not Authenticated" || detail != "Required to provide Auth information" ||
			a.header.Get("WWW-Authenticate") != `BASIC realm="Service-now"` {
			t.Errorf("%q: %d %v %s", c.user, a.status, a.header, a.body)
		}
	}
	a := e.call("GET", "/api/now/table/incident", nil)
	if msg, _ := errorOf(t, a); a.status != 400 || msg != "Invalid table incident" {
		t.Errorf("invalid table: %d %s", a.status, a.body)
	}
	a = e.call("POST", "/api/now/table/sc_task", `{"short_description":`)
	if _, _ = errorOf(t, a); a.status != 400 {
		t.Errorf("malformed JSON: %d %s", a.status, a.body)
	}
	a = e.call("PATCH", "/api/now/table/sc_task/0123456789abcdef0123456789abcdef", map[string]any{"state": "2"})
	if a.status != 404 {
		t.Errorf("PATCH missing: %d", a.status)
	}
	// Inserting an existing sys_id is a 403, not a 409.
	r := e.createTask("sc_task", map[string]any{"short_description": "x"})
	a = e.call("POST", "/api/now/table/sc_task", map[string]any{"sys_id": r["sys_id"], "short_description": "y"})
	if msg, _ := errorOf(t, a); a.status != 403 || msg != "Operation Failed" {
		t.Errorf("duplicate insert: %d %s", a.status, a.body)
	}
}

func TestPaginationHeaders(t *testing.T) {
	e := newEnv(t, Options{MaxPageSize: 2})
	for i := 0; i < 5; i++ {
		e.createTask("sc_task", map[string]any{"short_description": "t", "correlation_id": "x"})
	}
	base := "/api/now/table/sc_task?sysparm_query=ORDERBYnumber&sysparm_fields=number"
	a := e.call("GET", base+"&sysparm_limit=100", nil)
	if got := a.header.Get("X-Total-Count"); got != "5" {
		t.Errorf("X-Total-Count = %q", got)
	}
	links := map[string]string{}
	for _, part := range strings.Split(a.header.Get("Link"), ",<") {
		u, rel, _ := strings.Cut(strings.TrimPrefix(part, "<"), ">;rel=")
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		if pu.Host != strings.TrimPrefix(e.srv.URL, "http://") || pu.Query().Get("sysparm_fields") != "number" || pu.Query().Get("sysparm_limit") != "2" {
			t.Errorf("link %s does not echo the request on the instance host", u)
		}
		links[strings.Trim(rel, `"`)] = pu.Query().Get("sysparm_offset")
	}
	want := map[string]string{"first": "0", "prev": "-1", "next": "2", "last": "4"}
	for k, v := range want {
		if links[k] != v {
			t.Errorf("Link %s offset = %q, want %q (Link: %s)", k, links[k], v, a.header.Get("Link"))
		}
	}
	if n := len(a.results(t)); n != 2 {
		t.Errorf("page size = %d, want the cap 2", n)
	}
	// Walk all pages.
	var numbers []string
	next := e.srv.URL + base
	for pages := 0; next != "" && pages < 10; pages++ {
		a := e.call("GET", next, nil)
		for _, r := range a.results(t) {
			numbers = append(numbers, r["number"].(string))
		}
		next = ""
		for _, part := range strings.Split(a.header.Get("Link"), ",") {
			if strings.HasSuffix(part, `rel="next"`) {
				next = strings.TrimSuffix(strings.TrimPrefix(part, "<"), `>;rel="next"`)
			}
		}
	}
	if strings.Join(numbers, " ") != "SCTASK0010001 SCTASK0010002 SCTASK0010003 SCTASK0010004 SCTASK0010005" {
		t.Errorf("pages: %v", numbers)
	}
	// Suppressed: no Link, still a count.
	a = e.call("GET", base+"&sysparm_suppress_pagination_header=true", nil)
	if a.header.Get("Link") != "" || a.header.Get("X-Total-Count") != "5" {
		t.Errorf("suppressed: Link=%q count=%q", a.header.Get("Link"), a.header.Get("X-Total-Count"))
	}
	// Everything fits: no Link.
	a = e.call("GET", "/api/now/table/sys_user?sysparm_query=user_name="+seed.SNAssigneeUser, nil)
	if a.header.Get("Link") != "" || len(a.results(t)) != 1 {
		t.Errorf("single page has Link %q", a.header.Get("Link"))
	}
	// No match: 200 with an empty list, not 404.
	a = e.call("GET", "/api/now/table/sc_task?sysparm_query=number=NOPE", nil)
	if a.status != 200 || len(a.results(t)) != 0 || a.header.Get("X-Total-Count") != "0" {
		t.Errorf("empty: %d %s", a.status, a.body)
	}
}

func TestEncodedQueries(t *testing.T) {
	e := newEnv(t, Options{})
	mk := func(desc, corr, state string) {
		e.createTask("sc_task", map[string]any{"short_description": desc, "correlation_id": corr, "state": state})
		e.clk.Add(time.Second)
	}
	mk("alpha one", "hyperproof:a", "1")  // 08:14:03
	mk("beta two", "hyperproof:b", "2")   // 08:14:04
	mk("gamma three", "other:c", "3")     // 08:14:05
	mk("delta four", "", "-5")            // 08:14:06
	mk("Alpha Five", "HYPERPROOF:e", "7") // 08:14:07
	count := func(query string) []string {
		t.Helper()
		q := url.Values{"sysparm_query": {query}, "sysparm_fields": {"short_description"}}
		var out []string
		for _, r := range e.call("GET", "/api/now/table/sc_task?"+q.Encode(), nil).results(t) {
			out = append(out, r["short_description"].(string))
		}
		return out
	}
	cases := []struct{ q, want string }{
		{"correlation_idSTARTSWITHhyperproof:^ORDERBYshort_description", "Alpha Five,alpha one,beta two"},
		{"stateIN1,2^ORDERBYstate", "alpha one,beta two"},
		{"state=3^ORstate=-5^ORDERBYDESCstate", "gamma three,delta four"},
		{"correlation_idISEMPTY", "delta four"},
		{"correlation_idISNOTEMPTY^short_descriptionLIKEtwo", "beta two"},
		{"sys_updated_on>=2025-09-20 08:14:05^ORDERBYsys_updated_on", "gamma three,delta four,Alpha Five"},
		{"sys_updated_on<2025-09-20 08:14:04", "alpha one"},
		{"state>2^ORDERBYstate", "gamma three,Alpha Five"},
		{"state!=1^active=true^ORDERBYDESCsys_updated_on", "delta four,beta two"},
		{"no_such_field=1^short_descriptionSTARTSWITHbeta", "beta two"}, // invalid term ignored
		{"short_description=beta two^NQshort_description=delta four^ORDERBYshort_description", "beta two,delta four"},
	}
	for _, c := range cases {
		if got := strings.Join(count(c.q), ","); got != c.want {
			t.Errorf("%s: got %q, want %q", c.q, got, c.want)
		}
	}
	// Choices are seeded out of the box.
	q := url.Values{"sysparm_query": {"name=problem_task^element=state^inactive=false^ORDERBYsequence"}}
	var vals []string
	for _, r := range e.call("GET", "/api/now/table/sys_choice?"+q.Encode(), nil).results(t) {
		vals = append(vals, r["value"].(string)+"="+r["label"].(string))
	}
	if strings.Join(vals, ",") != "151=New,152=Assess,154=Work in Progress,157=Closed" {
		t.Errorf("problem_task choices: %v", vals)
	}
}

type received struct {
	body []byte
	sig  string
	ct   string
}

func webhookSink(t *testing.T) (string, chan received) {
	ch := make(chan received, 32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- received{body: b, sig: r.Header.Get(SignatureHeader), ct: r.Header.Get("Content-Type")}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, ch
}

func TestWebhooks(t *testing.T) {
	const secret = "shared-webhook-secret"
	hookURL, ch := webhookSink(t)
	e := newEnv(t, Options{WebhookURL: hookURL, WebhookSecret: secret})

	wait := func(what string) WebhookPayload {
		t.Helper()
		select {
		case r := <-ch:
			m := hmac.New(sha256.New, []byte(secret))
			m.Write(r.body)
			if want := "sha256=" + hex.EncodeToString(m.Sum(nil)); r.sig != want {
				t.Errorf("%s: signature %q, want %q", what, r.sig, want)
			}
			if r.ct != "application/json" {
				t.Errorf("%s: Content-Type %q", what, r.ct)
			}
			var p WebhookPayload
			if err := json.Unmarshal(r.body, &p); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			return p
		case <-time.After(3 * time.Second):
			t.Fatalf("%s: no webhook", what)
		}
		return WebhookPayload{}
	}
	none := func(what string) {
		t.Helper()
		select {
		case r := <-ch:
			t.Errorf("%s: unexpected webhook %s", what, r.body)
		case <-time.After(100 * time.Millisecond):
		}
	}

	// Not linked: no webhook.
	plain := e.createTask("sc_task", map[string]any{"short_description": "not linked"})
	none("insert without correlation")

	linked := e.createTask("sc_task", map[string]any{"short_description": "linked", "correlation_id": CorrelationPrefix + "t1"})
	id := linked["sys_id"].(string)
	if p := wait("insert"); p.Table != "sc_task" || p.SysID != id {
		t.Errorf("insert payload %+v", p)
	}

	e.call("PATCH", "/api/now/table/sc_task/"+id, map[string]any{"state": "2"})
	if p := wait("update"); p.SysID != id {
		t.Errorf("update payload %+v", p)
	}

	e.call("PATCH", "/api/now/table/sc_task/"+id, map[string]any{"work_notes": "note"})
	if p := wait("journal"); p.SysID != id {
		t.Errorf("journal payload %+v", p)
	}

	e.upload("sc_task", id, "evidence.txt", "text/plain", []byte("hello"))
	if p := wait("attachment"); p.Table != "sc_task" || p.SysID != id {
		t.Errorf("attachment payload %+v", p)
	}

	e.upload("sc_task", plain["sys_id"].(string), "x.txt", "text/plain", []byte("x"))
	none("attachment on unlinked task")

	// A webhook receiver that fails does not fail the API call.
	e2 := newEnv(t, Options{WebhookURL: "http://127.0.0.1:1/unreachable", WebhookSecret: secret})
	r := e2.createTask("sc_task", map[string]any{"short_description": "x", "correlation_id": CorrelationPrefix + "t2"})
	if r["sys_id"] == "" {
		t.Error("create failed")
	}
}

func TestAttachmentNotBumpingTheParent_SimulatorLeavesParentAlone(t *testing.T) {
	e := newEnv(t, Options{})
	task := e.createTask("sc_task", map[string]any{"short_description": "x", "correlation_id": "hyperproof:p"})
	id := task["sys_id"].(string)
	e.clk.Add(10 * time.Second)
	att := e.upload("sc_task", id, "a.bin", "application/octet-stream", []byte{0, 1, 2})
	if att["sys_created_on"] != "2025-09-20 08:14:13" {
		t.Errorf("attachment created %v", att["sys_created_on"])
	}
	after := e.call("GET", "/api/now/table/sc_task/"+id, nil).result(t)
	if after["sys_updated_on"] != task["sys_updated_on"] || after["sys_mod_count"] != "0" {
		t.Errorf("parent changed: updated_on %v -> %v, mod %v", task["sys_updated_on"], after["sys_updated_on"], after["sys_mod_count"])
	}
}

func TestAttachmentAPI(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, Options{DataDir: dir, MaxPageSize: 2})
	task := e.createTask("sc_task", map[string]any{"short_description": "x"})
	id := task["sys_id"].(string)

	data := make([]byte, 256)
	for i := range data {
		data[i] = byte(i)
	}
	name := "Relevé final [v2] (copie).bin"
	meta := e.upload("sc_task", id, name, "application/x-custom", data)
	sum := sha256.Sum256(data)
	if meta["hash"] != hex.EncodeToString(sum[:]) || meta["size_bytes"] != "256" || meta["file_name"] != name ||
		meta["state"] != "available" || meta["table_sys_id"] != id || meta["sys_created_by"] != seed.SNIntegrationUser {
		t.Errorf("metadata: %#v", meta)
	}
	attID := meta["sys_id"].(string)
	if meta["download_link"] != e.srv.URL+"/api/now/attachment/"+attID+"/file" {
		t.Errorf("download_link %v", meta["download_link"])
	}

	// Download through the handler directly to see the header's exact case.
	req := httptest.NewRequest("GET", "/api/now/attachment/"+attID+"/file", nil)
	req.SetBasicAuth(seed.SNIntegrationUser, seed.SNIntegrationPassword)
	rec := httptest.NewRecorder()
	e.sim.ServeHTTP(rec, req)
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), data) {
		t.Fatalf("download: %d, %d bytes", rec.Code, rec.Body.Len())
	}
	if rec.Header().Get("Content-Type") != "application/x-custom" {
		t.Errorf("Content-Type %q", rec.Header().Get("Content-Type"))
	}
	if v := rec.Header()["x-attachment-metadata"]; len(v) != 1 || !strings.HasPrefix(v[0], `{  "sys_id" : "`+attID+`"`) || strings.Contains(v[0], "download_link") {
		t.Errorf("x-attachment-metadata: %q", v)
	} else {
		var m map[string]string
		if err := json.Unmarshal([]byte(v[0]), &m); err != nil || m["file_name"] != name {
			t.Errorf("x-attachment-metadata is not the metadata: %v %v", err, m)
		}
	}
	if cd := rec.Header().Get("Content-Disposition"); cd != `attachment;filename="Relev_ final [v2] (copie).bin";filename*=UTF-8''Relev%C3%A9%20final%20%5Bv2%5D%20%28copie%29.bin` {
		t.Errorf("Content-Disposition %q", cd)
	}

	// Missing Content-Type, missing record, unknown table.
	q := url.Values{"table_name": {"sc_task"}, "table_sys_id": {id}, "file_name": {"x"}}
	req, _ = http.NewRequest("POST", e.srv.URL+"/api/now/attachment/file?"+q.Encode(), strings.NewReader("x"))
	req.SetBasicAuth(seed.SNIntegrationUser, seed.SNIntegrationPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("no Content-Type: %d", resp.StatusCode)
	}
	q.Set("table_sys_id", "0123456789abcdef0123456789abcdef")
	if a := e.call("POST", "/api/now/attachment/file?"+q.Encode(), "x", "Content-Type", "text/plain"); a.status != 404 {
		t.Errorf("missing record: %d", a.status)
	}

	// Multipart upload: text parts first, file part last.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("table_name", "sc_task")
	_ = mw.WriteField("table_sys_id", id)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="uploadFile"; filename="report.pdf"`)
	h.Set("Content-Type", "application/pdf")
	fw, _ := mw.CreatePart(h)
	_, _ = fw.Write([]byte("%PDF-1.7 fake"))
	_ = mw.Close()
	a := e.call("POST", "/api/now/attachment/upload", buf.Bytes(), "Content-Type", mw.FormDataContentType())
	if a.status != 201 {
		t.Fatalf("multipart: %d %s", a.status, a.body)
	}
	if m := a.result(t); m["file_name"] != "report.pdf" || m["content_type"] != "application/pdf" || m["size_bytes"] != "13" {
		t.Errorf("multipart metadata %#v", m)
	}
	e.upload("sc_task", id, "empty.txt", "text/plain", nil)

	// List pages (cap 2) and query.
	lq := url.Values{"sysparm_query": {"table_sys_id=" + id + "^ORDERBYsys_created_on^ORDERBYsys_id"}}
	a = e.call("GET", "/api/now/attachment?"+lq.Encode(), nil)
	if a.header.Get("X-Total-Count") != "3" || !strings.Contains(a.header.Get("Link"), `rel="next"`) || len(a.results(t)) != 2 {
		t.Errorf("list: count=%q link=%q", a.header.Get("X-Total-Count"), a.header.Get("Link"))
	}

	// Files live in DataDir until deleted; DELETE removes the bytes.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("%d files in DataDir, want 3", len(entries))
	}
	if a := e.call("DELETE", "/api/now/attachment/"+attID, nil); a.status != 204 {
		t.Errorf("DELETE: %d", a.status)
	}
	if a := e.call("GET", "/api/now/attachment/"+attID, nil); a.status != 404 {
		t.Errorf("GET deleted: %d", a.status)
	}
	entries, _ = os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("%d files after delete, want 2", len(entries))
	}
	// Deleting the record deletes its attachments.
	e.call("DELETE", "/api/now/table/sc_task/"+id, nil)
	entries, _ = os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("%d files after deleting the record", len(entries))
	}
}

func TestCloseRemovesTempDir(t *testing.T) {
	sim, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()
	e := &env{t: t, sim: sim, srv: srv}
	task := e.createTask("sc_task", map[string]any{"short_description": "x"})
	e.upload("sc_task", task["sys_id"].(string), "a", "text/plain", []byte("abc"))
	dir := sim.dataDir
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	if err := sim.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temp dir still there: %v", err)
	}
	if err := sim.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestDefaultOrderAndLogs(t *testing.T) {
	var mu sync.Mutex
	var logs strings.Builder
	e := newEnv(t, Options{Logf: func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		logs.WriteString(fmt.Sprintf(format, args...) + "\n")
	}})
	for i := 0; i < 6; i++ {
		e.createTask("sc_task", map[string]any{"short_description": fmt.Sprint(i)})
	}
	rows := e.call("GET", "/api/now/table/sc_task?sysparm_fields=sys_id", nil).results(t)
	for i := 1; i < len(rows); i++ {
		if rows[i-1]["sys_id"].(string) >= rows[i]["sys_id"].(string) {
			t.Errorf("default order is not sys_id: %v", rows)
		}
	}
	e.callAs(seed.SNIntegrationUser, "not-the-password-123", "GET", "/api/now/table/sc_task", nil)
	e.call("GET", "/api/now/table/sc_task?sysparm_query=bogus_field=1", nil)
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if !strings.Contains(out, "-> 401") || !strings.Contains(out, "bogus_field") {
		t.Errorf("log lacks the request lines:\n%s", out)
	}
	for _, secret := range []string{"not-the-password-123", seed.SNIntegrationPassword, "Authorization", "Basic "} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	hookURL, ch := webhookSink(t)
	go func() {
		for range ch {
		}
	}()
	e := newEnv(t, Options{WebhookURL: hookURL, MaxPageSize: 3})
	task := e.createTask("sc_task", map[string]any{"short_description": "x", "correlation_id": CorrelationPrefix + "c"})
	id := task["sys_id"].(string)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				e.call("PATCH", "/api/now/table/sc_task/"+id, map[string]any{"comments": fmt.Sprintf("c%d-%d", i, j)})
				e.upload("sc_task", id, fmt.Sprintf("f%d-%d", i, j), "text/plain", []byte("x"))
				e.call("GET", "/api/now/table/sys_journal_field?sysparm_query=element_id="+id, nil)
			}
		}()
	}
	wg.Wait()
	got := e.call("GET", "/api/now/table/sc_task/"+id, nil).result(t)
	if got["sys_mod_count"] != "40" {
		t.Errorf("sys_mod_count = %v, want 40", got["sys_mod_count"])
	}
	a := e.call("GET", "/api/now/attachment?sysparm_query=table_sys_id="+id, nil)
	if a.header.Get("X-Total-Count") != "40" {
		t.Errorf("attachments = %v", a.header.Get("X-Total-Count"))
	}
}
