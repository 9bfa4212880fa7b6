package snsim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

type kind int

const (
	kString kind = iota
	kInt
	kBool
	kDate
	kRef     // reference: value is the referenced sys_id
	kChoice  // integer choice (state)
	kJournal // comments / work_notes: never stored on the row
)

type field struct {
	name string
	kind kind
	ref  string // referenced table for kRef
}

type record map[string]string

type table struct {
	name     string
	fields   []field
	byName   map[string]field
	prefix   string // number prefix, "" = no number
	next     int    // next number
	rows     map[string]record
	readOnly bool // Table API writes refused (sys_journal_field, sys_attachment)
	task     bool
	display  string // field shown as a reference's display value
	// defaultState is the state of a new task when none is given.
	defaultState string
}

func (t *table) blank() record {
	rec := record{}
	for _, f := range t.fields {
		if f.kind != kJournal {
			rec[f.name] = ""
		}
	}
	return rec
}

func (t *table) findBy(fieldName, value string) record {
	for _, rec := range t.rows {
		if rec[fieldName] == value {
			return rec
		}
	}
	return nil
}

func (t *table) sortedRows() []record {
	out := make([]record, 0, len(t.rows))
	for _, rec := range t.rows {
		out = append(out, rec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i]["sys_id"] < out[j]["sys_id"] })
	return out
}

func newTable(name string, fields []field) *table {
	t := &table{name: name, fields: fields, byName: map[string]field{}, rows: map[string]record{}, display: "sys_id"}
	for _, f := range fields {
		t.byName[f.name] = f
	}
	return t
}

var sysFields = []field{
	{name: "sys_created_on", kind: kDate},
	{name: "sys_created_by"},
	{name: "sys_updated_on", kind: kDate},
	{name: "sys_updated_by"},
	{name: "sys_mod_count", kind: kInt},
}

func withSys(fs ...field) []field {
	out := append([]field{{name: "sys_id"}}, fs...)
	return append(out, sysFields...)
}

// closedStates are the task states that make a record inactive.
var closedStates = map[string]bool{"3": true, "4": true, "7": true, "157": true}

func newSchema() map[string]*table {
	tables := map[string]*table{}
	taskTable := func(name, prefix, defaultState string) {
		t := newTable(name, withSys(
			field{name: "number"},
			field{name: "short_description"},
			field{name: "description"},
			field{name: "state", kind: kChoice},
			field{name: "assigned_to", kind: kRef, ref: "sys_user"},
			field{name: "due_date", kind: kDate},
			field{name: "correlation_id"},
			field{name: "correlation_display"},
			field{name: "active", kind: kBool},
			field{name: "sys_class_name"},
			field{name: "comments", kind: kJournal},
			field{name: "work_notes", kind: kJournal},
		))
		t.prefix, t.next, t.task, t.display = prefix, 10001, true, "number"
		t.defaultState = defaultState
		tables[name] = t
	}
	taskTable("sc_task", "SCTASK", "1")
	taskTable("incident_task", "INCTASK", "1")
	taskTable("problem_task", "PTASK", "151")

	u := newTable("sys_user", withSys(
		field{name: "user_name"},
		field{name: "name"},
		field{name: "first_name"},
		field{name: "last_name"},
		field{name: "email"},
		field{name: "active", kind: kBool},
	))
	u.display = "name"
	tables[u.name] = u

	j := newTable("sys_journal_field", []field{
		{name: "sys_id"},
		{name: "name"},
		{name: "element_id"},
		{name: "element"},
		{name: "value"},
		{name: "sys_tags"},
		{name: "sys_created_on", kind: kDate},
		{name: "sys_created_by"},
	})
	j.readOnly = true
	tables[j.name] = j

	c := newTable("sys_choice", withSys(
		field{name: "name"},
		field{name: "element"},
		field{name: "value"},
		field{name: "label"},
		field{name: "sequence", kind: kInt},
		field{name: "language"},
		field{name: "inactive", kind: kBool},
	))
	c.display = "label"
	tables[c.name] = c

	a := newTable("sys_attachment", withSys(
		field{name: "file_name"},
		field{name: "content_type"},
		field{name: "size_bytes", kind: kInt},
		field{name: "size_compressed", kind: kInt},
		field{name: "compressed", kind: kBool},
		field{name: "table_name"},
		field{name: "table_sys_id"},
		field{name: "hash"},
		field{name: "state"},
		field{name: "chunk_size_bytes"},
		field{name: "average_image_color"},
		field{name: "image_width"},
		field{name: "image_height"},
		field{name: "sys_tags"},
	))
	a.readOnly = true
	a.display = "file_name"
	tables[a.name] = a
	return tables
}

func newSysID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b[:])
}

// ---------------------------------------------------------------------------
// Value conversion on write

