package faults

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
)

// Targets of a spec: the simulators' vendor names.
const (
	ServiceNow = "servicenow"
	Hyperproof = "hyperproof"
)

// EnvVar is the environment variable the demo reads a spec from.
const EnvVar = "SANDBOX_FAULTS"

// Kind is a kind of fault.
type Kind string

// The kinds of fault (see the package documentation).
const (
	Kind5xx         Kind = "5xx"
	Kind429         Kind = "429"
	KindLatency     Kind = "latency"
	KindReset       Kind = "reset"
	KindCommitLost  Kind = "commit-lost"
	KindTokenExpiry Kind = "token-expiry"
	KindStatus      Kind = "status"
)

// Kinds lists every kind, in the order reports show them.
var Kinds = []Kind{Kind5xx, Kind429, KindLatency, KindReset, KindCommitLost, KindTokenExpiry, KindStatus}

// terminal tells whether a kind decides the request's fate (everything but
// latency, which only delays it).
func (k Kind) terminal() bool { return k != KindLatency }

// RateHint says which headers of a 429 carry the wait.
type RateHint string

// Values of RateHint.
const (
	HintBoth       RateHint = ""            // Retry-After and X-RateLimit-Reset
	HintRetryAfter RateHint = "retry-after" // Retry-After only
	HintReset      RateHint = "reset"       // X-RateLimit-Reset (+ Remaining: 0) only
)

// Rule is one fault for the requests it matches.
type Rule struct {
	Method     string // "" or "*" = any method
	PathPrefix string // "" or "*" = the vendor's scope (Vendor.Scope)
	Kind       Kind
	// Share is the fraction of matching requests the rule hits, in [0,1].
	// The zero value means every matching request (a rule that never fires
	// is removed rather than added).
	Share float64
	// Times is how often the rule fires at most; 0 = no limit. A rule that
	// has fired Times times is removed.
	Times int
	// As restricts the rule to the requests of one caller identity, as the
	// vendor names it (Vendor.Caller): the ServiceNow basic-auth user name,
	// the OAuth client id behind a Hyperproof bearer token. "" = every
	// caller.
	As string

	Status     int           // Kind5xx: 500..599 (default 500); KindStatus: any (default 500)
	RetryAfter time.Duration // Kind429: announced wait, rounded up to whole seconds (default 1s)
	Hint       RateHint      // Kind429: which headers carry the wait
	Latency    time.Duration // KindLatency: the added delay (> 0)
	Header     http.Header   // KindStatus: answer headers (Content-Type defaults to JSON)
	Body       string        // KindStatus: answer body
}

// String renders the rule in the spec grammar (KindStatus rules, which the
// grammar cannot express, show their status only).
func (r Rule) String() string {
	var b strings.Builder
	m := r.Method
	if m == "" {
		m = "*"
	}
	b.WriteString(m)
	if r.PathPrefix != "" && r.PathPrefix != "*" {
		b.WriteString(" " + r.PathPrefix)
	}
	b.WriteString(":")
	share := r.Share
	if share == 0 {
		share = 1
	}
	switch r.Kind {
	case KindLatency:
		fmt.Fprintf(&b, "latency=%s", r.Latency)
		if share != 1 {
			fmt.Fprintf(&b, ",share=%g", share)
		}
	default:
		fmt.Fprintf(&b, "%s=%g", r.Kind, share)
	}
	switch r.Kind {
	case Kind5xx, KindStatus:
		if r.Status != 0 {
			fmt.Fprintf(&b, ",status=%d", r.Status)
		}
	case Kind429:
		if r.RetryAfter != 0 {
			fmt.Fprintf(&b, ",retry-after=%d", retrySeconds(r.RetryAfter))
		}
		if r.Hint != HintBoth {
			fmt.Fprintf(&b, ",hint=%s", r.Hint)
		}
	}
	if r.Times > 0 {
		fmt.Fprintf(&b, ",times=%d", r.Times)
	}
	if r.As != "" {
		fmt.Fprintf(&b, ",as=%s", r.As)
	}
	return b.String()
}

// validate checks a rule and fills in its defaults.
func (r *Rule) validate() error {
	if r.Method == "*" {
		r.Method = ""
	}
	if r.PathPrefix == "*" {
		r.PathPrefix = ""
	}
	if r.Method != "" && !isMethod(r.Method) {
		return fmt.Errorf("invalid method %q (want an upper-case HTTP method or *)", r.Method)
	}
	if r.PathPrefix != "" && !strings.HasPrefix(r.PathPrefix, "/") {
		return fmt.Errorf("path prefix %q must start with /", r.PathPrefix)
	}
	if math.IsNaN(r.Share) || r.Share < 0 || r.Share > 1 {
		return fmt.Errorf("share %v is not in [0,1]", r.Share)
	}
	if r.Share == 0 {
		r.Share = 1
	}
	if r.Times < 0 {
		return fmt.Errorf("times %d is negative", r.Times)
	}
	if err := checkCaller(r.As); err != nil {
		return err
	}
	switch r.Kind {
	case Kind5xx:
		if r.Status == 0 {
			r.Status = http.StatusInternalServerError
		}
		if r.Status < 500 || r.Status > 599 {
			return fmt.Errorf("status %d of a 5xx fault is not in 500..599", r.Status)
		}
	case Kind429:
		if r.RetryAfter < 0 {
			return fmt.Errorf("retry-after %s is negative", r.RetryAfter)
		}
		if r.RetryAfter == 0 {
			r.RetryAfter = time.Second
		}
		switch r.Hint {
		case HintBoth, HintRetryAfter, HintReset:
		default:
			return fmt.Errorf("hint %q is not one of both, retry-after, reset", r.Hint)
		}
	case KindLatency:
		if r.Latency <= 0 {
			return fmt.Errorf("latency %s must be positive", r.Latency)
		}
	case KindStatus:
		if r.Status == 0 {
			r.Status = http.StatusInternalServerError
		}
		if r.Status < 100 || r.Status > 999 {
			return fmt.Errorf("status %d is not an HTTP status", r.Status)
		}
	case KindReset, KindCommitLost, KindTokenExpiry:
	default:
		return fmt.Errorf("unknown fault kind %q", r.Kind)
	}
	return nil
}

// retrySeconds rounds a wait up to whole seconds, at least 1.
func retrySeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

func isMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range m {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// checkCaller checks the identity of an as= restriction: no white space and
// none of the spec's separators (",", ";", ":", "="), so that every rule can
// be written back in the grammar.
func checkCaller(as string) error {
	if strings.ContainsAny(as, ",;:= \t\r\n") {
		return fmt.Errorf("caller identity %q holds white space or one of , ; : =", as)
	}
	return nil
}

// matches tells whether the rule applies to r; scope is the vendor's scope
// for rules without a path, caller the identity the vendor read from the
// request ("" = unknown, which an as= rule never matches).
func (r *Rule) matches(req *http.Request, scope, caller string) bool {
	if r.Method != "" && r.Method != req.Method {
		return false
	}
	if r.As != "" && r.As != caller {
		return false
	}
	prefix := r.PathPrefix
	if prefix == "" {
		prefix = scope
	}
	return strings.HasPrefix(req.URL.Path, prefix)
}
