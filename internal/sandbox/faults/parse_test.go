package faults

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseGood(t *testing.T) {
	cases := []struct {
		spec   string
		seed   uint64
		seeded bool
		sn, hp []Rule
	}{
		{spec: ""},
		{spec: " ; ;"},
		{
			// The example of the package documentation.
			spec: "servicenow:POST /api/now/attachment:5xx=0.2;hyperproof:*:429=0.1,retry-after=2;servicenow:*:latency=50ms;servicenow:PATCH /api/now/table:commit-lost=0.1",
			sn: []Rule{
				{Method: "POST", PathPrefix: "/api/now/attachment", Kind: Kind5xx, Share: 0.2, Status: 500},
				{Kind: KindLatency, Share: 1, Latency: 50 * time.Millisecond},
				{Method: "PATCH", PathPrefix: "/api/now/table", Kind: KindCommitLost, Share: 0.1},
			},
			hp: []Rule{{Kind: Kind429, Share: 0.1, RetryAfter: 2 * time.Second}},
		},
		{
			spec:   "seed=42; hyperproof : GET /v1/proof/ : token-expiry, times=1",
			seed:   42,
			seeded: true,
			hp:     []Rule{{Method: "GET", PathPrefix: "/v1/proof/", Kind: KindTokenExpiry, Share: 1, Times: 1}},
		},
		{
			// as= restricts a rule to one caller identity.
			spec: "servicenow:POST:commit-lost=0.05,as=hyperproof.integration;hyperproof:*:latency=20ms,share=0.5,as=sandbox-integration,429,retry-after=2,as=sandbox-integration",
			sn:   []Rule{{Method: "POST", Kind: KindCommitLost, Share: 0.05, As: "hyperproof.integration"}},
			hp: []Rule{
				{Kind: KindLatency, Share: 0.5, Latency: 20 * time.Millisecond, As: "sandbox-integration"},
				{Kind: Kind429, Share: 1, RetryAfter: 2 * time.Second, As: "sandbox-integration"},
			},
		},
		{
			// Several rules in one clause; a kind without value hits all.
			spec: "servicenow:GET:reset,times=3,latency=1.5s,share=0.25,5xx=1,status=503",
			sn: []Rule{
				{Method: "GET", Kind: KindReset, Share: 1, Times: 3},
				{Method: "GET", Kind: KindLatency, Share: 0.25, Latency: 1500 * time.Millisecond},
				{Method: "GET", Kind: Kind5xx, Share: 1, Status: 503},
			},
		},
		{
			spec: "servicenow:/api/now/table/sys_user:429,retry-after=1500ms,hint=reset;servicenow:* /api/now:429=0.5,hint=retry-after;hyperproof:POST *:429,hint=both",
			sn: []Rule{
				{PathPrefix: "/api/now/table/sys_user", Kind: Kind429, Share: 1, RetryAfter: 1500 * time.Millisecond, Hint: HintReset},
				{PathPrefix: "/api/now", Kind: Kind429, Share: 0.5, RetryAfter: time.Second, Hint: HintRetryAfter},
			},
			hp: []Rule{{Method: "POST", Kind: Kind429, Share: 1, RetryAfter: time.Second}},
		},
		{
			// A share of 0 switches a rule off (it is still checked).
			spec: "servicenow:*:5xx=0,status=502;hyperproof:*:reset=0.0",
		},
		{
			// A path may hold a colon: the items follow the last one.
			spec: "servicenow:GET /api/now/table/x:y:reset=1",
			sn:   []Rule{{Method: "GET", PathPrefix: "/api/now/table/x:y", Kind: KindReset, Share: 1}},
		},
	}
	for _, tc := range cases {
		s, err := Parse(tc.spec)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.spec, err)
			continue
		}
		if s.Seed != tc.seed || s.Seeded != tc.seeded {
			t.Errorf("Parse(%q): seed %d/%v, want %d/%v", tc.spec, s.Seed, s.Seeded, tc.seed, tc.seeded)
		}
		if got := s.For(ServiceNow); !reflect.DeepEqual(got, tc.sn) {
			t.Errorf("Parse(%q) servicenow:\n got %+v\nwant %+v", tc.spec, got, tc.sn)
		}
		if got := s.For(Hyperproof); !reflect.DeepEqual(got, tc.hp) {
			t.Errorf("Parse(%q) hyperproof:\n got %+v\nwant %+v", tc.spec, got, tc.hp)
		}
		if s.Empty() != (len(tc.sn)+len(tc.hp) == 0) {
			t.Errorf("Parse(%q).Empty() = %v", tc.spec, s.Empty())
		}
	}
}

