package faults

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Spec is a parsed spec string: the rules of each target and, when given,
// the seed of the share draws.
type Spec struct {
	Seed   uint64
	Seeded bool
	Rules  map[string][]Rule // by target (ServiceNow, Hyperproof)
}

// For returns the rules of one target.
func (s Spec) For(target string) []Rule { return s.Rules[target] }

// Empty tells whether the spec has no rules at all.
func (s Spec) Empty() bool {
	for _, rs := range s.Rules {
		if len(rs) > 0 {
			return false
		}
	}
	return true
}

// FromEnv parses the SANDBOX_FAULTS environment variable (unset or empty =
// no faults).
func FromEnv() (Spec, error) {
	s, err := Parse(os.Getenv(EnvVar))
	if err != nil {
		return Spec{}, fmt.Errorf("%s: %w", EnvVar, err)
	}
	return s, nil
}

// Parse parses a spec (see the package documentation for the grammar). The
// error, when there is one, is a single line naming the clause.
func Parse(spec string) (Spec, error) {
	out := Spec{Rules: map[string][]Rule{}}
	for i, raw := range strings.Split(spec, ";") {
		clause := strings.TrimSpace(raw)
		if clause == "" {
			continue
		}
		fail := func(format string, args ...any) (Spec, error) {
			return Spec{}, fmt.Errorf("faults: clause %d %q: %s", i+1, oneLine(clause), fmt.Sprintf(format, args...))
		}
		if v, ok := strings.CutPrefix(clause, "seed="); ok {
			if out.Seeded {
				return fail("seed given twice")
			}
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return fail("seed %q is not an unsigned integer", strings.TrimSpace(v))
			}
			out.Seed, out.Seeded = n, true
			continue
		}
		first := strings.Index(clause, ":")
		last := strings.LastIndex(clause, ":")
		if first < 0 || first == last {
			return fail(`want target:endpoint:faults (e.g. "servicenow:POST /api/now/attachment:5xx=0.2") or seed=N`)
		}
		target := strings.TrimSpace(clause[:first])
		endpoint := strings.TrimSpace(clause[first+1 : last])
		items := strings.TrimSpace(clause[last+1:])
		if target != ServiceNow && target != Hyperproof {
			return fail("unknown target %q (want %s or %s)", target, ServiceNow, Hyperproof)
		}
		method, prefix, err := parseEndpoint(endpoint)
		if err != nil {
			return fail("%v", err)
		}
		rules, err := parseItems(items)
		if err != nil {
			return fail("%v", err)
		}
		for _, r := range rules {
			if r.Kind == KindTokenExpiry && target != Hyperproof {
				return fail("token-expiry applies to %s only", Hyperproof)
			}
			if r.Share == 0 { // "kind=0": parsed and checked, but off
				continue
			}
			r.Method, r.PathPrefix = method, prefix
			if err := r.validate(); err != nil {
				return fail("%v", err)
			}
			out.Rules[target] = append(out.Rules[target], r)
		}
	}
	return out, nil
}

// parseEndpoint reads "*", "METHOD", "METHOD /prefix", "* /prefix" or
// "/prefix".
func parseEndpoint(s string) (method, prefix string, err error) {
	if s == "" {
		return "", "", fmt.Errorf(`empty endpoint (use "*" for every request)`)
	}
	fields := strings.Fields(s)
	switch len(fields) {
	case 1:
		f := fields[0]
		switch {
		case f == "*":
			return "", "", nil
		case strings.HasPrefix(f, "/"):
			return "", f, nil
		case isMethod(f):
			return f, "", nil
		}
		return "", "", fmt.Errorf("endpoint %q is neither *, an upper-case HTTP method nor a /path prefix", f)
	case 2:
		m, p := fields[0], fields[1]
		if m != "*" && !isMethod(m) {
			return "", "", fmt.Errorf("method %q is not an upper-case HTTP method or *", m)
		}
		if p != "*" && !strings.HasPrefix(p, "/") {
			return "", "", fmt.Errorf("path prefix %q must start with /", p)
		}
		if m == "*" {
			m = ""
		}
		if p == "*" {
			p = ""
		}
		return m, p, nil
	}
	return "", "", fmt.Errorf("endpoint %q has more than a method and a path prefix", s)
}

var kindNames = map[string]Kind{
	"5xx": Kind5xx, "429": Kind429, "latency": KindLatency, "reset": KindReset,
	"commit-lost": KindCommitLost, "token-expiry": KindTokenExpiry,
}

