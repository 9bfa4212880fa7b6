package hpsim

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"hpsync/internal/sandbox/faults"
	"hpsync/internal/sandbox/seed"
)

func TestFaultSpecAnswersInHyperproofShapes(t *testing.T) {
	f := start(t, Options{FaultSpec: "hyperproof:*:5xx,status=502,times=1;hyperproof:GET /v1/users:429,retry-after=4,times=1;servicenow:*:reset"})
	// "*" is the API (/v1/): the token endpoint is served.
	tok := f.token(seed.IntegrationClientID, seed.IntegrationClientSecret)
	s, _, raw := f.call(tok, "GET", "/v1/taskstatuses", nil, "", nil)
	wantError(t, s, raw, 502)
	s, h, raw := f.call(tok, "GET", "/v1/users", nil, "", nil)
	if s != 429 || string(raw) != `{"statusCode":429,"message":"Rate limit is exceeded. Try again in 4 seconds."}` ||
		h.Get("Retry-After") != "4" || h.Get("X-RateLimit-Remaining") != "0" || h.Get("X-RateLimit-Reset") == "" {
		t.Fatalf("429: %d %v %s", s, h, raw)
	}
	if s, _, _ := f.call(tok, "GET", "/v1/users", nil, "", nil); s != 200 {
		t.Fatalf("after the faults: %d", s)
	}
	if got := f.sim.Faults().Counts().String(); got != "5xx=1 429=1" {
		t.Fatalf("counts %s", got)
	}
}

func TestTokenExpiryFault(t *testing.T) {
	f := start(t, Options{})
	tok := f.token(seed.IntegrationClientID, seed.IntegrationClientSecret)
	f.sim.Faults().MustAdd(faults.Rule{Kind: faults.KindTokenExpiry, Method: "GET", PathPrefix: "/v1/users", Times: 1})
	// The request that carries the token when it expires is served ...
	if s, _, raw := f.call(tok, "GET", "/v1/users", nil, "", nil); s != 200 {
		t.Fatalf("in flight: %d %s", s, raw)
	}
	// ... the next one with the same token is refused.
	s, _, raw := f.call(tok, "GET", "/v1/users/me", nil, "", nil)
	wantError(t, s, raw, 401)
	if !strings.Contains(string(raw), "expired") {
		t.Fatalf("401 body %s", raw)
	}
}

func TestBadFaultSpecFailsNew(t *testing.T) {
	_, err := New(Options{DataDir: t.TempDir(), FaultSpec: "hyperproof:GET /v1:latency=soon"})
	if err == nil || !strings.Contains(err.Error(), `latency "soon"`) {
		t.Fatalf("New with a bad spec: %v", err)
	}
	// The old canned answers still work on a server without a spec.
	sim, err := New(Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	srv := httptest.NewServer(sim)
	defer srv.Close()
	sim.InjectFault(Fault{Method: "get", PathPrefix: "/v1/users", StatusCode: 418, Body: `{"statusCode":418,"message":"teapot"}`})
	resp, err := http.Get(srv.URL + "/v1/users")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 418 || sim.Faults().Count(faults.KindStatus) != 1 {
		t.Fatalf("canned answer: %d", resp.StatusCode)
	}
}
