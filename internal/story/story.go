// Package story walks one task through its whole life the way its users
// would, acting only through the two vendor APIs: the assignee asks a
// question in ServiceNow, the creator answers in Hyperproof, the assignee
// attaches proof and completes, the creator reopens, the assignee adds more
// and completes again, the creator closes and the proof lands on the
// control. Each step waits until its effect is observed on the other side.
// The demo prints it; the integration test asserts it.
package story

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"strings"
	"time"

	"hpsync/internal/hyperproof"
	"hpsync/internal/sandbox/seed"
	"hpsync/internal/servicenow"
)

// Env is what the story needs: the users' own API clients and a way to link.
type Env struct {
	Creator  *hyperproof.Client // the creator's personal API client
	Assignee *servicenow.Client // the assignee's ServiceNow account
	// Link links the Hyperproof task and returns the ServiceNow table and
	// number (it runs the starter's logic).
	Link        func(ctx context.Context, hyperproofTaskID string) (table, number string, err error)
	StepTimeout time.Duration
	// Report is called as each step is observed.
	Report func(Step)
	// Tag, when set, is added to every comment the users write (" [Tag]"),
	// so that each task's comments are told apart from every other task's
	// when many stories run at once. "" = the demo's texts.
	Tag string
	// PollInterval is how often a step looks for its effect (default
	// 200 ms); many concurrent stories look less often.
	PollInterval time.Duration
}

// UserComment is a comment a user wrote during the story, as written.
type UserComment struct {
	Side string // "servicenow" (the assignee) or "hyperproof" (the creator)
	Text string
	// Reopen is set on the creator's comment that goes with sending the
	// task back for more work (the alert quotes it).
	Reopen bool
}

// FileSum is a file the assignee attached.
type FileSum struct {
	Name, ContentType string
	Size              int
	SHA256            string
}

// Sides of a UserComment.
const (
	SideServiceNow = "servicenow"
	SideHyperproof = "hyperproof"
)

// Step is one observed hop.
type Step struct {
	N        int
	Action   string        // what the user did
	Observed string        // what was seen on the other side
	Took     time.Duration // from the action to the observation
	At       time.Duration // since the story began
}

// Outcome is both sides' final state.
type Outcome struct {
	HyperproofTaskID string
	Table, Number    string
	SysID            string
	HyperproofStatus string
	ServiceNowState  string
	TaskComments     int
	JournalEntries   int
	TaskProof        []string
	ControlProof     []string
	Steps            []Step
	// What the users did, for checks made afterwards: every comment and
	// file, in order, the number of writes they made through the APIs
	// (task creation, link, comments, files, status changes) and how
	// often the creator sent the task back.
	Comments []UserComment
	Files    []FileSum
	Actions  int
	Reopens  int
	// CreatorStatus and AssigneeState are the last Hyperproof status type
	// the creator set and the last ServiceNow state the assignee set ("" =
	// none yet): what a sync must never overwrite.
	CreatorStatus string
	AssigneeState string
	// LastStatusBy is the side of the last status change a user made
	// (SideHyperproof: the creator, SideServiceNow: the assignee).
	LastStatusBy string
}

type file struct {
	name, contentType string
	data              []byte
}

func (f file) sha() string { s := sha256.Sum256(f.data); return hex.EncodeToString(s[:]) }

// Run plays the story. It returns an error naming the first step not
// observed in time.
func Run(ctx context.Context, env Env) (Outcome, error) {
	r := &runner{env: env, start: time.Now()}
	if r.env.StepTimeout == 0 {
		r.env.StepTimeout = 2 * time.Minute
	}
	if r.env.PollInterval <= 0 {
		r.env.PollInterval = 200 * time.Millisecond
	}
	return r.run(ctx)
}

type runner struct {
	env    Env
	start  time.Time
	out    Outcome
	taskID string
	table  string
	sysID  string
}

func (r *runner) step(action, observed string, acted time.Time) {
	s := Step{N: len(r.out.Steps) + 1, Action: action, Observed: observed, Took: time.Since(acted), At: time.Since(r.start)}
	r.out.Steps = append(r.out.Steps, s)
	if r.env.Report != nil {
		r.env.Report(s)
	}
}

// await polls cond until it holds or the step times out.
func (r *runner) await(ctx context.Context, what string, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, r.env.StepTimeout)
	defer cancel()
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("not observed within %s: %s (last error: %v)", r.env.StepTimeout, what, last)
			}
			return fmt.Errorf("not observed within %s: %s", r.env.StepTimeout, what)
		case <-time.After(r.env.PollInterval):
		}
	}
}

// tagged is a user's comment text with the story's tag.
func (r *runner) tagged(text string) string {
	if r.env.Tag == "" {
		return text
	}
	return text + " [" + r.env.Tag + "]"
}

