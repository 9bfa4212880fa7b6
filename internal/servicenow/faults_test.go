package servicenow

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"hpsync/internal/sandbox/faults"
	"hpsync/internal/sandbox/seed"
	"hpsync/internal/sandbox/snsim"
)

// faultEnv is a simulator with a fault spec behind a loopback server that
// notes when each request arrived.
type faultEnv struct {
	sim *snsim.Server
	srv *httptest.Server

	mu       sync.Mutex
	arrivals map[string][]time.Time // "METHOD /path" -> arrival times
}

func newFaultEnv(t *testing.T, spec string) *faultEnv {
	t.Helper()
	sim, err := snsim.New(snsim.Options{DataDir: t.TempDir(), FaultSpec: spec})
	if err != nil {
		t.Fatal(err)
	}
	e := &faultEnv{sim: sim, arrivals: map[string][]time.Time{}}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.arrivals[r.Method+" "+r.URL.Path] = append(e.arrivals[r.Method+" "+r.URL.Path], time.Now())
		e.mu.Unlock()
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		e.srv.Close()
		_ = sim.Close()
		t.Logf("faults fired: %s", sim.Faults().Counts())
	})
	return e
}

func (e *faultEnv) client(t *testing.T) *Client {
	t.Helper()
	c, err := New(Config{InstanceURL: e.srv.URL, Username: seed.SNIntegrationUser, Password: seed.SNIntegrationPassword})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *faultEnv) arrived(key string) []time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]time.Time(nil), e.arrivals[key]...)
}

const usersPath = "GET /api/now/table/sys_user"

