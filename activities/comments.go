package activities

import (
	"context"
	"fmt"
	"html"
	"regexp"
	"strings"
	"time"

	"hpsync/internal/hyperproof"
	"hpsync/internal/telemetry"
)

// Markers the integration puts at the end of what it writes into ServiceNow.
// They let a retry find a comment already written (look before write); the
// integration user as author is what keeps them from being mirrored back.
func commentRef(hyperproofCommentID string) string {
	return "[hyperproof-comment:" + hyperproofCommentID + "]"
}

func alertRef(hyperproofTaskID, key string) string {
	return "[hyperproof-alert:" + hyperproofTaskID + ":" + key + "]"
}

// ListServiceNowComments lists the ServiceNow task's journal entries created
// at or after req.Since: customer-visible comments, and work notes when the
// worker is configured to carry them.
func (a *Activities) ListServiceNowComments(ctx context.Context, req CommentsRequest) ([]ServiceNowComment, error) {
	elements := []string{"comments"}
	if a.SyncWorkNotes {
		elements = append(elements, "work_notes")
	}
	entries, err := a.SN.ListJournal(ctx, req.Table, req.SysID, elements, req.Since)
	if err != nil {
		return nil, classify("list servicenow journal", err)
	}
	names := map[string]string{}
	out := make([]ServiceNowComment, 0, len(entries))
	for _, e := range entries {
		c := ServiceNowComment{
			ID:        e.SysID,
			Element:   e.Element,
			Text:      journalText(e.Value),
			Author:    e.CreatedBy,
			CreatedOn: e.CreatedOn,
			Ours:      e.CreatedBy == a.SNUser,
		}
		if !c.Ours {
			name, ok := names[e.CreatedBy]
			if !ok {
				if u, err := a.SN.FindUserByUserName(ctx, e.CreatedBy); err == nil && u != nil && u.Name != "" {
					name = u.Name
				}
				names[e.CreatedBy] = name
			}
			if name != "" {
				c.Author = name
			}
		}
		out = append(out, c)
	}
	sortByCreated(out, func(c ServiceNowComment) time.Time { return c.CreatedOn }, func(c ServiceNowComment) string { return c.ID })
	return out, nil
}

var (
	codeBlock = regexp.MustCompile(`(?s)\[code\](.*?)\[/code\]`)
	htmlTag   = regexp.MustCompile(`(?s)<[^>]*>`)
)

// journalText turns a journal value into plain text: ServiceNow wraps rich
// entries in [code]...[/code] with HTML inside. Tags are dropped and
// entities decoded once, so nothing is double-escaped on a round trip.
func journalText(v string) string {
	if !strings.Contains(v, "[code]") {
		return v
	}
	v = codeBlock.ReplaceAllStringFunc(v, func(m string) string {
		inner := codeBlock.FindStringSubmatch(m)[1]
		inner = regexp.MustCompile(`(?i)<br\s*/?>|</p>`).ReplaceAllString(inner, "\n")
		return html.UnescapeString(htmlTag.ReplaceAllString(inner, ""))
	})
	return strings.TrimSpace(v)
}

// CopyCommentToHyperproof adds one ServiceNow comment to the Hyperproof
// task's Activity Feed, named after its author, unless a comment with the
// same source id is already there. It returns the Hyperproof comment id.
func (a *Activities) CopyCommentToHyperproof(ctx context.Context, req CopyToHyperproofRequest) (string, error) {
	existing, err := a.HP.ListComments(ctx, req.HyperproofTaskID)
	if err != nil {
		return "", classify("list hyperproof comments", err)
	}
	for _, c := range existing {
		if c.SourceCommentID == req.Comment.ID {
			return c.ID, nil
		}
	}
	label := "ServiceNow"
	if req.Comment.Element == "work_notes" {
		label = "ServiceNow work note"
	}
	text := fmt.Sprintf("%s (%s): %s", req.Comment.Author, label, req.Comment.Text)
	c, err := a.HP.AddComment(ctx, req.HyperproofTaskID, hyperproof.NewComment{
		Text:            text,
		SourceCommentID: req.Comment.ID,
		SourceUpdatedOn: req.Comment.CreatedOn,
	})
	if err != nil {
		return "", classify("add hyperproof comment", err)
	}
	telemetry.ItemSynced(ctx, telemetry.KindComment, telemetry.DirectionToHyperproof)
	telemetry.SyncLatency(ctx, telemetry.KindComment, time.Since(req.Comment.CreatedOn))
	return c.ID, nil
}

// ListHyperproofComments lists the Hyperproof task's comments created at or
// after req.Since.
func (a *Activities) ListHyperproofComments(ctx context.Context, req CommentsRequest) ([]HyperproofComment, error) {
	me, err := a.myHyperproofID(ctx)
	if err != nil {
		return nil, err
	}
	comments, err := a.HP.ListComments(ctx, req.HyperproofTaskID)
	if err != nil {
		return nil, classify("list hyperproof comments", err)
	}
	var names map[string]string
	out := make([]HyperproofComment, 0, len(comments))
	for _, c := range comments {
		if c.CreatedOn.Before(req.Since) {
			continue
		}
		text := c.PlainText
		if text == "" {
			text = c.Text
		}
		hc := HyperproofComment{
			ID:        c.ID,
			Text:      text,
			AuthorID:  c.CreatedBy,
			Author:    c.CreatedBy,
			CreatedOn: c.CreatedOn,
			Ours:      c.SourceCommentID != "" || c.CreatedBy == me,
		}
		if !hc.Ours {
			if names == nil {
				names = a.hyperproofNames(ctx)
			}
			if n := names[c.CreatedBy]; n != "" {
				hc.Author = n
			}
		}
		out = append(out, hc)
	}
	sortByCreated(out, func(c HyperproofComment) time.Time { return c.CreatedOn }, func(c HyperproofComment) string { return c.ID })
	return out, nil
}

