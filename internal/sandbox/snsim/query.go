package snsim

import (
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// An encoded query: ^NQ-separated groups (OR'ed), each an AND of terms, each
// term an OR of conditions (^OR binds tighter than ^), plus ORDERBY clauses.
type encodedQuery struct {
	groups [][][]cond
	orders []orderBy
}

type cond struct {
	field string
	op    string
	value string
}

type orderBy struct {
	field string
	desc  bool
}

// Operators, longest first so that a prefix never shadows a longer one.
var operators = []string{
	"ISNOTEMPTY", "ISEMPTY", "ANYTHING", "STARTSWITH", "ENDSWITH",
	"NOT LIKE", "NOT IN", "BETWEEN", "LIKE", "IN",
	"!=", ">=", "<=", "=", ">", "<",
}

// parseQuery parses the subset of the encoded-query language the simulator
// supports. Terms naming a field the table does not have, or an operator it
// does not know, are dropped, like a real instance silently ignores invalid
// terms (glide.invalid_query.returns_no_rows=false). The dropped terms are
// returned for logging.
func parseQuery(q string, t *table) (encodedQuery, []string) {
	var eq encodedQuery
	var ignored []string
	if q == "" {
		return eq, nil
	}
	for _, groupText := range strings.Split(q, "^NQ") {
		var group [][]cond
		for _, tok := range strings.Split(groupText, "^") {
			if tok == "" || tok == "EQ" {
				continue
			}
			if after, ok := strings.CutPrefix(tok, "ORDERBYDESC"); ok {
				if _, known := t.byName[after]; known {
					eq.orders = append(eq.orders, orderBy{field: after, desc: true})
				} else {
					ignored = append(ignored, tok)
				}
				continue
			}
			if after, ok := strings.CutPrefix(tok, "ORDERBY"); ok {
				if _, known := t.byName[after]; known {
					eq.orders = append(eq.orders, orderBy{field: after})
				} else {
					ignored = append(ignored, tok)
				}
				continue
			}
			isOr := false
			if after, ok := strings.CutPrefix(tok, "OR"); ok {
				isOr, tok = true, after
			}
			c, ok := parseCond(tok, t)
			if !ok {
				ignored = append(ignored, tok)
				continue
			}
			if isOr && len(group) > 0 {
				group[len(group)-1] = append(group[len(group)-1], c)
			} else {
				group = append(group, []cond{c})
			}
		}
		eq.groups = append(eq.groups, group)
	}
	return eq, ignored
}

func parseCond(tok string, t *table) (cond, bool) {
	// Field names are lower case ([a-z0-9_.]); operators start with an
	// upper-case letter or a symbol.
	i := 0
	for i < len(tok) {
		c := tok[i]
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' {
			i++
			continue
		}
		break
	}
	name, rest := tok[:i], tok[i:]
	if _, ok := t.byName[name]; !ok {
		return cond{}, false
	}
	for _, op := range operators {
		if after, ok := strings.CutPrefix(rest, op); ok {
			if (op == "ISEMPTY" || op == "ISNOTEMPTY" || op == "ANYTHING") && after != "" {
				return cond{}, false
			}
			return cond{field: name, op: op, value: after}, true
		}
	}
	return cond{}, false
}

func (q encodedQuery) match(t *table, rec record) bool {
	if len(q.groups) == 0 {
		return true
	}
	for _, group := range q.groups {
		if matchGroup(t, rec, group) {
			return true
		}
	}
	return false
}

