package faults

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// backend is a handler that counts what it serves.
type backend struct {
	served  atomic.Int64
	mu      sync.Mutex
	written []string // bodies of POSTs it committed
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.served.Add(1)
	if r.Method == http.MethodPost {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.written = append(b.written, string(body))
		b.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}
	_, _ = io.WriteString(w, `{"ok":true}`)
}

func serve(t *testing.T, in *Injector) (*httptest.Server, *backend) {
	t.Helper()
	b := &backend{}
	srv := httptest.NewServer(in.Middleware(b))
	t.Cleanup(srv.Close)
	return srv, b
}

func get(t *testing.T, c *http.Client, url string) (int, http.Header, string, error) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b), nil
}

func TestAnswersAndCounts(t *testing.T) {
	in := New(Vendor{Name: "test", Scope: "/api/"})
	srv, b := serve(t, in)
	c := srv.Client()
	if err := in.Add(
		Rule{Kind: Kind5xx, Method: "GET", PathPrefix: "/api/a", Status: 502, Times: 1},
		Rule{Kind: Kind429, PathPrefix: "/api/b", RetryAfter: 1500 * time.Millisecond, Times: 1},
		Rule{Kind: Kind429, PathPrefix: "/api/c", Hint: HintReset, Times: 1},
		Rule{Kind: KindStatus, PathPrefix: "/api/d", Status: 200, Body: `{"odd":1}`, Header: http.Header{"X-Odd": {"yes"}}, Times: 2},
	); err != nil {
		t.Fatal(err)
	}
	status, _, body, err := get(t, c, srv.URL+"/api/a/1")
	if err != nil || status != 502 || !strings.Contains(body, "Bad Gateway") {
		t.Fatalf("5xx: %d %q %v", status, body, err)
	}
	status, h, body, _ := get(t, c, srv.URL+"/api/b")
	reset, _ := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
	if status != 429 || h.Get("Retry-After") != "2" || h.Get("X-RateLimit-Remaining") != "0" ||
		reset < time.Now().Unix()+1 || reset > time.Now().Unix()+3 || !strings.Contains(body, "Try again in 2 seconds") {
		t.Fatalf("429: %d %v %q", status, h, body)
	}
	status, h, _, _ = get(t, c, srv.URL+"/api/c")
	if status != 429 || h.Get("Retry-After") != "" || h.Get("X-RateLimit-Reset") == "" {
		t.Fatalf("429 hint=reset: %d %v", status, h)
	}
	for i := 0; i < 2; i++ {
		if status, h, body, _ := get(t, c, srv.URL+"/api/d"); status != 200 || body != `{"odd":1}` || h.Get("X-Odd") != "yes" || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
			t.Fatalf("canned answer %d: %d %q", i, status, body)
		}
	}
	if b.served.Load() != 0 {
		t.Fatal("a faulted request reached the backend")
	}
	// Every rule is used up: everything is served now.
	for _, p := range []string{"/api/a/1", "/api/b", "/api/c", "/api/d"} {
		if status, _, _, _ := get(t, c, srv.URL+p); status != 200 {
			t.Fatalf("%s after the faults: %d", p, status)
		}
	}
	if n := len(in.Rules()); n != 0 {
		t.Fatalf("%d rules left", n)
	}
	want := Counts{Kind5xx: 1, Kind429: 2, KindStatus: 2}
	if got := in.Counts(); len(got) != len(want) || got[Kind5xx] != 1 || got[Kind429] != 2 || got[KindStatus] != 2 {
		t.Fatalf("counts %v", got)
	}
	if s := in.Counts().String(); s != "5xx=1 429=2 status=2" {
		t.Fatalf("counts string %q", s)
	}
	in.ResetCounts()
	if s := in.Counts().String(); s != "none" {
		t.Fatalf("counts after reset %q", s)
	}
}

