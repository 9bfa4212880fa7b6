package hpsim

import (
	"encoding/json"
	"html"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"hpsync/internal/sandbox/seed"
)

const maxTitle = 250

var priorities = []string{"highest", "high", "medium", "low", "lowest"}

// targetTypes are the documented targetObject.objectType values.
var targetTypes = []string{"audit", "connection", "control", "controlScope", "domain", "freshnessHistory", "exportFile", "label", "organization", "organizationUser"}

type taskJSON struct {
	ID           string  `json:"id"`
	OrgID        string  `json:"orgId"`
	Title        string  `json:"title"`
	Description  string  `json:"description"`
	AssigneeID   *string `json:"assigneeId"`
	TargetID     string  `json:"targetId"`
	TargetType   string  `json:"targetType"`
	TargetName   string  `json:"targetName"`
	TaskStatusID string  `json:"taskStatusId"`
	Priority     string  `json:"priority"`
	DueDate      *string `json:"dueDate"`
	SortOrder    int64   `json:"sortOrder"`
	ClosedOn     *string `json:"closedOn,omitempty"`
	Status       string  `json:"status"`
	CreatedBy    string  `json:"createdBy"`
	CreatedOn    string  `json:"createdOn"`
	UpdatedBy    string  `json:"updatedBy"`
	UpdatedOn    string  `json:"updatedOn"`
}

func (t *task) json() taskJSON {
	return taskJSON{
		ID: t.ID, OrgID: seed.OrgID, Title: t.Title, Description: t.Description,
		AssigneeID: strPtr(t.AssigneeID), TargetID: t.TargetID, TargetType: t.TargetType, TargetName: t.TargetName,
		TaskStatusID: t.TaskStatusID, Priority: t.Priority, DueDate: timePtr(t.DueDate), SortOrder: t.SortOrder,
		ClosedOn: timePtr(t.ClosedOn), Status: "active",
		CreatedBy: t.CreatedBy, CreatedOn: formatTime(t.CreatedOn), UpdatedBy: t.UpdatedBy, UpdatedOn: formatTime(t.UpdatedOn),
	}
}

// targetName returns the name of a control or label, and whether it exists.
// Callers hold s.mu.
func (s *Server) targetName(objectType, id string) (string, bool) {
	switch objectType {
	case "control":
		n, ok := s.controls[id]
		return n, ok
	case "label":
		n, ok := s.labels[id]
		return n, ok
	case "task":
		t, ok := s.tasks[id]
		if !ok {
			return "", false
		}
		return t.Title, true
	}
	return "", false
}

// checkAssignee validates an assignee id. Callers hold s.mu.
func (s *Server) checkAssignee(id string) string {
	if id == "" {
		return ""
	}
	if id == IntegrationAppUserID {
		return "A service account cannot be the assignee of a task."
	}
	if _, ok := s.users[id]; !ok {
		return "assigneeId is not a user of the organization."
	}
	return ""
}

