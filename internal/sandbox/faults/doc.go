// Package faults injects failures in front of the sandbox simulators (snsim,
// hpsim), as http middleware: the simulators' own handlers stay unchanged and
// only see the requests a fault lets through.
//
// An Injector holds an ordered list of Rules for one simulator (a Vendor:
// its name, the error body it writes and, for Hyperproof, how to expire an
// access token). Rules are added from Go (tests) with Injector.Add, or from
// a spec string (the demo's SANDBOX_FAULTS environment variable) with Parse
// and Injector.Load. Every fault that fires is counted per Kind
// (Injector.Counts), for test reports.
//
// # Kinds
//
//   - 5xx: a server error with the vendor's error body (status 500 unless
//     set), the request is not served.
//   - 429: throttling with Retry-After (whole seconds), X-RateLimit-Reset
//     (UNIX epoch seconds), X-RateLimit-Remaining: 0 and the vendor's body
//     (Hyperproof: {"statusCode":429,"message":"Rate limit is exceeded. Try
//     again in N seconds."}, ServiceNow: its {"error":{...},"status":
//     "failure"} envelope).
//   - latency: the request waits this long before it is served (or answered
//     by another fault); it does not stop other rules.
//   - reset: the connection is hijacked and closed with a TCP RST before the
//     request is served; the client sees a network error. (Go's transport
//     silently repeats an idempotent request once when a reused connection
//     fails this way: a rule that should surface on GETs needs share 1 and
//     no times limit, or times >= 2.)
//   - commit-lost: the request is served (the write happens), its answer is
//     thrown away and the connection is reset: the client gets a network
//     error although the server committed.
//   - token-expiry (Hyperproof only): the bearer token the request carries
//     expires as soon as the request's body is read or its answer written,
//     i.e. while a transfer streams. The request itself completes; the next
//     request with the same token is answered 401.
//   - status (Go API only): a canned answer (status, headers, body), which
//     also serves to feed a client odd payloads.
//
// Latency rules that match all add up; of the other rules the first
// matching one that fires (in the order added) decides the answer, and the
// rules after it are not consulted.
//
// # Spec grammar
//
// A spec is a list of clauses separated by ";". Spaces around clauses and
// their parts are ignored; empty clauses are skipped.
//
//	spec     = clause *( ";" clause )
//	clause   = "seed=" uint64
//	         | target ":" endpoint ":" item *( "," item )
//	target   = "servicenow" | "hyperproof"
//	endpoint = "*"                   ; every request in the vendor's scope
//	         | METHOD                ; e.g. "POST" (any path in scope)
//	         | [ METHOD | "*" ] " " path-prefix
//	                                 ; e.g. "PATCH /api/now/table"
//	item     = kind [ "=" value ]    ; starts a new rule
//	         | param "=" value       ; applies to the rule just started
//	kind     = "5xx" | "429" | "reset" | "commit-lost" | "token-expiry"
//	         | "latency"
//	param    = "share" | "times" | "status" | "retry-after" | "hint" | "as"
//
// METHOD is an upper-case HTTP method; path-prefix starts with "/" and
// matches by prefix (an endpoint of "*" means the vendor's scope: every
// path for ServiceNow, /v1/ for Hyperproof, so the token endpoint is only hit
// when named). For every kind but latency, the value is the share of
// matching requests hit, a number in [0,1] (default 1; a share of 0 disables
// the rule). For latency the value is a Go duration ("50ms", "1.5s") and
// the share is set with the share param. Params:
//
//   - share=P: share of matching requests (only for latency; the other
//     kinds take it as their value).
//   - times=N: the rule fires at most N times (N >= 1), then is removed.
//   - status=NNN: the status of a 5xx rule, 500..599.
//   - retry-after=D: the wait a 429 announces, whole seconds ("2") or a
//     duration ("2s"), rounded up to a second, at least 1s (default 1s).
//   - hint=both|retry-after|reset: which headers of a 429 carry the wait
//     (default both; "reset" sends only X-RateLimit-Reset with
//     X-RateLimit-Remaining: 0).
//   - as=ID: the rule applies only to requests made as caller ID, as the
//     simulator tells it (Vendor.Caller): for ServiceNow the basic-auth
//     user name (e.g. as=hyperproof.integration, the integration user), for
//     Hyperproof the OAuth client id the bearer token was issued to, or on
//     the token endpoint the client id asking for a token (e.g.
//     as=sandbox-integration). Requests of other callers, and requests
//     whose caller cannot be told (no or unknown credentials), are not
//     hit and do not consume the rule's share draws or times. ID holds no
//     white space and none of , ; : =.
//
// Restricting faults to the integration's identity keeps them off the
// traffic of simulated users acting through the same simulator (a demo's
// or a chaos test's creator and assignee): a user's own retried write after
// a lost answer would be a real duplicate, not one the integration made.
//
// "seed=N" makes every share draw deterministic: each rule gets its own
// random stream derived from the seed and the rule's position, so a given
// sequence of requests meets the same faults on every run.
//
// Example:
//
//	seed=7; servicenow:POST /api/now/attachment:5xx=0.2;
//	hyperproof:*:429=0.1,retry-after=2; servicenow:*:latency=50ms;
//	servicenow:PATCH /api/now/table:commit-lost=0.1
//
// Faults on the integration's writes only:
//
//	servicenow:POST:commit-lost=0.05,as=hyperproof.integration;
//	hyperproof:POST:commit-lost=0.05,as=sandbox-integration
//
// Parse rejects a bad spec with a one-line error naming the clause and what
// is wrong with it.
package faults
