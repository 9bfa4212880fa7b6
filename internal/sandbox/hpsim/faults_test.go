package hpsim

import (
	"net/http"
	"net/http/httptest"
	"net/url"
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

func TestFaultsAsOneClient(t *testing.T) {
	// Faults restricted to the integration's client: the creator's personal
	// client is never hit, neither on the API nor on the token endpoint.
	f := start(t, Options{FaultSpec: "hyperproof:*:5xx,status=503,as=" + seed.IntegrationClientID +
		";hyperproof:POST /oauth/token:5xx,status=502,as=" + seed.IntegrationClientID + ",times=1"})
	creator := f.token(seed.CreatorClientID, seed.CreatorClientSecret)
	for _, p := range []string{"/v1/taskstatuses", "/v1/users/me"} {
		if s, _, raw := f.call(creator, "GET", p, nil, "", nil); s != 200 {
			t.Fatalf("creator %s: %d %s", p, s, raw)
		}
	}
	// The integration's token request is hit once (client id in the form),
	// and the form still reaches the handler afterwards.
	resp, err := http.PostForm(f.srv.URL+"/oauth/token", url.Values{"grant_type": {"client_credentials"},
		"client_id": {seed.IntegrationClientID}, "client_secret": {seed.IntegrationClientSecret}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 502 {
		t.Fatalf("integration token request: %d, want 502", resp.StatusCode)
	}
	integration := f.token(seed.IntegrationClientID, seed.IntegrationClientSecret)
	s, _, raw := f.call(integration, "GET", "/v1/taskstatuses", nil, "", nil)
	wantError(t, s, raw, 503)
	// An unknown token has no caller: not hit, refused by the simulator.
	s, _, raw = f.call("not-a-token", "GET", "/v1/taskstatuses", nil, "", nil)
	wantError(t, s, raw, 401)
	if got := f.sim.Faults().Counts().String(); got != "5xx=2" {
		t.Fatalf("counts %s", got)
	}
}
