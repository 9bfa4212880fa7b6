package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	"image/png"
	"io"
	"strings"
	"testing"
	"time"

	"hpsync/internal/hyperproof"
	"hpsync/internal/sandbox/seed"
	"hpsync/internal/servicenow"
	"hpsync/workflows"
)

type testFile struct {
	name, contentType string
	data              []byte
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func exactnessFiles(t *testing.T) []testFile {
	var pngBuf bytes.Buffer
	if err := png.Encode(&pngBuf, image.NewGray(image.Rect(0, 0, 7, 5))); err != nil {
		t.Fatal(err)
	}
	var zipBuf bytes.Buffer
	zw := zip.NewWriter(&zipBuf)
	w, _ := zw.Create("inside.txt")
	io.WriteString(w, "zipped")
	zw.Close()
	all := make([]byte, 256*4)
	for i := range all {
		all[i] = byte(i)
	}
	return []testFile{
		{"diagram.png", "image/png", pngBuf.Bytes()},
		{"empty.txt", "text/plain", nil},
		{"archive.zip", "application/zip", zipBuf.Bytes()},
		{"Résumé de contrôle [v2] (final).pdf", "application/pdf", []byte("%PDF-1.4 not really\x00\xff")},
		{"README", "application/octet-stream", []byte("no extension")},
		// A type the two systems disagree on: ServiceNow keeps what it was
		// given; the bytes and the name must still arrive unchanged.
		{"export.csv", "application/vnd.ms-excel", []byte("a,b\r\n1,2\r\n")},
		{"all-bytes.bin", "application/octet-stream", all},
	}
}

// linkedTask creates a task as the creator on the given target and links it.
func (s *stack) linkedTask(t *testing.T, ctx context.Context, targetType, targetID string) (string, servicenow.Task) {
	t.Helper()
	task, err := s.creator.CreateTask(ctx, hyperproof.NewTask{
		Title: "proof test " + t.Name(), TargetType: targetType, TargetID: targetID, AssigneeID: seed.AssigneeUserID,
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.link(ctx, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	sn, err := s.assignee.FindTaskByCorrelation(ctx, res.Table, "hyperproof:"+task.ID)
	if err != nil || sn == nil {
		t.Fatalf("find linked task: %v", err)
	}
	return task.ID, *sn
}

func eventually(t *testing.T, what string, limit time.Duration, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		time.Sleep(150 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s (last error %v)", what, limit, last)
}

// proofByName downloads each proof of the task and returns name -> sha256,
// failing on a name that appears twice.
func (s *stack) proofByName(ctx context.Context, taskID string) (map[string]string, error) {
	ps, err := s.creator.ListTaskProof(ctx, taskID, "")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, p := range ps {
		if _, dup := out[p.Filename]; dup {
			return nil, fmt.Errorf("%s is on the task twice", p.Filename)
		}
		rc, err := s.creator.DownloadProof(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		_, err = io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		out[p.Filename] = hex.EncodeToString(h.Sum(nil))
	}
	return out, nil
}

// TestBinaryCorruption_ProofExactness: every kind of file arrives byte for byte under its
// own name (SHA-256 compared), and on close lands on a label target once.
func TestBinaryCorruption_ProofExactness(t *testing.T) {
	s := startStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	taskID, sn := s.linkedTask(t, ctx, "label", seed.LabelID)
	files := exactnessFiles(t)
	for _, f := range files {
		if _, err := s.assignee.UploadAttachment(ctx, sn.Table, sn.SysID, f.name, f.contentType, bytes.NewReader(f.data)); err != nil {
			t.Fatalf("upload %s: %v", f.name, err)
		}
	}
	eventually(t, "all files as proof, identical", 60*time.Second, func() (bool, error) {
		got, err := s.proofByName(ctx, taskID)
		if err != nil {
			return false, err
		}
		for _, f := range files {
			if got[f.name] != sum(f.data) {
				return false, fmt.Errorf("%s: got sha %q, want %s", f.name, got[f.name], sum(f.data))
			}
		}
		return len(got) == len(files), nil
	})

	// Close from In progress: ServiceNow moves to the first Completed state
	// and the proof lands on the label.
	s.setStatus(t, ctx, taskID, hyperproof.StatusClosed)
	eventually(t, "proof on the label once each", 60*time.Second, func() (bool, error) {
		ps, err := s.creator.ListProof(ctx, "label", seed.LabelID)
		if err != nil {
			return false, err
		}
		n := map[string]int{}
		for _, p := range ps {
			if p.SourceID == taskID {
				n[p.Filename]++
			}
		}
		for _, f := range files {
			if n[f.name] > 1 {
				return false, fmt.Errorf("%s on the label %d times", f.name, n[f.name])
			}
			if n[f.name] == 0 {
				return false, nil
			}
		}
		return true, nil
	})
	got, err := s.assignee.GetTask(ctx, sn.Table, sn.SysID)
	if err != nil || got.State != "3" {
		t.Errorf("servicenow state after close from in progress = %q (%v), want 3", got.State, err)
	}
}

func (s *stack) setStatus(t *testing.T, ctx context.Context, taskID, typ string) {
	t.Helper()
	sts, err := s.creator.ListTaskStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, ok := hyperproof.StatusByType(sts, typ)
	if !ok {
		t.Fatalf("no status of type %s", typ)
	}
	if _, err := s.creator.SetTaskStatus(ctx, taskID, st.ID); err != nil {
		t.Fatal(err)
	}
}

func (s *stack) status(t *testing.T, ctx context.Context, taskID string) workflows.Status {
	t.Helper()
	v, err := s.w.Client.QueryWorkflow(ctx, workflows.WorkflowID(taskID), "", workflows.QueryStatus)
	if err != nil {
		t.Fatal(err)
	}
	var st workflows.Status
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestHistoryBeforeLinking_LinkExistingAndRelink: linking an existing ServiceNow task carries its
// comments and attachments once; unlinking (ending the workflow) and linking
// again duplicates nothing on either side.
func TestHistoryBeforeLinking_LinkExistingAndRelink(t *testing.T) {
	s := startStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The assignee already works a ServiceNow task with history.
	existing, err := s.assignee.CreateTask(ctx, "sc_task", servicenow.NewTask{ShortDescription: "existing work", State: "2"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"same text", "same text", "a third comment"} {
		if err := s.assignee.AddComment(ctx, "sc_task", existing.SysID, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.assignee.UploadAttachment(ctx, "sc_task", existing.SysID, "before-link.txt", "text/plain", strings.NewReader("old evidence")); err != nil {
		t.Fatal(err)
	}
	task, err := s.creator.CreateTask(ctx, hyperproof.NewTask{Title: "link existing", TargetType: "control", TargetID: seed.ControlID, AssigneeID: seed.AssigneeUserID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.creator.AddComment(ctx, task.ID, hyperproof.NewComment{Text: "creator note before link"}); err != nil {
		t.Fatal(err)
	}
	res, err := linkWith(ctx, s, task.ID, existing.SysID)
	if err != nil {
		t.Fatal(err)
	}
	if res.Number != existing.Number {
		t.Fatalf("linked %s, want the existing %s", res.Number, existing.Number)
	}
	counts := func() (hpComments, snComments, proofs int) {
		cs, err := s.creator.ListComments(ctx, task.ID)
		if err != nil {
			t.Fatal(err)
		}
		es, err := s.assignee.ListJournal(ctx, "sc_task", existing.SysID, []string{"comments"}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		ps, err := s.creator.ListTaskProof(ctx, task.ID, "")
		if err != nil {
			t.Fatal(err)
		}
		return len(cs), len(es), len(ps)
	}
	// 1 creator comment + 3 carried; 3 assignee comments + 1 carried; 1 proof.
	eventually(t, "history carried once", 60*time.Second, func() (bool, error) {
		hc, sc, p := counts()
		return hc == 4 && sc == 4 && p == 1, fmt.Errorf("hyperproof comments %d, servicenow comments %d, proof %d", hc, sc, p)
	})

	// Unlink: end the workflow; nothing is deleted on either side.
	if err := s.w.Client.TerminateWorkflow(ctx, workflows.WorkflowID(task.ID), "", "unlink in test"); err != nil {
		t.Fatal(err)
	}
	if _, err := linkWith(ctx, s, task.ID, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, "relinked workflow did a round", 30*time.Second, func() (bool, error) {
		st := s.status(t, ctx, task.ID)
		return !st.LastSync.IsZero(), nil
	})
	time.Sleep(3 * time.Second) // a few poll cycles
	if hc, sc, p := counts(); hc != 4 || sc != 4 || p != 1 {
		t.Errorf("after relink: hyperproof comments %d, servicenow comments %d, proof %d; want 4, 4, 1", hc, sc, p)
	}
}

// TestLargeFiles_OversizeAndDeletedAtSource: a file over the size limit is not fetched,
// a note names it and the limit on both tasks, the status query lists it and
// the other files still go; a file deleted in ServiceNow after it became
// proof stays in Hyperproof and is marked deleted at source.
func TestLargeFiles_OversizeAndDeletedAtSource(t *testing.T) {
	s := startStack(t, "HYPERPROOF_MAX_PROOF_BYTES", "1000")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	taskID, sn := s.linkedTask(t, ctx, "control", seed.ControlID)
	big := bytes.Repeat([]byte("x"), 1001)
	if _, err := s.assignee.UploadAttachment(ctx, sn.Table, sn.SysID, "too big.log", "text/plain", bytes.NewReader(big)); err != nil {
		t.Fatal(err)
	}
	small, err := s.assignee.UploadAttachment(ctx, sn.Table, sn.SysID, "small.txt", "text/plain", strings.NewReader("fits"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "small file carried, big one noted on both sides", 60*time.Second, func() (bool, error) {
		got, err := s.proofByName(ctx, taskID)
		if err != nil || got["small.txt"] == "" || got["too big.log"] != "" {
			return false, fmt.Errorf("proof %v, %v", got, err)
		}
		cs, err := s.creator.ListComments(ctx, taskID)
		if err != nil {
			return false, err
		}
		hpNotes := 0
		for _, c := range cs {
			if strings.Contains(c.Text, `"too big.log"`) && strings.Contains(c.Text, "1000 bytes") {
				hpNotes++
			}
		}
		es, err := s.assignee.ListJournal(ctx, sn.Table, sn.SysID, []string{"comments"}, time.Time{})
		if err != nil {
			return false, err
		}
		snNotes := 0
		for _, e := range es {
			if strings.Contains(e.Value, `"too big.log"`) && strings.Contains(e.Value, "1000 bytes") {
				snNotes++
			}
		}
		if hpNotes > 1 || snNotes > 1 {
			return false, fmt.Errorf("notes repeated: hyperproof %d, servicenow %d", hpNotes, snNotes)
		}
		return hpNotes == 1 && snNotes == 1, fmt.Errorf("notes: hyperproof %d, servicenow %d", hpNotes, snNotes)
	})
	st := s.status(t, ctx, taskID)
	if st.ProofSynced != 1 || st.ProofSkipped != 1 {
		t.Errorf("status: synced %d skipped %d, want 1 and 1", st.ProofSynced, st.ProofSkipped)
	}

	if err := s.assignee.DeleteAttachment(ctx, small.SysID); err != nil {
		t.Fatal(err)
	}
	// Any later activity on the task makes a round that notices.
	if err := s.assignee.AddComment(ctx, sn.Table, sn.SysID, "removed small.txt by mistake"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deleted at source marked", 60*time.Second, func() (bool, error) {
		for _, p := range s.status(t, ctx, taskID).Proof {
			if p.AttachmentSysID == small.SysID {
				return !p.DeletedAtSource.IsZero(), nil
			}
		}
		return false, nil
	})
	got, err := s.proofByName(ctx, taskID)
	if err != nil || got["small.txt"] != sum([]byte("fits")) {
		t.Errorf("proof after deletion at source = %v, %v; want small.txt kept", got, err)
	}
}