// toStored converts a JSON value written by a client into the stored string,
// the way the platform coerces it: numbers and booleans become their text,
// null becomes "", and an object written into a field is stored as the Java
// map's toString (cut to the column's 32 characters for a reference), which
// is how garbage such as "{link=https://instance.serviceno" ends up in
// reference fields on real instances.
func toStored(v any, f field) (string, bool) {
	var s string
	switch x := v.(type) {
	case nil:
		s = ""
	case string:
		s = x
	case bool:
		s = strconv.FormatBool(x)
	case json.Number:
		s = string(x)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%v", k, x[k]))
		}
		s = "{" + strings.Join(parts, ", ") + "}"
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			parts = append(parts, fmt.Sprint(e))
		}
		s = strings.Join(parts, ",")
	default:
		s = fmt.Sprint(x)
	}
	switch f.kind {
	case kRef:
		if len(s) > 32 {
			s = s[:32]
		}
	case kDate:
		if s == "" {
			return "", true
		}
		t, ok := parseDateLiteral(s)
		if !ok {
			return "", false // the platform drops an unparsable date
		}
		s = t.Format(dateLayout)
	case kBool:
		switch strings.ToLower(s) {
		case "true", "1":
			s = "true"
		case "false", "0", "":
			s = "false"
		default:
			return "", false
		}
	}
	return s, true
}

// ---------------------------------------------------------------------------
// Rendering

type renderOpts struct {
	fields      []string // nil = all
	display     string   // "false", "true", "all"
	excludeLink bool
	base        string // scheme://host
	apiPrefix   string // /api/now or /api/now/v2
}

// render turns a row into the Table API JSON object.
func (s *Server) render(t *table, rec record, o renderOpts) map[string]any {
	out := map[string]any{}
	names := o.fields
	if names == nil {
		for _, f := range t.fields {
			names = append(names, f.name)
		}
	}
	for _, name := range names {
		f, ok := t.byName[name]
		if !ok {
			continue
		}
		raw := rec[name] // journal fields are never on the row: ""
		switch o.display {
		case "true":
			out[name] = s.displayOnly(t, rec, f, raw, o)
		case "all":
			out[name] = s.displayAll(t, rec, f, raw, o)
		default:
			if f.kind == kRef && raw != "" && !o.excludeLink {
				out[name] = map[string]any{"link": s.link(f, raw, o), "value": raw}
			} else {
				out[name] = raw
			}
		}
	}
	return out
}

func (s *Server) link(f field, id string, o renderOpts) string {
	return o.base + o.apiPrefix + "/table/" + f.ref + "/" + id
}

func (s *Server) displayOnly(t *table, rec record, f field, raw string, o renderOpts) any {
	dv := s.displayValue(t, rec, f, raw)
	if f.kind == kRef && raw != "" && !o.excludeLink {
		// display_value=true: the reference loses its sys_id; only the link
		// still carries it.
		return map[string]any{"display_value": dv, "link": s.link(f, raw, o)}
	}
	return dv
}

func (s *Server) displayAll(t *table, rec record, f field, raw string, o renderOpts) any {
	dv := s.displayValue(t, rec, f, raw)
	m := map[string]any{"display_value": dv, "value": raw}
	if f.kind == kRef && raw != "" && !o.excludeLink {
		m["link"] = s.link(f, raw, o)
	}
	return m
}

// displayValue renders a value as the UI would for a user whose time zone is
// UTC and whose date format is the system default.
func (s *Server) displayValue(t *table, rec record, f field, raw string) any {
	switch f.kind {
	case kRef:
		if raw == "" {
			return ""
		}
		rt := s.tables[f.ref]
		if rt == nil {
			return ""
		}
		if target, ok := rt.rows[raw]; ok {
			return target[rt.display]
		}
		return ""
	case kChoice:
		if raw == "" {
			return nil // empty choice fields display as JSON null
		}
		return s.choiceLabel(t.name, f.name, raw)
	case kInt:
		return groupThousands(raw)
	case kJournal:
		return s.journalHistory(t.name, rec["sys_id"], f.name)
	}
	return raw
}

func (s *Server) choiceLabel(tableName, element, value string) string {
	ct := s.tables["sys_choice"]
	var inherited string
	for _, c := range ct.rows {
		if c["element"] != element || c["value"] != value || c["inactive"] == "true" {
			continue
		}
		switch c["name"] {
		case tableName:
			return c["label"]
		case "task":
			inherited = c["label"]
		}
	}
	if inherited != "" {
		return inherited
	}
	return value
}

func groupThousands(raw string) string {
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || (n < 1000 && n > -1000) {
		return raw
	}
	neg := n < 0
	if neg {
		n = -n
	}
	digits := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, d := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// journalHistory renders a journal field's history as display values show
// it: newest first, "<date> - <user's name> (<label>)\n<text>\n\n".
func (s *Server) journalHistory(tableName, sysID, element string) string {
	jt := s.tables["sys_journal_field"]
	var rows []record
	for _, j := range jt.rows {
		if j["element_id"] == sysID && j["element"] == element && j["name"] == tableName {
			rows = append(rows, j)
		}
	}
	sort.Slice(rows, func(a, b int) bool {
		if rows[a]["sys_created_on"] != rows[b]["sys_created_on"] {
			return rows[a]["sys_created_on"] > rows[b]["sys_created_on"]
		}
		return rows[a]["sys_id"] > rows[b]["sys_id"]
	})
	label := "Additional comments"
	if element == "work_notes" {
		label = "Work notes"
	}
	var b strings.Builder
	for _, j := range rows {
		who := j["sys_created_by"]
		if u := s.tables["sys_user"].findBy("user_name", who); u != nil && u["name"] != "" {
			who = u["name"]
		}
		fmt.Fprintf(&b, "%s - %s (%s)\n%s\n\n", j["sys_created_on"], who, label, j["value"])
	}
	return b.String()
}