// parseItems reads the comma-separated items of a clause: each kind starts
// a rule, each param sets a field of the rule before it.
func parseItems(s string) ([]Rule, error) {
	if s == "" {
		return nil, fmt.Errorf("no fault given (want e.g. 5xx=0.2, 429, latency=50ms, reset, commit-lost, token-expiry)")
	}
	var rules []Rule
	var seen map[string]bool // params set on the current rule
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		key, value, hasValue := strings.Cut(item, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if key == "" {
			return nil, fmt.Errorf("empty item in %q", s)
		}
		if hasValue && value == "" {
			return nil, fmt.Errorf("%s= has no value", key)
		}
		if kind, ok := kindNames[key]; ok {
			r := Rule{Kind: kind, Share: 1}
			switch {
			case kind == KindLatency:
				if !hasValue {
					return nil, fmt.Errorf("latency needs a duration, e.g. latency=50ms")
				}
				d, err := time.ParseDuration(value)
				if err != nil || d <= 0 {
					return nil, fmt.Errorf("latency %q is not a positive duration", value)
				}
				r.Latency = d
			case hasValue:
				p, err := parseShare(value)
				if err != nil {
					return nil, fmt.Errorf("%s: %v", key, err)
				}
				r.Share = p
			}
			rules = append(rules, r)
			seen = map[string]bool{}
			continue
		}
		if len(rules) == 0 {
			return nil, fmt.Errorf("unknown fault kind %q (want 5xx, 429, latency, reset, commit-lost or token-expiry)", key)
		}
		r := &rules[len(rules)-1]
		if seen[key] {
			return nil, fmt.Errorf("%s given twice for one %s fault", key, r.Kind)
		}
		seen[key] = true
		if !hasValue {
			return nil, fmt.Errorf("%s needs a value (%s=...)", key, key)
		}
		switch key {
		case "share":
			if r.Kind != KindLatency {
				return nil, fmt.Errorf("the share of a %s fault is its value: write %s=P", r.Kind, r.Kind)
			}
			p, err := parseShare(value)
			if err != nil {
				return nil, fmt.Errorf("share: %v", err)
			}
			r.Share = p
		case "times":
			n, err := strconv.Atoi(value)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("times %q is not a positive integer", value)
			}
			r.Times = n
		case "status":
			if r.Kind != Kind5xx {
				return nil, fmt.Errorf("status applies to 5xx faults only")
			}
			n, err := strconv.Atoi(value)
			if err != nil || n < 500 || n > 599 {
				return nil, fmt.Errorf("status %q is not in 500..599", value)
			}
			r.Status = n
		case "retry-after":
			if r.Kind != Kind429 {
				return nil, fmt.Errorf("retry-after applies to 429 faults only")
			}
			d, err := parseWait(value)
			if err != nil {
				return nil, err
			}
			r.RetryAfter = d
		case "as":
			if err := checkCaller(value); err != nil {
				return nil, err
			}
			r.As = value
		case "hint":
			if r.Kind != Kind429 {
				return nil, fmt.Errorf("hint applies to 429 faults only")
			}
			switch value {
			case "both":
				r.Hint = HintBoth
			case string(HintRetryAfter), string(HintReset):
				r.Hint = RateHint(value)
			default:
				return nil, fmt.Errorf("hint %q is not one of both, retry-after, reset", value)
			}
		default:
			return nil, fmt.Errorf("unknown item %q (kinds: 5xx, 429, latency, reset, commit-lost, token-expiry; params: share, times, status, retry-after, hint, as)", key)
		}
	}
	return rules, nil
}

func parseShare(v string) (float64, error) {
	p, err := strconv.ParseFloat(v, 64)
	if err != nil || p != p {
		return 0, fmt.Errorf("share %q is not a number", v)
	}
	if p < 0 || p > 1 {
		return 0, fmt.Errorf("share %s is not in [0,1]", v)
	}
	return p, nil
}

// parseWait reads whole seconds ("2") or a duration ("2s", "1500ms").
func parseWait(v string) (time.Duration, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 1 || n > 86400 {
			return 0, fmt.Errorf("retry-after %q is not in 1..86400 seconds", v)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > 24*time.Hour {
		return 0, fmt.Errorf("retry-after %q is neither whole seconds nor a positive duration up to 24h", v)
	}
	return d, nil
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}