func (r *runner) wrote(side, text string, reopen bool) {
	r.out.Comments = append(r.out.Comments, UserComment{Side: side, Text: text, Reopen: reopen})
	r.out.Actions++
}

func (r *runner) run(ctx context.Context) (Outcome, error) {
	due := time.Now().Add(14 * 24 * time.Hour).UTC().Truncate(time.Hour)
	task, err := r.env.Creator.CreateTask(ctx, hyperproof.NewTask{
		Title:       "Provide the Q3 firewall rule review",
		Description: "Export the reviewed firewall ruleset and attach it as evidence for the quarterly review.",
		TargetType:  "control",
		TargetID:    seed.ControlID,
		AssigneeID:  seed.AssigneeUserID,
		Priority:    "high",
		DueDate:     &due,
	})
	if err != nil {
		return r.out, fmt.Errorf("creator creates a task: %w", err)
	}
	r.taskID, r.out.HyperproofTaskID = task.ID, task.ID
	r.out.Actions++

	acted := time.Now()
	r.out.Actions++
	table, number, err := r.env.Link(ctx, task.ID)
	if err != nil {
		return r.out, fmt.Errorf("link: %w", err)
	}
	r.table, r.out.Table, r.out.Number = table, table, number
	found, err := r.env.Assignee.FindTaskByCorrelation(ctx, table, "hyperproof:"+task.ID)
	if err != nil || found == nil {
		return r.out, fmt.Errorf("the assignee cannot see the linked ServiceNow task %s: %v", number, err)
	}
	r.sysID, r.out.SysID = found.SysID, found.SysID
	if found.AssignedTo == "" {
		return r.out, fmt.Errorf("ServiceNow %s has no assignee: e-mail matching failed", number)
	}
	r.step("creator links the Hyperproof task", fmt.Sprintf("ServiceNow %s created, assigned to the assignee, state %s", number, found.State), acted)

	question := "Which export format do you need for the firewall rules — CSV or the vendor's PDF report?"
	if err := r.assigneeComments(ctx, question); err != nil {
		return r.out, err
	}
	answer := "CSV please, with the rule names. A screenshot of the review sign-off helps too."
	if err := r.creatorComments(ctx, answer); err != nil {
		return r.out, err
	}
	first := []file{
		{"firewall-rules-q3.csv", "text/csv", []byte("rule,source,destination,action\nallow-web,any,10.0.0.10:443,allow\ndeny-all,any,any,deny\n")},
		{"review sign-off.png", "image/png", pngBytes()},
	}
	if err := r.assigneeAttaches(ctx, first); err != nil {
		return r.out, err
	}
	if err := r.assigneeCompletes(ctx, "3"); err != nil {
		return r.out, err
	}
	if err := r.creatorReopens(ctx, "The export is missing the Q3 change log; please attach the full ruleset archive."); err != nil {
		return r.out, err
	}
	if err := r.assigneeComments(ctx, "Attached the full ruleset archive, including the Q3 change log."); err != nil {
		return r.out, err
	}
	second := []file{{"ruleset full export [Q3] é.zip", "application/zip", zipBytes()}}
	if err := r.assigneeAttaches(ctx, second); err != nil {
		return r.out, err
	}
	if err := r.assigneeCompletes(ctx, "3"); err != nil {
		return r.out, err
	}
	if err := r.creatorCloses(ctx, append(first, second...)); err != nil {
		return r.out, err
	}
	return r.out, r.final(ctx)
}

func (r *runner) assigneeComments(ctx context.Context, text string) error {
	text = r.tagged(text)
	acted := time.Now()
	if err := r.env.Assignee.AddComment(ctx, r.table, r.sysID, text); err != nil {
		return fmt.Errorf("assignee comments in ServiceNow: %w", err)
	}
	r.wrote(SideServiceNow, text, false)
	err := r.await(ctx, "the assignee's ServiceNow comment in the Hyperproof Activity Feed", func(ctx context.Context) (bool, error) {
		cs, err := r.env.Creator.ListComments(ctx, r.taskID)
		if err != nil {
			return false, err
		}
		n := 0
		for _, c := range cs {
			if strings.Contains(c.Text, text) {
				n++
			}
		}
		if n > 1 {
			return false, fmt.Errorf("comment appeared %d times", n)
		}
		return n == 1, nil
	})
	if err != nil {
		return err
	}
	r.step("assignee comments in ServiceNow", "comment in the Hyperproof Activity Feed, once, named after the assignee", acted)
	return nil
}