func TestParseBad(t *testing.T) {
	cases := map[string]string{ // spec -> part of the error
		"servicenow":                                "want target:endpoint:faults",
		"servicenow:*":                              "want target:endpoint:faults",
		"jira:*:5xx":                                `unknown target "jira"`,
		"servicenow::5xx":                           "empty endpoint",
		"servicenow:post /x:5xx":                    `method "post"`,
		"servicenow:GET api/now:5xx":                "must start with /",
		"servicenow:GET /a /b:5xx":                  "more than a method and a path prefix",
		"servicenow:get:5xx":                        "neither *, an upper-case HTTP method nor a /path prefix",
		"servicenow:*:":                             "no fault given",
		"servicenow:*:boom=0.1":                     `unknown fault kind "boom"`,
		"servicenow:*:5xx=1.5":                      "not in [0,1]",
		"servicenow:*:5xx=-0.1":                     "not in [0,1]",
		"servicenow:*:5xx=lots":                     "is not a number",
		"servicenow:*:5xx=NaN":                      "is not a number",
		"servicenow:*:5xx=":                         "has no value",
		"servicenow:*:5xx,status=404":               "not in 500..599",
		"servicenow:*:429,status=503":               "status applies to 5xx faults only",
		"servicenow:*:5xx,retry-after=2":            "retry-after applies to 429 faults only",
		"servicenow:*:429,retry-after=0":            "not in 1..86400 seconds",
		"servicenow:*:429,retry-after=soon":         "neither whole seconds nor a positive duration",
		"servicenow:*:429,hint=header":              `hint "header"`,
		"servicenow:*:reset,hint=reset":             "hint applies to 429 faults only",
		"servicenow:*:latency":                      "latency needs a duration",
		"servicenow:*:latency=fast":                 "not a positive duration",
		"servicenow:*:latency=-5ms":                 "not a positive duration",
		"servicenow:*:reset,share=0.5":              "the share of a reset fault is its value",
		"servicenow:*:reset,times=0":                "times \"0\" is not a positive integer",
		"servicenow:*:reset,times=2,times=3":        "times given twice",
		"servicenow:*:reset,times":                  "times needs a value",
		"servicenow:*:reset,as=":                    "as= has no value",
		"servicenow:*:reset,as=a b":                 "holds white space",
		"servicenow:*:reset,as=a=b":                 "holds white space",
		"servicenow:*:reset,as=x,as=y":              "as given twice",
		"servicenow:*:reset,,5xx":                   "empty item",
		"servicenow:*:reset,colour=red":             `unknown item "colour"`,
		"servicenow:*:token-expiry":                 "token-expiry applies to hyperproof only",
		"seed=abc":                                  `seed "abc" is not an unsigned integer`,
		"seed=1;seed=2":                             "seed given twice",
		"hyperproof:*:5xx;servicenow:*:5xx=2;x:y:z": `clause 2 "servicenow:*:5xx=2"`,
	}
	for spec, want := range cases {
		_, err := Parse(spec)
		if err == nil {
			t.Errorf("Parse(%q) accepted", spec)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, want) || strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "faults: clause ") {
			t.Errorf("Parse(%q) = %q, want one line with %q", spec, msg, want)
		}
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv(EnvVar, "hyperproof:GET /v1/users:5xx=1")
	s, err := FromEnv()
	if err != nil || len(s.For(Hyperproof)) != 1 {
		t.Fatalf("FromEnv = %+v, %v", s, err)
	}
	t.Setenv(EnvVar, "hyperproof:GET /v1/users:5xx=3")
	if _, err := FromEnv(); err == nil || !strings.HasPrefix(err.Error(), EnvVar+": faults: clause 1") {
		t.Fatalf("bad env: %v", err)
	}
}

func TestRuleStringRoundTrips(t *testing.T) {
	spec := "servicenow:POST /api/now/attachment:5xx=0.2,status=503,times=4;servicenow:*:latency=50ms,share=0.5;servicenow:GET:429=0.1,retry-after=2,hint=reset"
	s, err := Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, r := range s.For(ServiceNow) {
		parts = append(parts, "servicenow:"+r.String())
	}
	again, err := Parse(strings.Join(parts, ";"))
	if err != nil {
		t.Fatalf("%v (%s)", err, strings.Join(parts, ";"))
	}
	if !reflect.DeepEqual(again, s) {
		t.Fatalf("round trip:\n%+v\n%+v", s, again)
	}
}