func TestMatching(t *testing.T) {
	in := New(Vendor{Name: "test", Scope: "/v1/"})
	srv, _ := serve(t, in)
	c := srv.Client()
	in.MustAdd(Rule{Kind: Kind5xx}, Rule{Kind: Kind5xx, Method: "POST", PathPrefix: "/oauth", Status: 503})
	// "*" is the vendor's scope: /v1/ only.
	if status, _, _, _ := get(t, c, srv.URL+"/v1/x"); status != 500 {
		t.Fatalf("in scope: %d", status)
	}
	if status, _, _, _ := get(t, c, srv.URL+"/oauth/token"); status != 200 {
		t.Fatalf("out of scope, wrong method: %d", status)
	}
	resp, err := c.Post(srv.URL+"/oauth/token", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("named path: %d", resp.StatusCode)
	}
	in.Clear()
	if status, _, _, _ := get(t, c, srv.URL+"/v1/x"); status != 200 {
		t.Fatalf("after Clear: %d", status)
	}
	if err := in.Add(Rule{Kind: KindTokenExpiry}); !errors.Is(err, ErrNoTokens) {
		t.Fatalf("token-expiry without tokens: %v", err)
	}
	if err := in.Add(Rule{Kind: Kind5xx}, Rule{Kind: "meltdown"}); err == nil || len(in.Rules()) != 0 {
		t.Fatalf("a bad rule was accepted, or the good one before it added: %v", err)
	}
}

// pattern returns which of n requests a share rule hit.
func pattern(t *testing.T, spec string, n int) string {
	in := New(Vendor{Name: ServiceNow})
	if err := in.LoadString(spec); err != nil {
		t.Fatal(err)
	}
	srv, _ := serve(t, in)
	var b strings.Builder
	for i := 0; i < n; i++ {
		status, _, _, err := get(t, srv.Client(), srv.URL+"/x")
		if err != nil {
			t.Fatal(err)
		}
		if status == 200 {
			b.WriteByte('.')
		} else {
			b.WriteByte('X')
		}
	}
	return b.String()
}

func TestSeededSharesRepeat(t *testing.T) {
	const spec = "seed=20250920; servicenow:*:5xx=0.3"
	a, b := pattern(t, spec, 200), pattern(t, spec, 200)
	if a != b {
		t.Fatalf("same seed, different faults:\n%s\n%s", a, b)
	}
	hits := strings.Count(a, "X")
	if hits < 35 || hits > 85 {
		t.Fatalf("share 0.3 hit %d of 200", hits)
	}
	if c := pattern(t, "seed=7; servicenow:*:5xx=0.3", 200); c == a {
		t.Fatal("another seed gives the same faults")
	}
	t.Logf("seeded pattern: %s", a[:60])
}

func TestLatency(t *testing.T) {
	in := New(Vendor{Name: "test"})
	srv, b := serve(t, in)
	in.MustAdd(Rule{Kind: KindLatency, Latency: 120 * time.Millisecond}, Rule{Kind: KindLatency, Latency: 300 * time.Millisecond, Times: 1})
	start := time.Now()
	if status, _, _, _ := get(t, srv.Client(), srv.URL+"/"); status != 200 {
		t.Fatal(status)
	}
	if d := time.Since(start); d < 420*time.Millisecond {
		t.Fatalf("first request took %s, want >= 420ms (both delays)", d)
	}
	start = time.Now()
	get(t, srv.Client(), srv.URL+"/")
	if d := time.Since(start); d < 120*time.Millisecond || d >= 420*time.Millisecond {
		t.Fatalf("second request took %s, want 120ms (one delay)", d)
	}
	if in.Count(KindLatency) != 3 || b.served.Load() != 2 {
		t.Fatalf("latency count %d, served %d", in.Count(KindLatency), b.served.Load())
	}
}