func (s *Server) handleCreateTask(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Title        *string `json:"title"`
		Description  string  `json:"description"`
		TargetObject *struct {
			ObjectType string `json:"objectType"`
			ObjectID   string `json:"objectId"`
			ParentID   string `json:"parentId"`
		} `json:"targetObject"`
		AssigneeID     string `json:"assigneeId"`
		Priority       string `json:"priority"`
		DueDate        string `json:"dueDate"`
		HasIntegration bool   `json:"hasIntegration"`
		GroupID        string `json:"groupId"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	switch {
	case body.Title == nil || strings.TrimSpace(*body.Title) == "":
		writeError(w, http.StatusBadRequest, "title is required.")
		return
	case utf8.RuneCountInString(*body.Title) > maxTitle:
		writeError(w, http.StatusBadRequest, "title must be at most 250 characters.")
		return
	case body.TargetObject == nil || body.TargetObject.ObjectType == "" || body.TargetObject.ObjectID == "":
		writeError(w, http.StatusBadRequest, "targetObject with objectType and objectId is required.")
		return
	case !slices.Contains(targetTypes, body.TargetObject.ObjectType):
		writeError(w, http.StatusBadRequest, "targetObject.objectType is not a valid target object type.")
		return
	case body.Priority != "" && !slices.Contains(priorities, body.Priority):
		writeError(w, http.StatusBadRequest, "priority must be one of highest, high, medium, low, lowest.")
		return
	}
	var due *time.Time
	if body.DueDate != "" {
		d, err := parseTime(body.DueDate)
		if err != nil {
			writeError(w, http.StatusBadRequest, "dueDate: "+err.Error())
			return
		}
		due = &d
	}
	if body.Priority == "" {
		body.Priority = "medium"
	}
	who := principal(r)

	s.mu.Lock()
	name, ok := s.targetName(body.TargetObject.ObjectType, body.TargetObject.ObjectID)
	if !ok || body.TargetObject.ObjectType == "task" {
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, "targetObject "+body.TargetObject.ObjectType+" "+body.TargetObject.ObjectID+" does not exist.")
		return
	}
	if msg := s.checkAssignee(body.AssigneeID); msg != "" {
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	now := s.now()
	t := &task{
		ID: newID(), Title: *body.Title, Description: body.Description, AssigneeID: body.AssigneeID,
		TargetID: body.TargetObject.ObjectID, TargetType: body.TargetObject.ObjectType, TargetName: name,
		TaskStatusID: s.statusByType("notStarted").ID, Priority: body.Priority, DueDate: due,
		SortOrder: int64(len(s.tasks) + 1),
		CreatedBy: who, CreatedOn: now, UpdatedBy: who, UpdatedOn: now,
	}
	s.tasks[t.ID] = t
	out := t.json()
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) handleGetTask(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	t, ok := s.tasks[r.PathValue("id")]
	var out taskJSON
	if ok {
		out = t.json()
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Task not found.")
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handlePatchTask(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	_, exists := s.tasks[id]
	s.mu.Unlock()
	if !exists {
		writeError(w, http.StatusNotFound, "Task not found.")
		return
	}
	var body map[string]json.RawMessage
	if err := decodeJSON(w, r, &body); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	str := func(key string) (v *string, null bool, err bool) {
		raw, ok := body[key]
		if !ok {
			return nil, false, false
		}
		if string(raw) == "null" {
			return nil, true, false
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, false, true
		}
		return &s, false, false
	}
	bad := func(msg string) { writeError(w, http.StatusBadRequest, msg) }

	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[id]
	next := *t // apply to a copy, commit when everything is valid
	closing := false

	if v, null, e := str("title"); e || null {
		bad("title must be a string.")
		return
	} else if v != nil {
		if strings.TrimSpace(*v) == "" || utf8.RuneCountInString(*v) > maxTitle {
			bad("title must be 1 to 250 characters.")
			return
		}
		next.Title = *v
	}
	if v, null, e := str("description"); e {
		bad("description must be a string.")
		return
	} else if null {
		next.Description = ""
	} else if v != nil {
		next.Description = *v
	}
	if v, null, e := str("assigneeId"); e {
		bad("assigneeId must be a string.")
		return
	} else if null || v != nil && *v == "" {
		next.AssigneeID = ""
	} else if v != nil {
		if msg := s.checkAssignee(*v); msg != "" {
			bad(msg)
			return
		}
		next.AssigneeID = *v
	}
	if v, null, e := str("taskStatusId"); e || null {
		bad("taskStatusId must be a string.")
		return
	} else if v != nil {
		st := s.statusByID(*v)
		if st == nil {
			bad("taskStatusId " + *v + " is not a task status of the organization.")
			return
		}
		if next.TaskStatusID != st.ID {
			next.TaskStatusID = st.ID
			if st.Type == "closed" || st.Type == "cancelled" {
				closing = next.ClosedOn == nil
			} else {
				next.ClosedOn = nil
			}
		}
	}
	if v, null, e := str("priority"); e || null {
		bad("priority must be a string.")
		return
	} else if v != nil {
		if !slices.Contains(priorities, *v) {
			bad("priority must be one of highest, high, medium, low, lowest.")
			return
		}
		next.Priority = *v
	}
	if v, null, e := str("dueDate"); e {
		bad("dueDate must be a date-time string.")
		return
	} else if null {
		next.DueDate = nil
	} else if v != nil {
		d, err := parseTime(*v)
		if err != nil {
			bad("dueDate: " + err.Error())
			return
		}
		next.DueDate = &d
	}
	if raw, ok := body["clearDueDate"]; ok {
		var clearIt bool
		if json.Unmarshal(raw, &clearIt) != nil {
			bad("clearDueDate must be a boolean.")
			return
		}
		if clearIt {
			next.DueDate = nil
		}
	}
	tt, _, e1 := str("targetType")
	tid, _, e2 := str("targetId")
	if e1 || e2 {
		bad("targetType and targetId must be strings.")
		return
	}
	if tt != nil || tid != nil {
		typ, oid := next.TargetType, next.TargetID
		if tt != nil {
			typ = *tt
		}
		if tid != nil {
			oid = *tid
		}
		name, ok := s.targetName(typ, oid)
		if !ok || typ == "task" {
			bad("target " + typ + " " + oid + " does not exist.")
			return
		}
		next.TargetType, next.TargetID, next.TargetName = typ, oid, name
	}

	now := s.now()
	if closing {
		next.ClosedOn = &now
	}
	next.UpdatedOn = now
	next.UpdatedBy = principal(r)
	*t = next
	writeJSON(w, http.StatusOK, t.json())
}

func (s *Server) handleFilterTasks(w http.ResponseWriter, r *http.Request) {
	var body struct {
		TargetObjectType string   `json:"targetObjectType"`
		TargetObjectIDs  []string `json:"targetObjectIds"`
		TaskIDs          []string `json:"taskIds"`
		AssigneeIDs      []string `json:"assigneeIds"`
		ModifiedAfter    string   `json:"modifiedAfter"`
	}
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &body); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	var after time.Time
	if body.ModifiedAfter != "" {
		t, err := parseTime(body.ModifiedAfter)
		if err != nil {
			writeError(w, http.StatusBadRequest, "modifiedAfter: "+err.Error())
			return
		}
		after = t
	}
	s.mu.Lock()
	var hits []*task
	for _, t := range s.tasks {
		if !after.IsZero() && !t.UpdatedOn.After(after) {
			continue
		}
		if body.TargetObjectType != "" && t.TargetType != body.TargetObjectType {
			continue
		}
		if len(body.TargetObjectIDs) > 0 && !slices.Contains(body.TargetObjectIDs, t.TargetID) {
			continue
		}
		if len(body.TaskIDs) > 0 && !slices.Contains(body.TaskIDs, t.ID) {
			continue
		}
		if len(body.AssigneeIDs) > 0 && !slices.Contains(body.AssigneeIDs, t.AssigneeID) {
			continue
		}
		hits = append(hits, t)
	}
	slices.SortFunc(hits, func(a, b *task) int {
		if c := a.UpdatedOn.Compare(b.UpdatedOn); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	out := make([]taskJSON, 0, len(hits))
	for _, t := range hits {
		out = append(out, t.json())
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleStatuses(w http.ResponseWriter, r *http.Request) {
	type statusJSON struct {
		ID        string `json:"id"`
		OrgID     string `json:"orgId"`
		Name      string `json:"name"`
		Type      string `json:"type"`
		SortOrder int    `json:"sortOrder"`
		Icon      string `json:"icon"`
		Color     string `json:"color"`
		CreatedBy string `json:"createdBy"`
		CreatedOn string `json:"createdOn"`
	}
	s.mu.Lock()
	out := make([]statusJSON, 0, len(s.statuses))
	for _, st := range s.statuses {
		out = append(out, statusJSON{ID: st.ID, OrgID: seed.OrgID, Name: st.Name, Type: st.Type, SortOrder: st.SortOrder, Icon: st.Icon, Color: st.Color, CreatedBy: seed.CreatorUserID, CreatedOn: formatTime(st.CreatedOn)})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

type commentJSON struct {
	ID                   string  `json:"id"`
	OrgID                string  `json:"orgId"`
	ObjectType           string  `json:"objectType"`
	ObjectID             string  `json:"objectId"`
	CommentTextFormatted string  `json:"commentTextFormatted"`
	CommentPlainText     string  `json:"commentPlainText"`
	IsInternal           bool    `json:"isInternal"`
	SourceCommentID      *string `json:"sourceCommentId"`
	SourceUpdatedOn      *string `json:"sourceUpdatedOn"`
	CreatedBy            string  `json:"createdBy"`
	CreatedOn            string  `json:"createdOn"`
	UpdatedBy            string  `json:"updatedBy"`
	UpdatedOn            string  `json:"updatedOn"`
}

func (c *comment) json() commentJSON {
	return commentJSON{
		ID: c.ID, OrgID: seed.OrgID, ObjectType: "task", ObjectID: c.TaskID,
		CommentTextFormatted: c.Formatted, CommentPlainText: c.Plain, IsInternal: c.IsInternal,
		SourceCommentID: strPtr(c.SourceCommentID), SourceUpdatedOn: timePtr(c.SourceUpdatedOn),
		CreatedBy: c.CreatedBy, CreatedOn: formatTime(c.CreatedOn), UpdatedBy: c.CreatedBy, UpdatedOn: formatTime(c.CreatedOn),
	}
}

func (s *Server) handleListComments(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	if _, ok := s.tasks[id]; !ok {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "Task not found.")
		return
	}
	list := s.comments[id]
	out := make([]commentJSON, 0, len(list))
	for _, c := range list {
		out = append(out, c.json())
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

var (
	blockTagRe = regexp.MustCompile(`(?i)<\s*(br|/p|/div|/li)\s*/?\s*>`)
	tagRe      = regexp.MustCompile(`<[^>]*>`)
)

// plainText is the simulator's rendering of formatted comment text.
func plainText(formatted string) string {
	t := blockTagRe.ReplaceAllString(formatted, "\n")
	t = tagRe.ReplaceAllString(t, "")
	return strings.TrimSpace(html.UnescapeString(t))
}

func (s *Server) handleAddComment(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	_, ok := s.tasks[id]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Task not found.")
		return
	}
	var body struct {
		CommentTextFormatted *string `json:"commentTextFormatted"`
		IsInternalComment    bool    `json:"isInternalComment"`
		ObjectType           string  `json:"objectType"`
		ObjectID             string  `json:"objectId"`
		SourceCommentID      string  `json:"sourceCommentId"`
		SourceUpdatedOn      string  `json:"sourceUpdatedOn"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	switch {
	case body.CommentTextFormatted == nil || strings.TrimSpace(*body.CommentTextFormatted) == "":
		writeError(w, http.StatusBadRequest, "commentTextFormatted is required.")
		return
	case body.ObjectType != "" && body.ObjectType != "task":
		writeError(w, http.StatusBadRequest, "objectType must be task.")
		return
	case body.ObjectID != "" && body.ObjectID != id:
		writeError(w, http.StatusBadRequest, "objectId does not match the task in the path.")
		return
	}
	var srcUpdated *time.Time
	if body.SourceUpdatedOn != "" {
		t, err := parseTime(body.SourceUpdatedOn)
		if err != nil {
			writeError(w, http.StatusBadRequest, "sourceUpdatedOn: "+err.Error())
			return
		}
		srcUpdated = &t
	}
	s.mu.Lock()
	c := &comment{
		ID: newID(), TaskID: id, Formatted: *body.CommentTextFormatted, Plain: plainText(*body.CommentTextFormatted),
		IsInternal: body.IsInternalComment, SourceCommentID: body.SourceCommentID, SourceUpdatedOn: srcUpdated,
		CreatedBy: principal(r), CreatedOn: s.now(),
	}
	// Deliberately not touching the task's updatedOn (unconfirmed upstream,
	// so the simulator does the less convenient thing).
	s.comments[id] = append(s.comments[id], c)
	out := c.json()
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, out)
}

type userJSON struct {
	ID        string  `json:"id"`
	Email     *string `json:"email"`
	GivenName string  `json:"givenName"`
	Surname   string  `json:"surname"`
	State     string  `json:"state"`
	Language  string  `json:"language"`
	Locale    string  `json:"locale"`
	TimeZone  string  `json:"timeZone"`
	IsService bool    `json:"isServiceAccount,omitempty"`
}

func (u *user) json() userJSON {
	return userJSON{ID: u.ID, Email: strPtr(u.Email), GivenName: u.GivenName, Surname: u.Surname, State: "verified", Language: "en", Locale: "US", TimeZone: "UTC", IsService: u.Service}
}

func (s *Server) handleUsers(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	out := make([]userJSON, 0, len(s.userOrder))
	for _, id := range s.userOrder {
		out = append(out, s.users[id].json())
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	s.mu.Lock()
	u := s.users[p]
	if p == IntegrationAppUserID {
		u = s.service
	}
	s.mu.Unlock()
	if u == nil {
		writeError(w, http.StatusNotFound, "User not found.")
		return
	}
	writeJSON(w, http.StatusOK, u.json())
}
