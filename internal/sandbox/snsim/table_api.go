package snsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

const maxJSONBody = 10 << 20

// apiError is an error answer decided while holding the lock.
type apiError struct {
	status  int
	message string
	detail  *string
}

func (e *apiError) write(w http.ResponseWriter) { writeError(w, e.status, e.message, e.detail) }

func errNotFound() *apiError {
	return &apiError{http.StatusNotFound, "No Record found", strp("Record doesn't exist or ACL restricts the record retrieval")}
}

func (s *Server) serveTable(w http.ResponseWriter, r *http.Request, rc *reqCtx, rest string) {
	tableName, id, _ := strings.Cut(rest, "/")
	if strings.Contains(id, "/") || tableName == "" {
		writeError(w, http.StatusBadRequest, "Requested URI does not represent any resource", nil)
		return
	}
	s.mu.Lock()
	t := s.tables[tableName]
	s.mu.Unlock()
	if t == nil {
		invalidTable(w, tableName)
		return
	}
	if id == "" {
		switch r.Method {
		case http.MethodGet:
			s.listRecords(w, r, rc, t)
		case http.MethodPost:
			s.createRecord(w, r, rc, t)
		default:
			methodNotAllowed(w, r)
		}
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.getRecord(w, r, rc, t, id)
	case http.MethodPatch, http.MethodPut:
		s.updateRecord(w, r, rc, t, id)
	case http.MethodDelete:
		s.deleteRecord(w, r, t, id)
	default:
		methodNotAllowed(w, r)
	}
}

func renderOptsFor(r *http.Request, rc *reqCtx) renderOpts {
	q := r.URL.Query()
	o := renderOpts{base: rc.base, apiPrefix: rc.apiPrefix, display: "false"}
	switch strings.ToLower(q.Get("sysparm_display_value")) {
	case "true":
		o.display = "true"
	case "all":
		o.display = "all"
	}
	o.excludeLink = strings.EqualFold(q.Get("sysparm_exclude_reference_link"), "true")
	if fs := q.Get("sysparm_fields"); fs != "" {
		o.fields = []string{}
		for _, f := range strings.Split(fs, ",") {
			if f = strings.TrimSpace(f); f != "" {
				o.fields = append(o.fields, f)
			}
		}
	}
	return o
}

// pageParams reads sysparm_limit / sysparm_offset, capped to MaxPageSize.
func (s *Server) pageParams(r *http.Request) (offset, limit int) {
	q := r.URL.Query()
	limit = s.opts.MaxPageSize
	if v, err := strconv.Atoi(q.Get("sysparm_limit")); err == nil && v > 0 && v < limit {
		limit = v
	}
	if v, err := strconv.Atoi(q.Get("sysparm_offset")); err == nil && v > 0 {
		offset = v
	}
	return offset, limit
}

// setPageHeaders writes X-Total-Count and, unless suppressed or everything
// fits in one page, the Link header. Link URLs echo the caller's query
// parameters with sysparm_offset (and the effective sysparm_limit) replaced.
// As recorded on real instances, "prev" is present on the first page too,
// with sysparm_offset=-1.
func (s *Server) setPageHeaders(w http.ResponseWriter, r *http.Request, rc *reqCtx, offset, limit, total int) {
	w.Header().Set("X-Total-Count", strconv.Itoa(total))
	q := r.URL.Query()
	if strings.EqualFold(q.Get("sysparm_suppress_pagination_header"), "true") {
		return
	}
	if total <= limit && offset == 0 {
		return
	}
	at := func(off int) string {
		v := url.Values{}
		for k, vs := range q {
			v[k] = append([]string(nil), vs...)
		}
		v.Set("sysparm_limit", strconv.Itoa(limit))
		v.Set("sysparm_offset", strconv.Itoa(off))
		return rc.base + r.URL.Path + "?" + v.Encode()
	}
	prev := offset - limit
	if prev < 0 {
		prev = -1
	}
	last := 0
	if total > 0 {
		last = (total - 1) / limit * limit
	}
	links := []string{
		fmt.Sprintf(`<%s>;rel="first"`, at(0)),
		fmt.Sprintf(`<%s>;rel="prev"`, at(prev)),
	}
	if offset+limit < total {
		links = append(links, fmt.Sprintf(`<%s>;rel="next"`, at(offset+limit)))
	}
	links = append(links, fmt.Sprintf(`<%s>;rel="last"`, at(last)))
	w.Header().Set("Link", strings.Join(links, ","))
}