func matchGroup(t *table, rec record, group [][]cond) bool {
	for _, term := range group {
		ok := false
		for _, c := range term {
			if c.eval(t, rec) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func (c cond) eval(t *table, rec record) bool {
	f := t.byName[c.field]
	v := rec[c.field]
	switch c.op {
	case "ISEMPTY":
		return v == ""
	case "ISNOTEMPTY":
		return v != ""
	case "ANYTHING":
		return true
	case "IN", "NOT IN":
		in := false
		for _, alt := range strings.Split(c.value, ",") {
			if compare(f, v, alt) == 0 {
				in = true
				break
			}
		}
		return in == (c.op == "IN")
	case "STARTSWITH":
		return strings.HasPrefix(strings.ToLower(v), strings.ToLower(c.value))
	case "ENDSWITH":
		return strings.HasSuffix(strings.ToLower(v), strings.ToLower(c.value))
	case "LIKE":
		return strings.Contains(strings.ToLower(v), strings.ToLower(c.value))
	case "NOT LIKE":
		return !strings.Contains(strings.ToLower(v), strings.ToLower(c.value))
	case "BETWEEN":
		lo, hi, ok := strings.Cut(c.value, "@")
		if !ok || v == "" {
			return false
		}
		a, okA := compareOK(f, v, lo)
		b, okB := compareOK(f, v, hi)
		return okA && okB && a >= 0 && b <= 0
	case "=":
		return compare(f, v, c.value) == 0
	case "!=":
		return compare(f, v, c.value) != 0
	}
	// Ordering comparisons never match an empty value.
	if v == "" {
		return false
	}
	r, ok := compareOK(f, v, c.value)
	if !ok {
		return false
	}
	switch c.op {
	case ">":
		return r > 0
	case ">=":
		return r >= 0
	case "<":
		return r < 0
	case "<=":
		return r <= 0
	}
	return false
}

// compare orders two values of a field; strings compare case-insensitively,
// as on the instance's database.
func compare(f field, a, b string) int {
	r, ok := compareOK(f, a, b)
	if !ok {
		return strings.Compare(strings.ToLower(a), strings.ToLower(b))
	}
	return r
}

func compareOK(f field, a, b string) (int, bool) {
	switch f.kind {
	case kDate:
		if a == "" || b == "" {
			return strings.Compare(a, b), true
		}
		ta, okA := parseDateLiteral(a)
		tb, okB := parseDateLiteral(b)
		if !okA || !okB {
			return 0, false
		}
		return ta.Compare(tb), true
	case kInt, kChoice:
		na, errA := strconv.ParseInt(a, 10, 64)
		nb, errB := strconv.ParseInt(b, 10, 64)
		if errA == nil && errB == nil {
			switch {
			case na < nb:
				return -1, true
			case na > nb:
				return 1, true
			}
			return 0, true
		}
	case kBool:
		return strings.Compare(normBool(a), normBool(b)), true
	}
	return strings.Compare(strings.ToLower(a), strings.ToLower(b)), true
}

func normBool(s string) string {
	switch strings.ToLower(s) {
	case "true", "1":
		return "true"
	}
	return "false"
}

var dateGenerate = regexp.MustCompile(`^javascript:gs\.dateGenerate\(\s*'(\d{4}-\d{2}-\d{2})'\s*,\s*'(\d{2}:\d{2}:\d{2})'\s*\)$`)

// parseDateLiteral reads a date as written in a query or a write: raw
// "YYYY-MM-DD HH:MM:SS", a bare date, or gs.dateGenerate('date','time').
// The simulated integration user's time zone is UTC.
func parseDateLiteral(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if m := dateGenerate.FindStringSubmatch(s); m != nil {
		s = m[1] + " " + m[2]
	}
	if t, err := time.ParseInLocation(dateLayout, s, time.UTC); err == nil {
		return t, true
	}
	if t, err := time.ParseInLocation("2006-01-02", s, time.UTC); err == nil {
		return t, true
	}
	return time.Time{}, false
}

// selectRows filters and orders a table's rows. Rows tied on every ORDERBY
// field come in sys_id order (the default order when there is none).
func selectRows(t *table, q encodedQuery, rows []record) []record {
	var out []record
	for _, rec := range rows {
		if q.match(t, rec) {
			out = append(out, rec)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		for _, o := range q.orders {
			c := compare(t.byName[o.field], out[i][o.field], out[j][o.field])
			if c == 0 {
				continue
			}
			if o.desc {
				return c > 0
			}
			return c < 0
		}
		return out[i]["sys_id"] < out[j]["sys_id"]
	})
	return out
}
