package workflows_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/temporal"

	"hpsync/activities"
	"hpsync/internal/statusmap"
)

// The fake below is a small in-memory model of the two systems: one
// Hyperproof task (status type, Activity Feed comments, task proof, the
// proof on its target object) and the ServiceNow tasks (state, journal,
// attachments). Its activities read and write it the way the real ones read
// and write the APIs, including their look-before-write idempotency, so the
// tests check what ends up in each system rather than canned answers.

const (
	testTaskID = "T-1"
	testTable  = "sc_task"

	snIntegrationUser = "svc.hyperproof" // ServiceNow user_name of the integration
	snAssigneeUser    = "alice.assignee"
	snAssigneeName    = "Alice Assignee"

	hpIntegrationUser = "hp-user-integration" // Hyperproof identity of the integration
	hpCreatorUser     = "hp-user-carol"
	hpCreatorName     = "Carol Creator"
)

// Hyperproof status types.
const (
	hpNotStarted = "notStarted"
	hpInProgress = "inProgress"
	hpSubmitted  = "submitted"
	hpClosed     = "closed"
	hpCancelled  = "cancelled"
)

type snEntry struct {
	ID        string
	By        string // user_name
	Text      string
	CreatedOn time.Time
}

type snAttachment struct {
	SysID       string
	FileName    string
	ContentType string
	Data        []byte
	CreatedBy   string
	CreatedOn   time.Time
}

type snTask struct {
	SysID       string
	Number      string
	State       string
	Correlation string
	Journal     []snEntry
	Attachments []snAttachment
}

type hpComment struct {
	ID        string
	By        string // Hyperproof user id
	Text      string
	SourceID  string // ServiceNow journal id when the integration wrote it
	CreatedOn time.Time
}

type proofFile struct {
	ID           string
	FileName     string
	SourceFileID string // task proof: attachment sys_id; target proof: task proof id
	Data         []byte
}

type world struct {
	mu   sync.Mutex
	smap statusmap.Map
	seq  int
	base time.Time

	hpTaskID    string
	hpStatus    string
	hpComments  []hpComment
	taskProof   []proofFile
	targetProof []proofFile
	hasTarget   bool

	sn      map[string]*snTask
	snOrder []string

	calls     map[string]int
	alertKeys []string
	notes     map[string]string // problem notes on the Hyperproof task, by key
	hpWrites  []string          // status types written by SetHyperproofStatus
	snMoves   []string          // groups MoveServiceNow was asked for
	fail      map[string]error
}

func newWorld(hpStatus string) *world {
	return &world{
		smap:      statusmap.Default(),
		base:      time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC),
		hpTaskID:  testTaskID,
		hpStatus:  hpStatus,
		hasTarget: true,
		sn:        map[string]*snTask{},
		calls:     map[string]int{},
		fail:      map[string]error{},
	}
}

// now hands out strictly increasing whole-second timestamps, as the APIs do.
func (w *world) now() time.Time {
	w.seq++
	return w.base.Add(time.Duration(w.seq) * time.Second)
}

func (w *world) nextID(prefix string) string {
	w.seq++
	return fmt.Sprintf("%s-%03d", prefix, w.seq)
}

// ---- what users do (called from the tests' delayed callbacks) ----

func (w *world) setHPStatus(typ string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hpStatus = typ
}

func (w *world) setSNState(state string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.linked().State = state
}

// addSNComment is a customer-visible comment written by a ServiceNow user.
func (w *world) addSNComment(by, text string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := w.linked()
	e := snEntry{ID: w.nextID("snc"), By: by, Text: text, CreatedOn: w.now()}
	t.Journal = append(t.Journal, e)
	return e.ID
}

// addHPComment is an Activity Feed comment written by a Hyperproof user.
func (w *world) addHPComment(by, text string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := hpComment{ID: w.nextID("hpc"), By: by, Text: text, CreatedOn: w.now()}
	w.hpComments = append(w.hpComments, c)
	return c.ID
}

func (w *world) attach(name string, data []byte) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := w.linked()
	a := snAttachment{SysID: w.nextID("att"), FileName: name, ContentType: "application/octet-stream",
		Data: append([]byte(nil), data...), CreatedBy: snAssigneeUser, CreatedOn: w.now()}
	t.Attachments = append(t.Attachments, a)
	return a.SysID
}

