package snsim

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"hpsync/internal/sandbox/faults"
	"hpsync/internal/sandbox/seed"
)

func TestFaultSpecAnswersInServiceNowShapes(t *testing.T) {
	e := newEnv(t, Options{FaultSpec: "servicenow:GET /api/now/table/sys_user:429,retry-after=3,times=1;" +
		"servicenow:POST /api/now/attachment:5xx,status=503,times=1;" +
		"hyperproof:*:reset"}) // not for this simulator
	a := e.call("GET", "/api/now/table/sys_user?sysparm_limit=1", nil)
	if a.status != 429 || a.header.Get("Retry-After") != "3" || a.header.Get("X-RateLimit-Rule") == "" || a.header.Get("X-RateLimit-Limit") == "" {
		t.Fatalf("429: %d %v", a.status, a.header)
	}
	reset, err := strconv.ParseInt(a.header.Get("X-RateLimit-Reset"), 10, 64)
	if now := time.Now().Unix(); err != nil || reset < now+3 || reset > now+4 {
		t.Fatalf("X-RateLimit-Reset %q", a.header.Get("X-RateLimit-Reset"))
	}
	msg, detail := errorOf(t, a)
	if msg != "Too Many Requests" || !strings.Contains(detail.(string), "retry after 3 seconds") {
		t.Fatalf("429 envelope: %s", a.body)
	}
	a = e.call("POST", "/api/now/attachment/file?table_name=sc_task&table_sys_id=x&file_name=a", "x", "Content-Type", "text/plain")
	if msg, _ := errorOf(t, a); a.status != 503 || msg != "Service Unavailable" {
		t.Fatalf("503: %d %s", a.status, a.body)
	}
	// Used up; everything else is served as usual.
	if a := e.call("GET", "/api/now/table/sys_user?sysparm_limit=1", nil); a.status != 200 {
		t.Fatalf("after the faults: %d", a.status)
	}
	if got := e.sim.Faults().Counts(); got[faults.Kind429] != 1 || got[faults.Kind5xx] != 1 || len(got) != 2 {
		t.Fatalf("counts %v", got)
	}
	// No tokens to expire on this simulator.
	if err := e.sim.Faults().Add(faults.Rule{Kind: faults.KindTokenExpiry}); err == nil {
		t.Fatal("token-expiry accepted by the ServiceNow simulator")
	}
}

func TestBadFaultSpecFailsNew(t *testing.T) {
	dir := t.TempDir()
	_, err := New(Options{DataDir: dir, FaultSpec: "servicenow:*:5xx=7"})
	if err == nil || !strings.Contains(err.Error(), "faults: clause 1") {
		t.Fatalf("New with a bad spec: %v", err)
	}
}

func TestFaultsBeforeAuthentication(t *testing.T) {
	// The injector stands in front of the simulator: a fault answers even a
	// request the simulator would refuse.
	e := newEnv(t, Options{})
	e.sim.Faults().MustAdd(faults.Rule{Kind: faults.Kind5xx, Times: 1})
	if a := e.callAs("nobody", "x", "GET", "/api/now/table/sc_task", nil); a.status != http.StatusInternalServerError {
		t.Fatalf("%d", a.status)
	}
	if a := e.callAs("nobody", "x", "GET", "/api/now/table/sc_task", nil); a.status != http.StatusUnauthorized {
		t.Fatalf("%d", a.status)
	}
}

func TestFaultsAsOneUser(t *testing.T) {
	// Faults restricted to the integration user: the assignee's requests
	// are served.
	e := newEnv(t, Options{FaultSpec: "servicenow:GET:5xx,status=503,as=" + seed.SNIntegrationUser})
	if a := e.callAs(seed.SNAssigneeUser, seed.SNAssigneePassword, "GET", "/api/now/table/sys_user?sysparm_limit=1", nil); a.status != 200 {
		t.Fatalf("assignee: %d %s", a.status, a.body)
	}
	if a := e.call("GET", "/api/now/table/sys_user?sysparm_limit=1", nil); a.status != 503 {
		t.Fatalf("integration: %d", a.status)
	}
	if got := e.sim.Faults().Counts(); got[faults.Kind5xx] != 1 || len(got) != 1 {
		t.Fatalf("counts %v", got)
	}
}