// hyperproofNames maps user ids to display names; on failure comments are
// still carried, named by id.
func (a *Activities) hyperproofNames(ctx context.Context) map[string]string {
	names := map[string]string{}
	users, err := a.HP.ListUsers(ctx)
	if err != nil {
		return names
	}
	for _, u := range users {
		n := strings.TrimSpace(u.GivenName + " " + u.Surname)
		if n == "" {
			n = u.Email
		}
		names[u.ID] = n
	}
	return names
}

// CopyCommentToServiceNow adds one Hyperproof comment to the ServiceNow task
// as an additional comment, unless the entry carrying its marker is already
// in the journal.
func (a *Activities) CopyCommentToServiceNow(ctx context.Context, req CopyToServiceNowRequest) error {
	ref := commentRef(req.Comment.ID)
	written, err := a.journalHas(ctx, req.Table, req.SysID, ref)
	if err != nil || written {
		return err
	}
	text := fmt.Sprintf("%s (Hyperproof): %s\n\n%s", req.Comment.Author, req.Comment.Text, ref)
	if err := a.SN.AddComment(ctx, req.Table, req.SysID, text); err != nil {
		return classify("add servicenow comment", err)
	}
	telemetry.ItemSynced(ctx, telemetry.KindComment, telemetry.DirectionToServiceNow)
	telemetry.SyncLatency(ctx, telemetry.KindComment, time.Since(req.Comment.CreatedOn))
	return nil
}

// journalHas tells whether the integration already wrote an entry carrying
// ref on the record.
func (a *Activities) journalHas(ctx context.Context, table, sysID, ref string) (bool, error) {
	entries, err := a.SN.ListJournal(ctx, table, sysID, []string{"comments"}, time.Time{})
	if err != nil {
		return false, classify("list servicenow journal", err)
	}
	for _, e := range entries {
		if e.CreatedBy == a.SNUser && strings.Contains(e.Value, ref) {
			return true, nil
		}
	}
	return false, nil
}

// AlertAssignee leaves an additional comment on the ServiceNow task saying
// more work is needed (ServiceNow's own notifications deliver it to the
// assignee), quoting the creator's latest Hyperproof comment when there is
// one.
func (a *Activities) AlertAssignee(ctx context.Context, req AlertRequest) error {
	ref := alertRef(req.HyperproofTaskID, req.Key)
	written, err := a.journalHas(ctx, req.Table, req.SysID, ref)
	if err != nil || written {
		return err
	}
	task, err := a.HP.GetTask(ctx, req.HyperproofTaskID)
	if err != nil {
		return classify("read hyperproof task", err)
	}
	me, err := a.myHyperproofID(ctx)
	if err != nil {
		return err
	}
	comments, err := a.HP.ListComments(ctx, req.HyperproofTaskID)
	if err != nil {
		return classify("list hyperproof comments", err)
	}
	var latest *hyperproof.Comment
	for i := range comments {
		c := comments[i]
		if c.SourceCommentID != "" || c.CreatedBy == me || c.CreatedBy != task.CreatedBy {
			continue
		}
		if latest == nil || !c.CreatedOn.Before(latest.CreatedOn) {
			latest = &c
		}
	}
	var b strings.Builder
	b.WriteString("More work is needed on this task: it was reviewed in Hyperproof and set back to In progress.")
	if latest != nil {
		text := latest.PlainText
		if text == "" {
			text = latest.Text
		}
		who := a.hyperproofNames(ctx)[latest.CreatedBy]
		if who == "" {
			who = "The task creator"
		}
		fmt.Fprintf(&b, "\n%s wrote: \"%s\"", who, strings.TrimSpace(text))
	}
	b.WriteString("\n\n" + ref)
	if err := a.SN.AddComment(ctx, req.Table, req.SysID, b.String()); err != nil {
		return classify("alert servicenow assignee", err)
	}
	return nil
}

// NoteOnHyperproof adds a note from the integration to the Hyperproof task's
// Activity Feed, unless the note with the same key is already there.
func (a *Activities) NoteOnHyperproof(ctx context.Context, req NoteRequest) error {
	comments, err := a.HP.ListComments(ctx, req.HyperproofTaskID)
	if err != nil {
		return classify("list hyperproof comments", err)
	}
	for _, c := range comments {
		if c.SourceCommentID == req.Key {
			return nil
		}
	}
	if _, err := a.HP.AddComment(ctx, req.HyperproofTaskID, hyperproof.NewComment{Text: req.Text, SourceCommentID: req.Key}); err != nil {
		return classify("add hyperproof note", err)
	}
	return nil
}