func (w *world) failWith(activity string, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		delete(w.fail, activity)
	} else {
		w.fail[activity] = err
	}
}

// ---- what tests look at ----

func (w *world) linked() *snTask {
	if len(w.snOrder) == 0 {
		panic("no ServiceNow task yet")
	}
	return w.sn[w.snOrder[0]]
}

func (w *world) snState() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.linked().State
}

func (w *world) hpStatusNow() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hpStatus
}

func (w *world) count(activity string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls[activity]
}

func (w *world) snTaskCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.sn)
}

func (w *world) journal() []snEntry {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]snEntry(nil), w.linked().Journal...)
}

func (w *world) hpFeed() []hpComment {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]hpComment(nil), w.hpComments...)
}

func (w *world) proofs() []proofFile {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]proofFile(nil), w.taskProof...)
}

func (w *world) onTarget() []proofFile {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]proofFile(nil), w.targetProof...)
}

func (w *world) alerts() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.alertKeys...)
}

func (w *world) statusWrites() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.hpWrites...)
}

func (w *world) moves() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.snMoves...)
}

// hpCopiesOf are the Hyperproof comments the integration wrote for one
// ServiceNow journal entry.
func (w *world) hpCopiesOf(snID string) []hpComment {
	var out []hpComment
	for _, c := range w.hpFeed() {
		if c.SourceID == snID {
			out = append(out, c)
		}
	}
	return out
}

// snCopiesOf are the ServiceNow entries the integration wrote for one
// Hyperproof comment.
func (w *world) snCopiesOf(hpID string) []snEntry {
	var out []snEntry
	for _, e := range w.journal() {
		if e.By == snIntegrationUser && strings.Contains(e.Text, "[hyperproof-comment:"+hpID+"]") {
			out = append(out, e)
		}
	}
	return out
}

// ---- the activities ----

// fakeActivities has the method set of *activities.Activities that the task
// workflow calls; it is registered under the same names.
type fakeActivities struct{ w *world }

func notFound(what, id string) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s %s not found", what, id), "HTTP404", nil)
}

// enter counts the call and returns the injected failure, if any. The lock
// is held until the returned unlock is called.
func (w *world) enter(name string) (func(), error) {
	w.mu.Lock()
	w.calls[name]++
	if err := w.fail[name]; err != nil {
		w.mu.Unlock()
		return func() {}, err
	}
	return w.mu.Unlock, nil
}

func (w *world) task(table, sysID string) (*snTask, error) {
	if table != testTable {
		return nil, temporal.NewNonRetryableApplicationError("unknown table "+table, "HTTP400", nil)
	}
	t, ok := w.sn[sysID]
	if !ok {
		return nil, notFound("servicenow task", sysID)
	}
	return t, nil
}

func (w *world) checkTask(id string) error {
	if id != w.hpTaskID {
		return notFound("hyperproof task", id)
	}
	return nil
}

func (a *fakeActivities) LinkServiceNowTask(_ context.Context, req activities.LinkRequest) (activities.LinkResult, error) {
	w := a.w
	unlock, err := w.enter("LinkServiceNowTask")
	if err != nil {
		return activities.LinkResult{}, err
	}
	defer unlock()
	if err := w.checkTask(req.HyperproofTaskID); err != nil {
		return activities.LinkResult{}, err
	}
	corr := activities.CorrelationID(req.HyperproofTaskID)
	for _, id := range w.snOrder {
		if t := w.sn[id]; t.Correlation == corr {
			return activities.LinkResult{Table: req.Table, SysID: t.SysID, Number: t.Number, State: t.State}, nil
		}
	}
	if req.ExistingSysID != "" {
		t, err := w.task(req.Table, req.ExistingSysID)
		if err != nil {
			return activities.LinkResult{}, err
		}
		t.Correlation = corr
		return activities.LinkResult{Table: req.Table, SysID: t.SysID, Number: t.Number, State: t.State}, nil
	}
	group := statusmap.GroupInProgress
	switch w.hpStatus {
	case hpNotStarted:
		group = statusmap.GroupTodo
	case hpSubmitted:
		group = statusmap.GroupCompleted
	}
	state, _ := w.smap.First(req.Table, group)
	t := w.newSNTask(state)
	t.Correlation = corr
	return activities.LinkResult{Table: req.Table, SysID: t.SysID, Number: t.Number, State: t.State}, nil
}