func (r *runner) creatorComments(ctx context.Context, text string) error {
	text = r.tagged(text)
	acted := time.Now()
	if _, err := r.env.Creator.AddComment(ctx, r.taskID, hyperproof.NewComment{Text: text}); err != nil {
		return fmt.Errorf("creator comments in Hyperproof: %w", err)
	}
	r.wrote(SideHyperproof, text, false)
	if err := r.awaitJournal(ctx, "the creator's Hyperproof reply on the ServiceNow task", text); err != nil {
		return err
	}
	r.step("creator replies in Hyperproof", "additional comment on the ServiceNow task, once", acted)
	return nil
}

func (r *runner) awaitJournal(ctx context.Context, what, text string) error {
	return r.await(ctx, what, func(ctx context.Context) (bool, error) {
		es, err := r.env.Assignee.ListJournal(ctx, r.table, r.sysID, []string{"comments"}, time.Time{})
		if err != nil {
			return false, err
		}
		n := 0
		for _, e := range es {
			if strings.Contains(e.Value, text) {
				n++
			}
		}
		if n > 1 {
			return false, fmt.Errorf("comment appeared %d times", n)
		}
		return n == 1, nil
	})
}

func (r *runner) assigneeAttaches(ctx context.Context, files []file) error {
	acted := time.Now()
	for _, f := range files {
		if _, err := r.env.Assignee.UploadAttachment(ctx, r.table, r.sysID, f.name, f.contentType, bytes.NewReader(f.data)); err != nil {
			return fmt.Errorf("assignee attaches %s: %w", f.name, err)
		}
		r.out.Files = append(r.out.Files, FileSum{Name: f.name, ContentType: f.contentType, Size: len(f.data), SHA256: f.sha()})
		r.out.Actions++
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.name
	}
	err := r.await(ctx, "the attachments as proof on the Hyperproof task: "+strings.Join(names, ", "), func(ctx context.Context) (bool, error) {
		proofs, err := r.env.Creator.ListTaskProof(ctx, r.taskID, "")
		if err != nil {
			return false, err
		}
		for _, f := range files {
			n := 0
			var id string
			for _, p := range proofs {
				if p.Filename == f.name {
					n++
					id = p.ID
				}
			}
			if n != 1 {
				return false, nil
			}
			if sum, err := r.proofSHA(ctx, id); err != nil || sum != f.sha() {
				return false, fmt.Errorf("proof %s differs from the attachment (sha256 %s, want %s; %v)", f.name, sum, f.sha(), err)
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	r.step(fmt.Sprintf("assignee attaches %d file(s) in ServiceNow", len(files)),
		"proof on the Hyperproof task, same names, SHA-256 identical: "+strings.Join(names, ", "), acted)
	return nil
}

func (r *runner) proofSHA(ctx context.Context, id string) (string, error) {
	return ProofSHA(ctx, r.env.Creator, id)
}

// ProofSHA downloads a proof (streamed) and returns its SHA-256 in hex.
func ProofSHA(ctx context.Context, hp *hyperproof.Client, id string) (string, error) {
	rc, err := hp.DownloadProof(ctx, id)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (r *runner) statusType(ctx context.Context) (string, error) {
	t, err := r.env.Creator.GetTask(ctx, r.taskID)
	if err != nil {
		return "", err
	}
	sts, err := r.env.Creator.ListTaskStatuses(ctx)
	if err != nil {
		return "", err
	}
	for _, s := range sts {
		if s.ID == t.TaskStatusID {
			return s.Type, nil
		}
	}
	return "", fmt.Errorf("unknown status %s", t.TaskStatusID)
}

func (r *runner) setStatus(ctx context.Context, typ string) error {
	sts, err := r.env.Creator.ListTaskStatuses(ctx)
	if err != nil {
		return err
	}
	for _, s := range sts {
		if s.Type == typ {
			_, err := r.env.Creator.SetTaskStatus(ctx, r.taskID, s.ID)
			return err
		}
	}
	return fmt.Errorf("no status of type %s", typ)
}

func (r *runner) assigneeCompletes(ctx context.Context, state string) error {
	acted := time.Now()
	if _, err := r.env.Assignee.UpdateTask(ctx, r.table, r.sysID, map[string]string{"state": state}); err != nil {
		return fmt.Errorf("assignee completes the ServiceNow task: %w", err)
	}
	r.out.Actions++
	r.out.AssigneeState, r.out.LastStatusBy = state, SideServiceNow
	err := r.await(ctx, "the Hyperproof task Submitted", func(ctx context.Context) (bool, error) {
		typ, err := r.statusType(ctx)
		return typ == hyperproof.StatusSubmitted, err
	})
	if err != nil {
		return err
	}
	r.step("assignee moves the ServiceNow task to Closed Complete", "Hyperproof task is Submitted", acted)
	return nil
}

func (r *runner) creatorReopens(ctx context.Context, why string) error {
	why = r.tagged(why)
	acted := time.Now()
	if _, err := r.env.Creator.AddComment(ctx, r.taskID, hyperproof.NewComment{Text: why}); err != nil {
		return fmt.Errorf("creator comments: %w", err)
	}
	r.wrote(SideHyperproof, why, true)
	if err := r.setStatus(ctx, hyperproof.StatusInProgress); err != nil {
		return fmt.Errorf("creator sets the task back to In progress: %w", err)
	}
	r.out.Actions++
	r.out.CreatorStatus, r.out.LastStatusBy = hyperproof.StatusInProgress, SideHyperproof
	r.out.Reopens++
	err := r.await(ctx, "the ServiceNow task back in Work in Progress with a more-work-needed alert", func(ctx context.Context) (bool, error) {
		t, err := r.env.Assignee.GetTask(ctx, r.table, r.sysID)
		if err != nil || t.State != "2" {
			return false, err
		}
		es, err := r.env.Assignee.ListJournal(ctx, r.table, r.sysID, []string{"comments"}, time.Time{})
		if err != nil {
			return false, err
		}
		for _, e := range es {
			if strings.Contains(e.Value, "More work is needed") && strings.Contains(e.Value, why) {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	r.step("creator finds the proof not sufficient and sets the task back to In progress",
		"ServiceNow task in Work in Progress; the assignee is alerted with the creator's comment quoted", acted)
	return nil
}

func (r *runner) creatorCloses(ctx context.Context, files []file) error {
	acted := time.Now()
	if err := r.setStatus(ctx, hyperproof.StatusClosed); err != nil {
		return fmt.Errorf("creator closes the task: %w", err)
	}
	r.out.Actions++
	r.out.CreatorStatus, r.out.LastStatusBy = hyperproof.StatusClosed, SideHyperproof
	err := r.await(ctx, "every proof once on the control's Proof tab", func(ctx context.Context) (bool, error) {
		ps, err := r.env.Creator.ListProof(ctx, "control", seed.ControlID)
		if err != nil {
			return false, err
		}
		for _, f := range files {
			n := 0
			for _, p := range ps {
				if p.Filename == f.name && p.SourceID == r.taskID {
					n++
				}
			}
			if n > 1 {
				return false, fmt.Errorf("%s is on the control %d times", f.name, n)
			}
			if n == 0 {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	r.step("creator closes the Hyperproof task", fmt.Sprintf("all %d proof files on the control's Proof tab, once each; ServiceNow left Completed", len(files)), acted)
	return nil
}

func (r *runner) final(ctx context.Context) error {
	var err error
	if r.out.HyperproofStatus, err = r.statusType(ctx); err != nil {
		return err
	}
	t, err := r.env.Assignee.GetTask(ctx, r.table, r.sysID)
	if err != nil {
		return err
	}
	r.out.ServiceNowState = t.State
	if t.State != "3" {
		return fmt.Errorf("ServiceNow state is %s after close, want 3 (left where it was)", t.State)
	}
	cs, err := r.env.Creator.ListComments(ctx, r.taskID)
	if err != nil {
		return err
	}
	r.out.TaskComments = len(cs)
	es, err := r.env.Assignee.ListJournal(ctx, r.table, r.sysID, []string{"comments"}, time.Time{})
	if err != nil {
		return err
	}
	r.out.JournalEntries = len(es)
	ps, err := r.env.Creator.ListTaskProof(ctx, r.taskID, "")
	if err != nil {
		return err
	}
	for _, p := range ps {
		r.out.TaskProof = append(r.out.TaskProof, p.Filename)
	}
	cps, err := r.env.Creator.ListProof(ctx, "control", seed.ControlID)
	if err != nil {
		return err
	}
	for _, p := range cps {
		if p.SourceID == r.taskID {
			r.out.ControlProof = append(r.out.ControlProof, p.Filename)
		}
	}
	return nil
}

// pngBytes is a real PNG image (binary, with bytes no text decoder keeps).
func pngBytes() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for y := 0; y < 48; y++ {
		for x := 0; x < 64; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 4), uint8(y * 5), uint8(x ^ y), 255})
		}
	}
	var b bytes.Buffer
	_ = png.Encode(&b, img)
	return b.Bytes()
}

// zipBytes is a small ZIP archive.
func zipBytes() []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, name := range []string{"ruleset.csv", "changelog-q3.txt"} {
		w, _ := zw.Create(name)
		fmt.Fprintf(w, "%s\n%s\n", name, strings.Repeat("rule line\n", 50))
	}
	_ = zw.Close()
	return b.Bytes()
}