func TestResetAndCommitLost(t *testing.T) {
	in := New(Vendor{Name: "test"})
	srv, b := serve(t, in)
	c := srv.Client()
	post := func(body string) error {
		resp, err := c.Post(srv.URL+"/items", "text/plain", strings.NewReader(body))
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	in.MustAdd(Rule{Kind: KindReset, Method: "POST", Times: 1})
	if err := post("first"); err == nil {
		t.Fatal("reset: no error")
	} else {
		t.Logf("reset: %v", err)
	}
	in.MustAdd(Rule{Kind: KindCommitLost, Method: "POST", Times: 1})
	if err := post("second"); err == nil {
		t.Fatal("commit-lost: no error")
	} else {
		t.Logf("commit-lost: %v", err)
	}
	if err := post("third"); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if strings.Join(b.written, ",") != "second,third" {
		t.Fatalf("committed %v, want [second third] (a reset request is not served, a commit-lost one is)", b.written)
	}
	if got := in.Counts(); got[KindReset] != 1 || got[KindCommitLost] != 1 {
		t.Fatalf("counts %v", got)
	}
}

func TestTokenExpiryHook(t *testing.T) {
	var mu sync.Mutex
	var expired []string
	in := New(Vendor{Name: Hyperproof, ExpireToken: func(r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		expired = append(expired, r.Header.Get("Authorization"))
	}})
	var sawExpiredBeforeAnswer bool
	srv := httptest.NewServer(in.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		before := len(expired)
		mu.Unlock()
		_, _ = io.Copy(io.Discard, r.Body) // the upload streams in
		mu.Lock()
		sawExpiredBeforeAnswer = before == 0 && len(expired) == 1
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]bool{"stored": true})
	})))
	defer srv.Close()
	in.MustAdd(Rule{Kind: KindTokenExpiry, Method: "POST", Times: 1})
	req, _ := http.NewRequest("POST", srv.URL+"/v1/tasks/t/proof", strings.NewReader(strings.Repeat("x", 1<<20)))
	req.Header.Set("Authorization", "Bearer abc")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !sawExpiredBeforeAnswer {
		t.Fatalf("status %d, expired while streaming: %v", resp.StatusCode, sawExpiredBeforeAnswer)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(expired) != 1 || expired[0] != "Bearer abc" {
		t.Fatalf("expired %v", expired)
	}
}

func TestAsRestrictsToOneCaller(t *testing.T) {
	// The vendor tells the caller by a header here; the simulators use the
	// basic-auth user or the bearer token's client.
	byHeader := func(r *http.Request) string { return r.Header.Get("X-Caller") }
	in := New(Vendor{Name: ServiceNow, Caller: byHeader})
	if err := in.LoadString("seed=1; servicenow:GET:5xx,status=503,as=integration,times=2"); err != nil {
		t.Fatal(err)
	}
	if r := in.Rules(); len(r) != 1 || r[0].As != "integration" || r[0].String() != "GET:5xx=1,status=503,times=2,as=integration" {
		t.Fatalf("rules %v", r)
	}
	srv, b := serve(t, in)
	do := func(s *httptest.Server, caller string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/x", nil)
		if caller != "" {
			req.Header.Set("X-Caller", caller)
		}
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Other callers, and requests whose caller is unknown, pass and do not
	// use up the rule's times.
	for _, who := range []string{"alice", "", "alice", "integrationx"} {
		if s := do(srv, who); s != 200 {
			t.Fatalf("caller %q: %d, want 200", who, s)
		}
	}
	for i := 0; i < 2; i++ {
		if s := do(srv, "integration"); s != 503 {
			t.Fatalf("integration request %d: %d, want 503", i, s)
		}
	}
	if s := do(srv, "integration"); s != 200 {
		t.Fatalf("after times=2: %d", s)
	}
	if got := in.Count(Kind5xx); got != 2 || b.served.Load() != 5 {
		t.Fatalf("fired %d, served %d", got, b.served.Load())
	}
	// A vendor that cannot tell callers: as= rules never match.
	blind := New(Vendor{Name: ServiceNow})
	blind.MustAdd(Rule{Kind: Kind5xx, As: "integration"})
	srv2, _ := serve(t, blind)
	if s := do(srv2, "integration"); s != 200 {
		t.Fatalf("vendor without Caller: %d", s)
	}
	// Identities the grammar could not write back are refused.
	for _, bad := range []string{"a b", "a:b", "a,b"} {
		if err := in.Add(Rule{Kind: Kind5xx, As: bad}); err == nil {
			t.Fatalf("identity %q accepted", bad)
		}
	}
}