func (w *world) newSNTask(state string) *snTask {
	n := len(w.sn) + 1
	t := &snTask{SysID: fmt.Sprintf("%032x", 0xabc000+n), Number: fmt.Sprintf("SCTASK%07d", 1000+n), State: state}
	w.sn[t.SysID] = t
	w.snOrder = append(w.snOrder, t.SysID)
	return t
}

// existingSNTask makes a ServiceNow task that is not linked yet, with a
// comment and an attachment of its own.
func (w *world) existingSNTask(state string) *snTask {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := w.newSNTask(state)
	t.Journal = append(t.Journal, snEntry{ID: w.nextID("snc"), By: snAssigneeUser, Text: "already here", CreatedOn: w.now()})
	t.Attachments = append(t.Attachments, snAttachment{SysID: w.nextID("att"), FileName: "old.pdf", ContentType: "application/pdf",
		Data: []byte("old proof"), CreatedBy: snAssigneeUser, CreatedOn: w.now()})
	return t
}

func (a *fakeActivities) ReadSnapshot(_ context.Context, req activities.SnapshotRequest) (activities.Snapshot, error) {
	w := a.w
	unlock, err := w.enter("ReadSnapshot")
	if err != nil {
		return activities.Snapshot{}, err
	}
	defer unlock()
	if err := w.checkTask(req.HyperproofTaskID); err != nil {
		return activities.Snapshot{}, err
	}
	t, err := w.task(req.Table, req.SysID)
	if err != nil {
		return activities.Snapshot{}, err
	}
	g, _ := w.smap.GroupOf(req.Table, t.State)
	return activities.Snapshot{HyperproofStatus: w.hpStatus, ServiceNowState: t.State, ServiceNowGroup: string(g), ReadAt: w.now()}, nil
}

func (a *fakeActivities) MoveServiceNow(_ context.Context, req activities.MoveServiceNowRequest) (activities.MoveResult, error) {
	w := a.w
	unlock, err := w.enter("MoveServiceNow")
	if err != nil {
		return activities.MoveResult{}, err
	}
	defer unlock()
	t, err := w.task(req.Table, req.SysID)
	if err != nil {
		return activities.MoveResult{}, err
	}
	w.snMoves = append(w.snMoves, req.Group)
	if g, ok := w.smap.GroupOf(req.Table, t.State); ok && string(g) == req.Group {
		return activities.MoveResult{State: t.State}, nil
	}
	first, ok := w.smap.First(req.Table, statusmap.Group(req.Group))
	if !ok {
		return activities.MoveResult{}, temporal.NewNonRetryableApplicationError("no state for group "+req.Group, "BusinessError", nil)
	}
	t.State = first
	return activities.MoveResult{State: first, Changed: true}, nil
}

func (a *fakeActivities) SetHyperproofStatus(_ context.Context, req activities.SetHyperproofStatusRequest) error {
	w := a.w
	unlock, err := w.enter("SetHyperproofStatus")
	if err != nil {
		return err
	}
	defer unlock()
	if err := w.checkTask(req.HyperproofTaskID); err != nil {
		return err
	}
	switch req.StatusType {
	case hpNotStarted, hpInProgress, hpSubmitted, hpClosed, hpCancelled:
	default:
		return temporal.NewNonRetryableApplicationError("no status of type "+req.StatusType, "BusinessError", nil)
	}
	w.hpWrites = append(w.hpWrites, req.StatusType)
	w.hpStatus = req.StatusType
	return nil
}

func (a *fakeActivities) ListServiceNowComments(_ context.Context, req activities.CommentsRequest) ([]activities.ServiceNowComment, error) {
	w := a.w
	unlock, err := w.enter("ListServiceNowComments")
	if err != nil {
		return nil, err
	}
	defer unlock()
	t, err := w.task(req.Table, req.SysID)
	if err != nil {
		return nil, err
	}
	var out []activities.ServiceNowComment
	for _, e := range t.Journal {
		if e.CreatedOn.Before(req.Since) {
			continue
		}
		c := activities.ServiceNowComment{ID: e.ID, Element: "comments", Text: e.Text, Author: e.By, CreatedOn: e.CreatedOn,
			Ours: e.By == snIntegrationUser}
		if e.By == snAssigneeUser {
			c.Author = snAssigneeName
		}
		out = append(out, c)
	}
	return out, nil
}