func (s *Server) listRecords(w http.ResponseWriter, r *http.Request, rc *reqCtx, t *table) {
	o := renderOptsFor(r, rc)
	offset, limit := s.pageParams(r)

	s.mu.Lock()
	q, ignored := parseQuery(r.URL.Query().Get("sysparm_query"), t)
	rows := selectRows(t, q, t.sortedRows())
	total := len(rows)
	out := []map[string]any{}
	for i := offset; i < total && i < offset+limit; i++ {
		out = append(out, s.render(t, rows[i], o))
	}
	s.mu.Unlock()

	if len(ignored) > 0 {
		s.logf("snsim: %s: ignored invalid query terms %q", t.name, ignored)
	}
	s.setPageHeaders(w, r, rc, offset, limit, total)
	writeJSON(w, http.StatusOK, map[string]any{"result": out})
}

func (s *Server) getRecord(w http.ResponseWriter, r *http.Request, rc *reqCtx, t *table, id string) {
	o := renderOptsFor(r, rc)
	s.mu.Lock()
	rec, ok := t.rows[id]
	var out map[string]any
	if ok {
		out = s.render(t, rec, o)
	}
	s.mu.Unlock()
	if !ok {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": out})
}

// readJSONObject reads a request body that must be a JSON object ("" = {}).
func readJSONObject(r *http.Request) (map[string]any, *apiError) {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxJSONBody+1))
	if err != nil {
		return nil, &apiError{http.StatusBadRequest, "Exception while reading request", strp("Failed to read the request body")}
	}
	if len(data) > maxJSONBody {
		return nil, &apiError{http.StatusRequestEntityTooLarge, "Request entity too large", nil}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var body map[string]any
	bad := &apiError{http.StatusBadRequest, "Exception while reading request", strp("The payload is not valid JSON.")}
	if err := dec.Decode(&body); err != nil || body == nil {
		return nil, bad
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, bad
	}
	return body, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (s *Server) createRecord(w http.ResponseWriter, r *http.Request, rc *reqCtx, t *table) {
	body, aerr := readJSONObject(r)
	if aerr != nil {
		aerr.write(w)
		return
	}
	o := renderOptsFor(r, rc)

	s.mu.Lock()
	rec, hooks, aerr := s.insertLocked(t, body, rc.user)
	var out map[string]any
	if aerr == nil {
		out = s.render(t, rec, o)
	}
	s.mu.Unlock()
	s.startHooks(hooks)

	if aerr != nil {
		aerr.write(w)
		return
	}
	w.Header().Set("Location", rc.base+rc.apiPrefix+"/table/"+t.name+"/"+rec["sys_id"])
	if strings.EqualFold(r.Header.Get("X-no-response-body"), "true") {
		w.WriteHeader(http.StatusCreated)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"result": out})
}

