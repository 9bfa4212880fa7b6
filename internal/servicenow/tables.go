package servicenow

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var tableName = regexp.MustCompile(`^[a-z0-9_]+$`)

func checkTable(table string) error {
	if !tableName.MatchString(table) {
		return fmt.Errorf("servicenow: invalid table name %q", table)
	}
	return nil
}

// IsSysID tells whether s has the shape of a ServiceNow sys_id: 32 hex
// digits.
func IsSysID(s string) bool {
	_, err := hex.DecodeString(s)
	return len(s) == 32 && err == nil
}

func checkSysID(sysID string) error {
	if sysID == "" || strings.ContainsAny(sysID, "/?#") {
		return fmt.Errorf("servicenow: invalid sys_id %q", sysID)
	}
	return nil
}

// literal checks a value placed in an encoded query: "^" would end the term
// and start another one, so it is refused rather than silently changing the
// query.
func literal(what, v string) (string, error) {
	if strings.Contains(v, "^") || strings.ContainsAny(v, "\r\n") {
		return "", fmt.Errorf("servicenow: %s %q cannot be used in a query (contains ^ or a line break)", what, v)
	}
	return v, nil
}

func tablePath(table string) string { return "/api/now/table/" + url.PathEscape(table) }

func recordPath(table, sysID string) string {
	return tablePath(table) + "/" + url.PathEscape(sysID)
}

func listValues(fields, query string, limit int) url.Values {
	q := readValues(fields)
	q.Set("sysparm_query", query)
	q.Set("sysparm_limit", strconv.Itoa(limit))
	return q
}

// ---------------------------------------------------------------------------
// Tasks

// GetTask reads one task. A missing (or ACL-hidden) record is an *APIError
// with StatusCode 404.
func (c *Client) GetTask(ctx context.Context, table, sysID string) (Task, error) {
	if err := checkTable(table); err != nil {
		return Task{}, err
	}
	if err := checkSysID(sysID); err != nil {
		return Task{}, err
	}
	rec, err := c.getObject(ctx, c.endpoint(recordPath(table, sysID), readValues(taskFields)))
	if err != nil {
		return Task{}, err
	}
	return decodeTask(rec, table)
}