func (a *fakeActivities) CopyCommentToHyperproof(_ context.Context, req activities.CopyToHyperproofRequest) (string, error) {
	w := a.w
	unlock, err := w.enter("CopyCommentToHyperproof")
	if err != nil {
		return "", err
	}
	defer unlock()
	if err := w.checkTask(req.HyperproofTaskID); err != nil {
		return "", err
	}
	for _, c := range w.hpComments {
		if c.SourceID == req.Comment.ID {
			return c.ID, nil
		}
	}
	c := hpComment{ID: w.nextID("hpc"), By: hpIntegrationUser, SourceID: req.Comment.ID, CreatedOn: w.now(),
		Text: fmt.Sprintf("%s (ServiceNow): %s", req.Comment.Author, req.Comment.Text)}
	w.hpComments = append(w.hpComments, c)
	return c.ID, nil
}

func (a *fakeActivities) ListHyperproofComments(_ context.Context, req activities.CommentsRequest) ([]activities.HyperproofComment, error) {
	w := a.w
	unlock, err := w.enter("ListHyperproofComments")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := w.checkTask(req.HyperproofTaskID); err != nil {
		return nil, err
	}
	var out []activities.HyperproofComment
	for _, c := range w.hpComments {
		if c.CreatedOn.Before(req.Since) {
			continue
		}
		hc := activities.HyperproofComment{ID: c.ID, Text: c.Text, Author: c.By, AuthorID: c.By, CreatedOn: c.CreatedOn,
			Ours: c.SourceID != "" || c.By == hpIntegrationUser}
		if c.By == hpCreatorUser {
			hc.Author = hpCreatorName
		}
		out = append(out, hc)
	}
	return out, nil
}

func (a *fakeActivities) CopyCommentToServiceNow(_ context.Context, req activities.CopyToServiceNowRequest) error {
	w := a.w
	unlock, err := w.enter("CopyCommentToServiceNow")
	if err != nil {
		return err
	}
	defer unlock()
	t, err := w.task(req.Table, req.SysID)
	if err != nil {
		return err
	}
	ref := "[hyperproof-comment:" + req.Comment.ID + "]"
	for _, e := range t.Journal {
		if e.By == snIntegrationUser && strings.Contains(e.Text, ref) {
			return nil
		}
	}
	t.Journal = append(t.Journal, snEntry{ID: w.nextID("snc"), By: snIntegrationUser, CreatedOn: w.now(),
		Text: fmt.Sprintf("%s (Hyperproof): %s\n\n%s", req.Comment.Author, req.Comment.Text, ref)})
	return nil
}

func (a *fakeActivities) ListServiceNowAttachments(_ context.Context, req activities.AttachmentsRequest) ([]activities.AttachmentMeta, error) {
	w := a.w
	unlock, err := w.enter("ListServiceNowAttachments")
	if err != nil {
		return nil, err
	}
	defer unlock()
	t, err := w.task(req.Table, req.SysID)
	if err != nil {
		return nil, err
	}
	var out []activities.AttachmentMeta
	for _, at := range t.Attachments {
		sum := sha256.Sum256(at.Data)
		out = append(out, activities.AttachmentMeta{SysID: at.SysID, FileName: at.FileName, ContentType: at.ContentType,
			SizeBytes: int64(len(at.Data)), Hash: hex.EncodeToString(sum[:]), CreatedBy: at.CreatedBy, CreatedOn: at.CreatedOn})
	}
	return out, nil
}