func (s *Server) updateRecord(w http.ResponseWriter, r *http.Request, rc *reqCtx, t *table, id string) {
	body, aerr := readJSONObject(r)
	if aerr != nil {
		aerr.write(w)
		return
	}
	o := renderOptsFor(r, rc)

	s.mu.Lock()
	rec, hooks, aerr := s.updateLocked(t, id, body, rc.user)
	var out map[string]any
	if aerr == nil {
		out = s.render(t, rec, o)
	}
	s.mu.Unlock()
	s.startHooks(hooks)

	if aerr != nil {
		aerr.write(w)
		return
	}
	if strings.EqualFold(r.Header.Get("X-no-response-body"), "true") {
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": out})
}

func (s *Server) deleteRecord(w http.ResponseWriter, r *http.Request, t *table, id string) {
	s.mu.Lock()
	var aerr *apiError
	var files []string
	switch {
	case t.readOnly:
		aerr = &apiError{http.StatusForbidden, "Operation Failed", strp("ACL Exception Delete Failed due to security constraints")}
	case t.rows[id] == nil:
		aerr = errNotFound()
	default:
		delete(t.rows, id)
		// Deleting a record deletes its attachments.
		at := s.tables["sys_attachment"]
		for aid, a := range at.rows {
			if a["table_name"] == t.name && a["table_sys_id"] == id {
				delete(at.rows, aid)
				if p, ok := s.files[aid]; ok {
					files = append(files, p)
					delete(s.files, aid)
				}
			}
		}
	}
	s.mu.Unlock()
	for _, p := range files {
		removeFile(s, p)
	}
	if aerr != nil {
		aerr.write(w)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// isSystemField tells fields a client cannot write (sys_id only on insert).
func isSystemField(name string) bool { return strings.HasPrefix(name, "sys_") }

type journalWrite struct{ element, value string }

// applyBody converts and applies client-written fields to rec; journal
// writes are returned instead of stored. It reports whether a stored field
// changed and whether state changed. On task tables active is not written
// directly: it follows state, as the task business rules make it.
func (s *Server) applyBody(t *table, rec record, body map[string]any) (journals []journalWrite, changed, stateChanged bool) {
	for _, k := range sortedKeys(body) {
		f, ok := t.byName[k]
		if !ok || isSystemField(k) || (t.task && k == "active") {
			continue // unknown fields are silently ignored
		}
		v, ok := toStored(body[k], f)
		if !ok {
			s.logf("snsim: %s.%s: value not accepted, ignored", t.name, k)
			continue
		}
		if f.kind == kJournal {
			if strings.TrimSpace(v) != "" {
				journals = append(journals, journalWrite{k, v})
			}
			continue
		}
		if rec[k] != v {
			rec[k] = v
			changed = true
			if k == "state" {
				stateChanged = true
			}
		}
	}
	return journals, changed, stateChanged
}

func (s *Server) insertLocked(t *table, body map[string]any, user string) (record, []hook, *apiError) {
	if t.readOnly {
		return nil, nil, &apiError{http.StatusForbidden, "Operation Failed", strp("ACL Exception Insert Failed due to security constraints")}
	}
	rec := t.blank()
	journals, _, _ := s.applyBody(t, rec, body)

	id, _ := body["sys_id"].(string)
	if id != "" {
		if _, exists := t.rows[id]; exists {
			what := rec["number"]
			if what == "" {
				what = id
			}
			return nil, nil, &apiError{http.StatusForbidden, "Operation Failed", strp(fmt.Sprintf("Error during insert of %s (%s)", t.name, what))}
		}
	} else {
		id = newSysID()
	}
	rec["sys_id"] = id
	if t.prefix != "" && rec["number"] == "" {
		rec["number"] = fmt.Sprintf("%s%07d", t.prefix, t.next)
		t.next++
	}
	if t.task {
		rec["sys_class_name"] = t.name
		if rec["state"] == "" {
			rec["state"] = t.defaultState
		}
		rec["active"] = strconv.FormatBool(!closedStates[rec["state"]])
	}
	now := s.nowString()
	stampCreate(rec, now, user)
	t.rows[id] = rec
	for _, j := range journals {
		s.addJournalLocked(t.name, id, j.element, j.value, user, now)
	}
	var hooks []hook
	if t.task && strings.HasPrefix(rec["correlation_id"], CorrelationPrefix) {
		hooks = s.queueHookLocked(t.name, id, "insert")
	}
	return rec, hooks, nil
}

func (s *Server) updateLocked(t *table, id string, body map[string]any, user string) (record, []hook, *apiError) {
	rec, ok := t.rows[id]
	if !ok {
		return nil, nil, errNotFound()
	}
	if t.readOnly {
		return nil, nil, &apiError{http.StatusForbidden, "Operation Failed", strp("ACL Exception Update Failed due to security constraints")}
	}
	journals, changed, stateChanged := s.applyBody(t, rec, body)
	if t.task && stateChanged {
		rec["active"] = strconv.FormatBool(!closedStates[rec["state"]])
	}
	if len(journals) > 0 {
		changed = true
	}
	if !changed {
		// Nothing changed: the platform skips the update (no new
		// sys_mod_count, no business rules).
		return rec, nil, nil
	}
	now := s.nowString()
	for _, j := range journals {
		s.addJournalLocked(t.name, id, j.element, j.value, user, now)
	}
	rec["sys_updated_on"] = now
	rec["sys_updated_by"] = user
	n, _ := strconv.ParseInt(rec["sys_mod_count"], 10, 64)
	rec["sys_mod_count"] = strconv.FormatInt(n+1, 10)
	var hooks []hook
	if t.task && strings.HasPrefix(rec["correlation_id"], CorrelationPrefix) {
		hooks = s.queueHookLocked(t.name, id, "update")
	}
	return rec, hooks, nil
}

func (s *Server) addJournalLocked(tableName, elementID, element, value, user, now string) {
	jt := s.tables["sys_journal_field"]
	id := newSysID()
	jt.rows[id] = record{
		"sys_id":         id,
		"name":           tableName,
		"element_id":     elementID,
		"element":        element,
		"value":          value,
		"sys_tags":       "",
		"sys_created_on": now,
		"sys_created_by": user,
	}
}