func TestFault5xxIsRetryable(t *testing.T) {
	e := newFaultEnv(t, "servicenow:POST /api/now/attachment:5xx=1,status=503,times=1;servicenow:GET /api/now/table/sys_user:5xx,times=1")
	c := e.client(t)
	ae := asAPIError(t, c.Ping(ctx(t)))
	if ae.StatusCode != 500 || !ae.Retryable() || ae.Message != "Internal Server Error" || !strings.Contains(ae.Detail, "fault injected") {
		t.Fatalf("5xx = %+v", ae)
	}
	task, err := c.CreateTask(ctx(t), "sc_task", NewTask{ShortDescription: "evidence"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.UploadAttachment(ctx(t), "sc_task", task.SysID, "a.txt", "text/plain", strings.NewReader("abc"))
	if ae := asAPIError(t, err); ae.StatusCode != 503 || !ae.Retryable() || ae.RetryAfter != 0 {
		t.Fatalf("upload 503 = %+v", ae)
	}
	// The rules are used up: the activity's retry goes through.
	if _, err := c.UploadAttachment(ctx(t), "sc_task", task.SysID, "a.txt", "text/plain", strings.NewReader("abc")); err != nil {
		t.Fatal(err)
	}
	if got := e.sim.Faults().Count(faults.Kind5xx); got != 2 {
		t.Fatalf("5xx fired %d times", got)
	}
}

func TestRateLimits_429HoldsBackEveryClientOfTheInstance(t *testing.T) {
	e := newFaultEnv(t, "servicenow:GET /api/now/table/sys_user:429,retry-after=1,times=1")
	a, b := e.client(t), e.client(t) // two clients, one instance: one limiter

	err := a.Ping(ctx(t))
	got429 := time.Now()
	ae := asAPIError(t, err)
	if ae.StatusCode != 429 || !ae.Retryable() || ae.RetryAfter != time.Second || ae.Message != "Too Many Requests" {
		t.Fatalf("429 = %+v", ae)
	}
	until := b.BlockedUntil()
	if until.Before(got429.Add(800*time.Millisecond)) || until.After(got429.Add(1100*time.Millisecond)) {
		t.Fatalf("the other client is blocked until %v, want ~1s after the 429 (%v)", until, got429)
	}

	// A request whose deadline comes before the block ends fails at once,
	// without reaching the server.
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := b.Ping(short); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("short deadline: %v after %s", err, time.Since(start))
	}
	// A cancelled wait ends with the cancellation.
	cctx, ccancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, ccancel)
	if err := b.Ping(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
	if n := len(e.arrived(usersPath)); n != 1 {
		t.Fatalf("%d requests reached the server, want only the first", n)
	}

	// Both clients, concurrently, wait for the block and then succeed.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, c := range []*Client{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Ping(ctx(t))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	arr := e.arrived(usersPath)
	if len(arr) != 3 {
		t.Fatalf("%d requests, want 3", len(arr))
	}
	for _, at := range arr[1:] {
		if at.Before(until) {
			t.Fatalf("a request reached the server %s before the Retry-After ended", until.Sub(at))
		}
	}
	if !a.BlockedUntil().IsZero() {
		t.Fatal("still blocked after the wait")
	}
}

func TestFault429ResetHeaderOnly(t *testing.T) {
	e := newFaultEnv(t, "servicenow:GET:429,retry-after=1,hint=reset,times=1")
	c := e.client(t)
	ae := asAPIError(t, c.Ping(ctx(t)))
	// X-RateLimit-Reset is a whole epoch second, rounded up: 1 to 2 s away.
	if ae.StatusCode != 429 || ae.RetryAfter < time.Second || ae.RetryAfter > 2*time.Second || c.BlockedUntil().IsZero() {
		t.Fatalf("429 by X-RateLimit-Reset = %+v, blocked until %v", ae, c.BlockedUntil())
	}
}

func TestFaultLatency(t *testing.T) {
	e := newFaultEnv(t, "servicenow:GET /api/now/table/sys_user:latency=250ms,times=1")
	c := e.client(t)
	start := time.Now()
	if err := c.Ping(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("delayed call took %s", d)
	}
	start = time.Now()
	if err := c.Ping(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d >= 250*time.Millisecond {
		t.Fatalf("second call took %s", d)
	}
	// A deadline shorter than the delay ends the call.
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	e.sim.Faults().MustAdd(faults.Rule{Kind: faults.KindLatency, Latency: time.Second, Times: 1})
	if err := c.Ping(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline during latency: %v", err)
	}
	if n := e.sim.Faults().Count(faults.KindLatency); n != 2 {
		t.Fatalf("latency fired %d times", n)
	}
}

func TestFaultResetIsANetworkError(t *testing.T) {
	e := newFaultEnv(t, "")
	c := e.client(t)
	task, err := c.CreateTask(ctx(t), "sc_task", NewTask{ShortDescription: "before"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.sim.Faults().LoadString("servicenow:PATCH /api/now/table:reset"); err != nil {
		t.Fatal(err)
	}
	_, err = c.UpdateTask(ctx(t), "sc_task", task.SysID, map[string]string{"short_description": "after"})
	var ae *APIError
	if err == nil || errors.As(err, &ae) || !strings.Contains(err.Error(), "servicenow: PATCH /api/now/table/sc_task/") {
		t.Fatalf("reset: %v", err)
	}
	t.Logf("reset: %v", err)
	// The request was never served.
	e.sim.Faults().Clear()
	got, err := c.GetTask(ctx(t), "sc_task", task.SysID)
	if err != nil || got.ShortDescription != "before" {
		t.Fatalf("after reset: %+v %v", got, err)
	}
}

func TestRetryAfterAmbiguousFailure_CommitLostWriteHappened(t *testing.T) {
	e := newFaultEnv(t, "servicenow:PATCH /api/now/table:commit-lost,times=1;servicenow:POST /api/now/table/sc_task:commit-lost=1,times=1")
	c := e.client(t)

	// A create whose answer is lost: the record exists, and looking it up
	// by its correlation id (what a retry does before writing) finds it.
	_, err := c.CreateTask(ctx(t), "sc_task", NewTask{ShortDescription: "keyed", CorrelationID: "hyperproof:lost-1"})
	var ae *APIError
	if err == nil || errors.As(err, &ae) {
		t.Fatalf("create: %v", err)
	}
	found, err := c.FindTaskByCorrelation(ctx(t), "sc_task", "hyperproof:lost-1")
	if err != nil || found == nil || found.ShortDescription != "keyed" {
		t.Fatalf("the lost create is not on the server: %+v %v", found, err)
	}

	// An update whose answer is lost: the change is on the server.
	_, err = c.UpdateTask(ctx(t), "sc_task", found.SysID, map[string]string{"short_description": "changed", "state": "2"})
	if err == nil || errors.As(err, &ae) {
		t.Fatalf("update: %v", err)
	}
	got, err := c.GetTask(ctx(t), "sc_task", found.SysID)
	if err != nil || got.ShortDescription != "changed" || got.State != "2" {
		t.Fatalf("read back: %+v %v", got, err)
	}
	if n := e.sim.Faults().Count(faults.KindCommitLost); n != 2 {
		t.Fatalf("commit-lost fired %d times", n)
	}
}

func TestSeededFaultsRepeatThroughTheClient(t *testing.T) {
	const spec = "seed=11; servicenow:GET /api/now/table/sys_user:5xx=0.4"
	run := func() string {
		e := newFaultEnv(t, spec)
		c := e.client(t)
		var b strings.Builder
		for i := 0; i < 20; i++ { // within the default burst
			if err := c.Ping(ctx(t)); err != nil {
				if ae := asAPIError(t, err); !ae.Retryable() {
					t.Fatal(ae)
				}
				b.WriteByte('X')
			} else {
				b.WriteByte('.')
			}
		}
		return b.String()
	}
	a, b := run(), run()
	if a != b || !strings.Contains(a, "X") || !strings.Contains(a, ".") {
		t.Fatalf("seeded runs differ or are degenerate:\n%s\n%s", a, b)
	}
}

func TestRateLimiterPacesAndIsShared(t *testing.T) {
	e := newFaultEnv(t, "")
	cfg := Config{InstanceURL: e.srv.URL + "/", Username: seed.SNIntegrationUser, Password: seed.SNIntegrationPassword, RequestsPerSecond: 10, Burst: 2}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Another spelling of the same instance shares the limiter.
	cfg.InstanceURL = strings.Replace(e.srv.URL, "http://127.0.0.1", "HTTP://127.0.0.1", 1)
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a.limiter != b.limiter {
		t.Fatal("two clients of one instance have different limiters")
	}
	start := time.Now()
	for i := 0; i < 6; i++ {
		c := a
		if i%2 == 1 {
			c = b
		}
		if err := c.Ping(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	// Burst 2, then 4 more at 10/s: at least 0.4 s.
	if d := time.Since(start); d < 350*time.Millisecond {
		t.Fatalf("6 requests at 10/s burst 2 took %s", d)
	}
	if _, err := New(Config{InstanceURL: e.srv.URL, Username: "u", Password: "p", Burst: -1}); err == nil {
		t.Fatal("negative burst accepted")
	}
}