func (a *fakeActivities) CopyAttachmentToHyperproof(_ context.Context, req activities.CopyAttachmentRequest) (activities.ProofRecord, error) {
	w := a.w
	unlock, err := w.enter("CopyAttachmentToHyperproof")
	if err != nil {
		return activities.ProofRecord{}, err
	}
	defer unlock()
	if err := w.checkTask(req.HyperproofTaskID); err != nil {
		return activities.ProofRecord{}, err
	}
	t, err := w.task(req.Table, req.SysID)
	if err != nil {
		return activities.ProofRecord{}, err
	}
	var src *snAttachment
	for i := range t.Attachments {
		if t.Attachments[i].SysID == req.Attachment.SysID {
			src = &t.Attachments[i]
		}
	}
	if src == nil {
		return activities.ProofRecord{}, notFound("attachment", req.Attachment.SysID)
	}
	sum := sha256.Sum256(src.Data)
	rec := activities.ProofRecord{AttachmentSysID: src.SysID, FileName: src.FileName, ContentType: src.ContentType,
		SizeBytes: int64(len(src.Data)), ServiceNowHash: req.Attachment.Hash, SHA256: hex.EncodeToString(sum[:]),
		AttachedBy: src.CreatedBy, AttachedOn: src.CreatedOn, ReachedAt: w.now()}
	for _, p := range w.taskProof {
		if p.SourceFileID == src.SysID {
			rec.HyperproofID = p.ID
			return rec, nil
		}
	}
	p := proofFile{ID: w.nextID("proof"), FileName: src.FileName, SourceFileID: src.SysID, Data: append([]byte(nil), src.Data...)}
	w.taskProof = append(w.taskProof, p)
	rec.HyperproofID = p.ID
	return rec, nil
}

// PublishProofToTarget is idempotent like the real one: it uploads only the
// task proof that is not on the target yet (by source file id).
func (a *fakeActivities) PublishProofToTarget(_ context.Context, req activities.PublishRequest) (activities.PublishResult, error) {
	w := a.w
	unlock, err := w.enter("PublishProofToTarget")
	if err != nil {
		return activities.PublishResult{}, err
	}
	defer unlock()
	if err := w.checkTask(req.HyperproofTaskID); err != nil {
		return activities.PublishResult{}, err
	}
	res := activities.PublishResult{TargetType: "control", TargetID: "C-1"}
	if !w.hasTarget {
		return res, temporal.NewNonRetryableApplicationError("no target", "BusinessError", nil)
	}
	have := map[string]bool{}
	for _, p := range w.targetProof {
		have[p.SourceFileID] = true
	}
	for _, p := range w.taskProof {
		if !have[p.ID] {
			w.targetProof = append(w.targetProof, proofFile{ID: w.nextID("tproof"), FileName: p.FileName, SourceFileID: p.ID,
				Data: append([]byte(nil), p.Data...)})
			res.Uploaded++
		}
		res.OnTarget = append(res.OnTarget, p.ID)
	}
	return res, nil
}

func (a *fakeActivities) AlertAssignee(_ context.Context, req activities.AlertRequest) error {
	w := a.w
	unlock, err := w.enter("AlertAssignee")
	if err != nil {
		return err
	}
	defer unlock()
	t, err := w.task(req.Table, req.SysID)
	if err != nil {
		return err
	}
	if req.Key == "" {
		return temporal.NewNonRetryableApplicationError("alert without key", "BusinessError", nil)
	}
	w.alertKeys = append(w.alertKeys, req.Key)
	ref := "[hyperproof-alert:" + req.HyperproofTaskID + ":" + req.Key + "]"
	for _, e := range t.Journal {
		if e.By == snIntegrationUser && strings.Contains(e.Text, ref) {
			return nil
		}
	}
	t.Journal = append(t.Journal, snEntry{ID: w.nextID("snc"), By: snIntegrationUser, CreatedOn: w.now(),
		Text: "More work is needed on this task.\n\n" + ref})
	return nil
}

// NoteOnHyperproof keeps the integration's notes apart from the feed, so
// the tests' comment counts stay about carried comments.
func (a *fakeActivities) NoteOnHyperproof(_ context.Context, req activities.NoteRequest) error {
	w := a.w
	unlock, err := w.enter("NoteOnHyperproof")
	if err != nil {
		return err
	}
	defer unlock()
	if w.notes == nil {
		w.notes = map[string]string{}
	}
	w.notes[req.Key] = req.Text
	return nil
}

// sameBytes reports whether a proof file holds exactly data.
func sameBytes(p proofFile, data []byte) bool { return bytes.Equal(p.Data, data) }