// FindTaskByCorrelation returns the task whose correlation_id is exactly
// correlationID (the oldest one if a retried create made several), or nil
// when there is none.
func (c *Client) FindTaskByCorrelation(ctx context.Context, table, correlationID string) (*Task, error) {
	if err := checkTable(table); err != nil {
		return nil, err
	}
	if correlationID == "" {
		return nil, errors.New("servicenow: empty correlation id")
	}
	id, err := literal("correlation id", correlationID)
	if err != nil {
		return nil, err
	}
	// The instance compares strings case-insensitively; keep exact matches
	// only.
	q := listValues(taskFields, "correlation_id="+id+"^ORDERBYsys_created_on^ORDERBYsys_id", 10)
	q.Set("sysparm_suppress_pagination_header", "true")
	var found *Task
	err = c.list(ctx, tablePath(table), q, func(r rawRecord) error {
		if found != nil {
			return nil
		}
		t, err := decodeTask(r, table)
		if err != nil {
			return err
		}
		if t.CorrelationID == correlationID {
			found = &t
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return found, nil
}

func (t NewTask) body() map[string]string {
	b := map[string]string{
		"short_description": t.ShortDescription,
		"description":       t.Description,
	}
	set := func(k, v string) {
		if v != "" {
			b[k] = v
		}
	}
	set("assigned_to", t.AssignedTo)
	set("due_date", t.DueDate)
	set("state", t.State)
	set("correlation_id", t.CorrelationID)
	set("correlation_display", t.CorrelationDisplay)
	return b
}

// CreateTask inserts a task. It handles both 201 answers seen from real
// instances: the created record in the body, and an empty body with the
// record's URL only in Location (then the record is read back).
//
// A create whose answer is lost cannot be told from one that failed: callers
// look the task up by correlation id before creating it again.
func (c *Client) CreateTask(ctx context.Context, table string, t NewTask) (Task, error) {
	if err := checkTable(table); err != nil {
		return Task{}, err
	}
	rec, hdr, err := c.sendJSON(ctx, http.MethodPost, c.endpoint(tablePath(table), readValues(taskFields)), t.body())
	if err != nil {
		return Task{}, err
	}
	if rec != nil {
		return decodeTask(rec, table)
	}
	loc := hdr.Get("Location")
	id := lastSegment(loc)
	if loc == "" || checkSysID(id) != nil {
		return Task{}, fmt.Errorf("servicenow: POST %s: created, but the answer had neither a body nor a Location header", tablePath(table))
	}
	return c.GetTask(ctx, table, id)
}

// UpdateTask PATCHes fields (raw values) and returns the record as stored.
// A 200 with an empty body is tolerated: the record is then read back.
func (c *Client) UpdateTask(ctx context.Context, table, sysID string, fields map[string]string) (Task, error) {
	if err := checkTable(table); err != nil {
		return Task{}, err
	}
	if err := checkSysID(sysID); err != nil {
		return Task{}, err
	}
	if len(fields) == 0 {
		return c.GetTask(ctx, table, sysID)
	}
	rec, _, err := c.sendJSON(ctx, http.MethodPatch, c.endpoint(recordPath(table, sysID), readValues(taskFields)), fields)
	if err != nil {
		return Task{}, err
	}
	if rec == nil {
		return c.GetTask(ctx, table, sysID)
	}
	return decodeTask(rec, table)
}

// ListTasksUpdatedSince lists the tasks updated at or after since (to the
// second, UTC) whose correlation_id starts with correlationPrefix, oldest
// first with sys_id as tie-breaker, across all pages. Rows of since's own
// second are included: callers de-duplicate by sys_id + sys_mod_count.
func (c *Client) ListTasksUpdatedSince(ctx context.Context, table string, since time.Time, correlationPrefix string) ([]Task, error) {
	if err := checkTable(table); err != nil {
		return nil, err
	}
	var terms []string
	if !since.IsZero() {
		terms = append(terms, "sys_updated_on>="+FormatTime(since))
	}
	if correlationPrefix != "" {
		p, err := literal("correlation prefix", correlationPrefix)
		if err != nil {
			return nil, err
		}
		terms = append(terms, "correlation_idSTARTSWITH"+p)
	}
	terms = append(terms, "ORDERBYsys_updated_on", "ORDERBYsys_id")
	out := []Task{}
	err := c.list(ctx, tablePath(table), listValues(taskFields, strings.Join(terms, "^"), pageSize), func(r rawRecord) error {
		t, err := decodeTask(r, table)
		if err != nil {
			return err
		}
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// Journal

// ListJournal lists the journal entries (sys_journal_field rows) of a record
// for the given elements (default comments and work_notes), created at or
// after since when since is not zero, oldest first with sys_id as
// tie-breaker, across all pages.
func (c *Client) ListJournal(ctx context.Context, table, sysID string, elements []string, since time.Time) ([]JournalEntry, error) {
	if err := checkTable(table); err != nil {
		return nil, err
	}
	if err := checkSysID(sysID); err != nil {
		return nil, err
	}
	if len(elements) == 0 {
		elements = []string{"comments", "work_notes"}
	}
	id, err := literal("sys_id", sysID)
	if err != nil {
		return nil, err
	}
	terms := []string{"element_id=" + id}
	for i, e := range elements {
		if !tableName.MatchString(e) {
			return nil, fmt.Errorf("servicenow: invalid journal element %q", e)
		}
		if i == 0 {
			terms = append(terms, "element="+e)
		} else {
			terms = append(terms, "ORelement="+e)
		}
	}
	if !since.IsZero() {
		terms = append(terms, "sys_created_on>="+FormatTime(since))
	}
	terms = append(terms, "ORDERBYsys_created_on", "ORDERBYsys_id")
	out := []JournalEntry{}
	err = c.list(ctx, tablePath("sys_journal_field"), listValues(journalFields, strings.Join(terms, "^"), pageSize), func(r rawRecord) error {
		j, err := decodeJournal(r)
		if err != nil {
			return err
		}
		if j.Table == "" {
			j.Table = table
		}
		out = append(out, j)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AddComment appends an "Additional comments" journal entry to a record.
// The record's comments field reads back "" afterwards; the entry is in
// sys_journal_field.
func (c *Client) AddComment(ctx context.Context, table, sysID, text string) error {
	if err := checkTable(table); err != nil {
		return err
	}
	if err := checkSysID(sysID); err != nil {
		return err
	}
	if strings.TrimSpace(text) == "" {
		// The instance silently drops a blank journal entry.
		return errors.New("servicenow: empty comment")
	}
	_, _, err := c.sendJSON(ctx, http.MethodPatch, c.endpoint(recordPath(table, sysID), readValues("sys_id")), map[string]string{"comments": text})
	return err
}

// ---------------------------------------------------------------------------
// Users

// FindUserByEmail returns the user with that e-mail (case-insensitive),
// preferring an active one, or nil when there is none.
func (c *Client) FindUserByEmail(ctx context.Context, email string) (*User, error) {
	email = strings.TrimSpace(email)
	if email == "" {
		return nil, errors.New("servicenow: empty e-mail")
	}
	e, err := literal("e-mail", email)
	if err != nil {
		return nil, err
	}
	return c.findUser(ctx, "email="+e, func(u User) bool { return strings.EqualFold(u.Email, email) })
}

// FindUserByUserName returns the user with that user_name, or nil.
func (c *Client) FindUserByUserName(ctx context.Context, userName string) (*User, error) {
	if userName == "" {
		return nil, errors.New("servicenow: empty user name")
	}
	n, err := literal("user name", userName)
	if err != nil {
		return nil, err
	}
	return c.findUser(ctx, "user_name="+n, func(u User) bool { return strings.EqualFold(u.UserName, userName) })
}

func (c *Client) findUser(ctx context.Context, cond string, match func(User) bool) (*User, error) {
	q := listValues(userFields, cond+"^ORDERBYsys_created_on^ORDERBYsys_id", 20)
	q.Set("sysparm_suppress_pagination_header", "true")
	var first, active *User
	err := c.list(ctx, tablePath("sys_user"), q, func(r rawRecord) error {
		u, err := decodeUser(r)
		if err != nil {
			return err
		}
		if !match(u) {
			return nil
		}
		if first == nil {
			first = &u
		}
		if active == nil && u.Active {
			active = &u
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if active != nil {
		return active, nil
	}
	return first, nil
}

// GetUser reads a sys_user row (404 *APIError when missing).
func (c *Client) GetUser(ctx context.Context, sysID string) (User, error) {
	if err := checkSysID(sysID); err != nil {
		return User{}, err
	}
	rec, err := c.getObject(ctx, c.endpoint(recordPath("sys_user", sysID), readValues(userFields)))
	if err != nil {
		return User{}, err
	}
	return decodeUser(rec)
}

// ---------------------------------------------------------------------------
// Choices

// ListChoices returns the active choices of a choice field (e.g. state) as
// the instance applies them to table: the table's own sys_choice rows if it
// has any, else those inherited from task. Rows repeated per language are
// folded into one (English preferred). Ordered by sequence, then value.
func (c *Client) ListChoices(ctx context.Context, table, element string) ([]Choice, error) {
	if err := checkTable(table); err != nil {
		return nil, err
	}
	if !tableName.MatchString(element) {
		return nil, fmt.Errorf("servicenow: invalid element %q", element)
	}
	query := "name=" + table + "^ORname=task^element=" + element + "^inactive=false^ORDERBYsequence^ORDERBYvalue"
	var own, inherited []Choice
	err := c.list(ctx, tablePath("sys_choice"), listValues(choiceFields, query, pageSize), func(r rawRecord) error {
		ch := decodeChoice(r)
		switch ch.Table {
		case table:
			own = append(own, ch)
		case "task":
			inherited = append(inherited, ch)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	rows := own
	if len(rows) == 0 {
		rows = inherited
	}
	out := []Choice{}
	index := map[string]int{}
	for _, ch := range rows {
		i, seen := index[ch.Value]
		if !seen {
			index[ch.Value] = len(out)
			out = append(out, ch)
			continue
		}
		if isEnglish(ch.Language) && !isEnglish(out[i].Language) {
			out[i] = ch
		}
	}
	return out, nil
}

func isEnglish(lang string) bool { return lang == "" || strings.EqualFold(lang, "en") }

// ---------------------------------------------------------------------------

// Ping makes a cheap authenticated call (one sys_user row) to tell wrong
// credentials (*APIError 401) or missing rights (403) from an unreachable
// or non-ServiceNow host (transport error, or a non-JSON answer such as a
// hibernating instance's page).
func (c *Client) Ping(ctx context.Context) error {
	q := readValues("sys_id")
	q.Set("sysparm_limit", "1")
	q.Set("sysparm_suppress_pagination_header", "true")
	resp, err := c.do(ctx, http.MethodGet, c.endpoint(tablePath("sys_user"), q), nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := readBody(resp)
	if err != nil {
		return err
	}
	_, err = decodeResult(resp, data)
	return err
}
