package servicenow

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// rawRecord is one Table/Attachment API record before decoding. Values are
// kept raw because a key's JSON type varies: strings for everything in the
// Table API, typed numbers/booleans in other APIs, and several shapes for
// references.
type rawRecord map[string]json.RawMessage

// object decodes raw as a JSON object, or reports false.
func object(raw json.RawMessage) (map[string]json.RawMessage, bool) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil, false
	}
	return m, true
}

// scalar renders a JSON scalar as the Table API would have as a string:
// strings as is, numbers and booleans as their text, null as "".
func scalar(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		return ""
	case 'n':
		return ""
	case '{', '[':
		return ""
	}
	return strings.TrimSpace(string(raw)) // number, true, false
}

// str reads a plain field. It accepts a bare scalar, and the
// {"display_value","value"} object of sysparm_display_value=all (taking the
// value; the display value only when there is no value key).
func (r rawRecord) str(key string) string {
	raw := r[key]
	if m, ok := object(raw); ok {
		if v, ok := m["value"]; ok {
			return scalar(v)
		}
		return scalar(m["display_value"])
	}
	return scalar(raw)
}

// ref reads a reference field as the referenced sys_id, whatever its shape:
//
//	""                                   empty reference
//	"<sys_id>"                           sysparm_exclude_reference_link=true
//	{"link":"…/<sys_id>","value":"<sys_id>"}   default
//	{"display_value":…,"link":…,"value":…}     sysparm_display_value=all
//	{"display_value":…,"link":"…/<sys_id>"}    display_value=true (no value key)
//	{"display_value":"","value":""}            empty under display_value=all
//
// When there is no value key, the sys_id is the last segment of the link.
func (r rawRecord) ref(key string) string {
	raw := r[key]
	m, ok := object(raw)
	if !ok {
		return scalar(raw)
	}
	if v, ok := m["value"]; ok {
		return scalar(v)
	}
	if l := scalar(m["link"]); l != "" {
		return lastSegment(l)
	}
	return ""
}

// lastSegment is the last path segment of a URL (or plain path), unescaped.
func lastSegment(s string) string {
	if u, err := url.Parse(s); err == nil {
		s = u.Path
	}
	seg := path.Base(strings.TrimRight(s, "/"))
	if seg == "." || seg == "/" {
		return ""
	}
	return seg
}

// int reads a counter: "7", 7, 7.0, "1,234" (display formatting) or "" (0).
func (r rawRecord) int(key string) (int64, error) {
	s := strings.ReplaceAll(strings.TrimSpace(r.str(key)), ",", "")
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f == float64(int64(f)) {
		return int64(f), nil
	}
	return 0, fmt.Errorf("servicenow: field %s: %q is not an integer", key, s)
}

// bool reads "true"/"false" (any case), true/false, "1"/"0".
func (r rawRecord) bool(key string) bool {
	switch strings.ToLower(strings.TrimSpace(r.str(key))) {
	case "true", "1", "yes":
		return true
	}
	return false
}

// time reads a raw date/time ("YYYY-MM-DD HH:MM:SS", UTC). "" is the zero
// time.
func (r rawRecord) time(key string) (time.Time, error) {
	s := strings.TrimSpace(r.str(key))
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.ParseInLocation(DateLayout, s, time.UTC)
	if err != nil {
		return time.Time{}, fmt.Errorf("servicenow: field %s: %q is not a date/time in the %q layout", key, s, DateLayout)
	}
	return t, nil
}

// FormatTime renders t as a query/date literal: UTC "YYYY-MM-DD HH:MM:SS".
// Sub-second precision is cut, so ">=" comparisons include t's second.
func FormatTime(t time.Time) string { return t.UTC().Format(DateLayout) }

// ---------------------------------------------------------------------------

const taskFields = "sys_id,number,short_description,description,state,assigned_to,due_date," +
	"correlation_id,correlation_display,active,sys_created_on,sys_created_by," +
	"sys_updated_on,sys_updated_by,sys_mod_count"

func decodeTask(r rawRecord, table string) (Task, error) {
	t := Task{
		Table:              table,
		SysID:              r.str("sys_id"),
		Number:             r.str("number"),
		ShortDescription:   r.str("short_description"),
		Description:        r.str("description"),
		State:              r.str("state"),
		AssignedTo:         r.ref("assigned_to"),
		DueDate:            r.str("due_date"),
		CorrelationID:      r.str("correlation_id"),
		CorrelationDisplay: r.str("correlation_display"),
		UpdatedBy:          r.str("sys_updated_by"),
		CreatedBy:          r.str("sys_created_by"),
		Active:             r.bool("active"),
	}
	var err error
	if t.SysID == "" {
		return Task{}, fmt.Errorf("servicenow: %s record without sys_id", table)
	}
	if t.UpdatedOn, err = r.time("sys_updated_on"); err != nil {
		return Task{}, err
	}
	if t.CreatedOn, err = r.time("sys_created_on"); err != nil {
		return Task{}, err
	}
	if t.ModCount, err = r.int("sys_mod_count"); err != nil {
		return Task{}, err
	}
	return t, nil
}

const journalFields = "sys_id,name,element_id,element,value,sys_created_on,sys_created_by"

func decodeJournal(r rawRecord) (JournalEntry, error) {
	j := JournalEntry{
		SysID:     r.str("sys_id"),
		Table:     r.str("name"),
		ElementID: r.ref("element_id"),
		Element:   r.str("element"),
		Value:     r.str("value"),
		CreatedBy: r.str("sys_created_by"),
	}
	var err error
	if j.CreatedOn, err = r.time("sys_created_on"); err != nil {
		return JournalEntry{}, err
	}
	if j.SysID == "" {
		return JournalEntry{}, fmt.Errorf("servicenow: sys_journal_field row without sys_id")
	}
	return j, nil
}

const userFields = "sys_id,user_name,name,first_name,last_name,email,active"

func decodeUser(r rawRecord) (User, error) {
	u := User{
		SysID:     r.str("sys_id"),
		UserName:  r.str("user_name"),
		Name:      r.str("name"),
		FirstName: r.str("first_name"),
		LastName:  r.str("last_name"),
		Email:     r.str("email"),
		Active:    r.bool("active"),
	}
	if u.SysID == "" {
		return User{}, fmt.Errorf("servicenow: sys_user row without sys_id")
	}
	return u, nil
}

func decodeAttachment(r rawRecord) (Attachment, error) {
	a := Attachment{
		SysID:        r.str("sys_id"),
		FileName:     r.str("file_name"),
		ContentType:  r.str("content_type"),
		TableName:    r.str("table_name"),
		TableSysID:   r.ref("table_sys_id"),
		Hash:         r.str("hash"),
		State:        r.str("state"),
		DownloadLink: r.str("download_link"),
		CreatedBy:    r.str("sys_created_by"),
	}
	var err error
	if a.SysID == "" {
		return Attachment{}, fmt.Errorf("servicenow: attachment without sys_id")
	}
	if a.SizeBytes, err = r.int("size_bytes"); err != nil {
		return Attachment{}, err
	}
	if a.CreatedOn, err = r.time("sys_created_on"); err != nil {
		return Attachment{}, err
	}
	return a, nil
}

const choiceFields = "name,element,value,label,sequence,language,inactive"

func decodeChoice(r rawRecord) Choice {
	seq, _ := r.int("sequence")
	return Choice{
		Table:    r.str("name"),
		Element:  r.str("element"),
		Value:    r.str("value"),
		Label:    r.str("label"),
		Sequence: int(seq),
		Language: r.str("language"),
	}
}
