package workflows_test

import (
	"errors"
	"strings"
	"testing"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"hpsync/workflows"
)

// ---- workflow id ----

func TestWorkflowIDIsPrefixedTaskIDAndRoundTrips(t *testing.T) {
	eq(t, "WorkflowID", workflows.WorkflowID("abc-123"), "hyperproof-task-abc-123")
	for _, id := range []string{"abc-123", "T", "with-hyperproof-task-inside"} {
		got, ok := workflows.TaskIDFromWorkflowID(workflows.WorkflowID(id))
		if !ok || got != id {
			t.Errorf("TaskIDFromWorkflowID(WorkflowID(%q)) = %q, %v", id, got, ok)
		}
	}
	for _, bad := range []string{"", "hyperproof-task-", "poller-hyperproof", "hyperproof-tas-1", "x-hyperproof-task-1"} {
		if got, ok := workflows.TaskIDFromWorkflowID(bad); ok {
			t.Errorf("TaskIDFromWorkflowID(%q) = %q, true; want false", bad, got)
		}
	}
}

// ---- rule 1: link ----

func TestLinkCreatesServiceNowTaskOnceAndStatusShowsLinkedNumber(t *testing.T) {
	w := newWorld(hpInProgress)
	s := newStory(t, w)
	s.check(func(st workflows.Status) {
		calls(t, w, "LinkServiceNowTask", 1)
		eq(t, "ServiceNow tasks", w.snTaskCount(), 1)
		eq(t, "Linked", st.Linked, true)
		eq(t, "Number", st.Number, w.linked().Number)
		eq(t, "SysID", st.SysID, w.linked().SysID)
		eq(t, "Table", st.Table, testTable)
		eq(t, "WorkflowID", st.WorkflowID, workflows.WorkflowID(testTaskID))
		eq(t, "Phase", st.Phase, workflows.PhaseActive)
		// A new ServiceNow task starts in the first state of the group of
		// the Hyperproof status.
		eq(t, "ServiceNow state", w.snState(), "2")
		eq(t, "status ServiceNowState", st.ServiceNowState, "2")
		eq(t, "status HyperproofStatus", st.HyperproofStatus, hpInProgress)
	})
	// Hints from both sides never link again.
	s.then(func() { s.hintHP(); s.hintSN() })
	s.then(func() { s.hintSN() })
	s.check(func(st workflows.Status) {
		calls(t, w, "LinkServiceNowTask", 1)
		eq(t, "ServiceNow tasks", w.snTaskCount(), 1)
		eq(t, "HP status writes", len(w.statusWrites()), 0)
		eq(t, "ServiceNow moves", len(w.moves()), 0)
	})
	s.run(input())

	// Linking the same task again (a second start after the first workflow
	// is gone) finds the ServiceNow task by its correlation.
	first := w.linked().Number
	s2 := newStory(t, w)
	s2.check(func(st workflows.Status) {
		eq(t, "ServiceNow tasks after second link", w.snTaskCount(), 1)
		eq(t, "Number after second link", st.Number, first)
	})
	s2.run(input())
}

func TestLinkExistingServiceNowTaskCarriesItsCommentsAndAttachmentsOnce(t *testing.T) {
	w := newWorld(hpInProgress)
	existing := w.existingSNTask("2")
	commentID := existing.Journal[0].ID
	s := newStory(t, w)
	s.then(func() { s.hintSN(); s.hintHP() })
	s.check(func(st workflows.Status) {
		calls(t, w, "LinkServiceNowTask", 1)
		eq(t, "ServiceNow tasks", w.snTaskCount(), 1)
		eq(t, "SysID", st.SysID, existing.SysID)
		eq(t, "correlation", w.linked().Correlation, "hyperproof:"+testTaskID)
		eq(t, "copies of the existing comment", len(w.hpCopiesOf(commentID)), 1)
		eq(t, "proof", len(w.proofs()), 1)
		eq(t, "CommentsToHyperproof", st.CommentsToHyperproof, 1)
		eq(t, "ProofSynced", st.ProofSynced, 1)
	})
	in := input()
	in.ExistingSysID = existing.SysID
	s.run(in)
}

// ---- rule 2: questions both ways ----

func TestEcho_ServiceNowCommentReachesHyperproofOnceWithAuthorAndNeverBouncesBack(t *testing.T) {
	w := newWorld(hpInProgress)
	s := newStory(t, w)
	var snID string
	s.then(func() { snID = w.addSNComment(snAssigneeUser, "Which quarter is this for?"); s.hintSN() })
	s.check(func(st workflows.Status) {
		copies := w.hpCopiesOf(snID)
		if len(copies) != 1 {
			t.Fatalf("Hyperproof copies = %d, want 1", len(copies))
		}
		if !strings.Contains(copies[0].Text, snAssigneeName) || !strings.Contains(copies[0].Text, "Which quarter is this for?") {
			t.Errorf("Hyperproof comment %q does not name the author and carry the text", copies[0].Text)
		}
		eq(t, "CommentsToHyperproof", st.CommentsToHyperproof, 1)
	})
	// More hints from both sides: still one copy, and the copy (written by
	// the integration in Hyperproof) is never mirrored back to ServiceNow.
	s.then(func() { s.hintHP(); s.hintSN() })
	s.then(func() { s.hintHP() })
	s.check(func(st workflows.Status) {
		eq(t, "Hyperproof copies", len(w.hpCopiesOf(snID)), 1)
		eq(t, "ServiceNow journal entries", len(w.journal()), 1)
		calls(t, w, "CopyCommentToHyperproof", 1)
		calls(t, w, "CopyCommentToServiceNow", 0)
		eq(t, "CommentsToServiceNow", st.CommentsToServiceNow, 0)
	})
	s.run(input())
}

func TestEcho_IntegrationsOwnServiceNowEntryIsNotCopiedToHyperproof(t *testing.T) {
	w := newWorld(hpInProgress)
	s := newStory(t, w)
	var ours, theirs string
	s.then(func() {
		ours = w.addSNComment(snIntegrationUser, "written by the integration itself")
		theirs = w.addSNComment(snAssigneeUser, "written by the assignee")
		s.hintSN()
	})
	s.check(func(st workflows.Status) {
		eq(t, "copies of our own entry", len(w.hpCopiesOf(ours)), 0)
		eq(t, "copies of the assignee's entry", len(w.hpCopiesOf(theirs)), 1)
		eq(t, "Hyperproof feed", len(w.hpFeed()), 1)
		eq(t, "CommentsToHyperproof", st.CommentsToHyperproof, 1)
	})
	s.run(input())
}

func TestEcho_HyperproofReplyReachesServiceNowOnceWithAuthorAndNeverBouncesBack(t *testing.T) {
	w := newWorld(hpInProgress)
	s := newStory(t, w)
	var hpID string
	s.then(func() { hpID = w.addHPComment(hpCreatorUser, "Q3, please."); s.hintHP() })
	s.check(func(st workflows.Status) {
		copies := w.snCopiesOf(hpID)
		if len(copies) != 1 {
			t.Fatalf("ServiceNow copies = %d, want 1", len(copies))
		}
		if !strings.Contains(copies[0].Text, hpCreatorName) || !strings.Contains(copies[0].Text, "Q3, please.") {
			t.Errorf("ServiceNow comment %q does not name the author and carry the text", copies[0].Text)
		}
		eq(t, "CommentsToServiceNow", st.CommentsToServiceNow, 1)
	})
	s.then(func() { s.hintSN(); s.hintHP() })
	s.then(func() { s.hintSN() })
	s.check(func(st workflows.Status) {
		eq(t, "ServiceNow copies", len(w.snCopiesOf(hpID)), 1)
		eq(t, "Hyperproof feed", len(w.hpFeed()), 1) // the reply only: the copy did not come back
		calls(t, w, "CopyCommentToServiceNow", 1)
		calls(t, w, "CopyCommentToHyperproof", 0)
		eq(t, "CommentsToHyperproof", st.CommentsToHyperproof, 0)
	})
	s.run(input())
}

func TestLegitimateRepeats_TwoCommentsWithTheSameTextAreBothCarried(t *testing.T) {
	w := newWorld(hpInProgress)
	s := newStory(t, w)
	var sn1, sn2, hp1, hp2 string
	s.then(func() {
		sn1 = w.addSNComment(snAssigneeUser, "ok")
		sn2 = w.addSNComment(snAssigneeUser, "ok")
		hp1 = w.addHPComment(hpCreatorUser, "thanks")
		hp2 = w.addHPComment(hpCreatorUser, "thanks")
		s.hintSN()
	})
	s.then(func() { s.hintHP() })
	s.check(func(st workflows.Status) {
		for _, id := range []string{sn1, sn2} {
			eq(t, "Hyperproof copies of "+id, len(w.hpCopiesOf(id)), 1)
		}
		for _, id := range []string{hp1, hp2} {
			eq(t, "ServiceNow copies of "+id, len(w.snCopiesOf(id)), 1)
		}
		eq(t, "CommentsToHyperproof", st.CommentsToHyperproof, 2)
		eq(t, "CommentsToServiceNow", st.CommentsToServiceNow, 2)
		eq(t, "Hyperproof feed", len(w.hpFeed()), 4)
		eq(t, "ServiceNow journal", len(w.journal()), 4)
	})
	s.run(input())
}

func TestDuplicateDelivery_HintsGiveOneEffect(t *testing.T) {
	w := newWorld(hpInProgress)
	s := newStory(t, w)
	var snID, hpID string
	s.then(func() {
		snID = w.addSNComment(snAssigneeUser, "question")
		hpID = w.addHPComment(hpCreatorUser, "answer")
		w.attach("evidence.pdf", []byte("%PDF evidence"))
		w.setSNState("3")
		// The same hint three times in a row (webhook, poller, retry).
		for range 3 {
			s.hintSN()
		}
		for range 3 {
			s.hintHP()
		}
	})
	// And again, each in a step of its own.
	for range 3 {
		s.then(func() { s.hintSN() })
	}
	s.check(func(st workflows.Status) {
		eq(t, "Hyperproof copies", len(w.hpCopiesOf(snID)), 1)
		eq(t, "ServiceNow copies", len(w.snCopiesOf(hpID)), 1)
		eq(t, "proof", len(w.proofs()), 1)
		calls(t, w, "CopyCommentToHyperproof", 1)
		calls(t, w, "CopyCommentToServiceNow", 1)
		calls(t, w, "CopyAttachmentToHyperproof", 1)
		calls(t, w, "SetHyperproofStatus", 1)
		eq(t, "Hyperproof status", w.hpStatusNow(), hpSubmitted)
		eq(t, "CommentsToHyperproof", st.CommentsToHyperproof, 1)
		eq(t, "CommentsToServiceNow", st.CommentsToServiceNow, 1)
		eq(t, "ProofSynced", st.ProofSynced, 1)
	})
	s.run(input())
}

// ---- rule 3: proof and completion ----

func TestEveryAttachmentBecomesProofOnceByteForByteUnderItsName(t *testing.T) {
	w := newWorld(hpInProgress)
	s := newStory(t, w)
	files := map[string][]byte{
		"access-review.xlsx": []byte("PK\x03\x04 spreadsheet bytes \x00\x01\x02"),
		"screenshot.png":     []byte("\x89PNG\r\n\x1a\n image bytes"),
	}
	s.then(func() { w.attach("access-review.xlsx", files["access-review.xlsx"]); s.hintSN() })
	s.then(func() { w.attach("screenshot.png", files["screenshot.png"]); s.hintSN() })
	s.then(func() { s.hintSN(); s.hintHP() })
	s.check(func(st workflows.Status) {
		proofs := w.proofs()
		eq(t, "proof files", len(proofs), 2)
		seen := map[string]int{}
		for _, p := range proofs {
			seen[p.FileName]++
			if want, ok := files[p.FileName]; !ok || !sameBytes(p, want) {
				t.Errorf("proof %s does not hold the attachment's bytes", p.FileName)
			}
		}
		for name := range files {
			eq(t, "proof copies of "+name, seen[name], 1)
		}
		calls(t, w, "CopyAttachmentToHyperproof", 2)
		eq(t, "ProofSynced", st.ProofSynced, 2)
		eq(t, "status proof records", len(st.Proof), 2)
		for _, rec := range st.Proof {
			if rec.HyperproofID == "" || rec.SHA256 == "" || rec.FileName == "" {
				t.Errorf("incomplete proof record %+v", rec)
			}
		}
		eq(t, "published before close", len(w.onTarget()), 0)
	})
	s.run(input())
}

func TestServiceNowMoveIntoCompletedMakesHyperproofSubmitted(t *testing.T) {
	for _, state := range []string{"3", "4", "7"} {
		t.Run("state "+state, func(t *testing.T) {
			w := newWorld(hpInProgress)
			s := newStory(t, w)
			s.serviceNowUser(state)
			s.check(func(st workflows.Status) {
				eq(t, "Hyperproof status", w.hpStatusNow(), hpSubmitted)
				eq(t, "status HyperproofStatus", st.HyperproofStatus, hpSubmitted)
				eq(t, "Phase", st.Phase, workflows.PhaseSubmitted)
				eq(t, "ServiceNowGroup", st.ServiceNowGroup, "completed")
				calls(t, w, "SetHyperproofStatus", 1)
				calls(t, w, "MoveServiceNow", 0)
				eq(t, "ServiceNow state", w.snState(), state) // our write did not come back as a move
			})
			s.run(input())
		})
	}
}

func TestServiceNowGroupsMapToHyperproofStatuses(t *testing.T) {
	w := newWorld(hpNotStarted)
	s := newStory(t, w)
	s.serviceNowUser("2")
	s.check(func(st workflows.Status) { eq(t, "after 2", w.hpStatusNow(), hpInProgress) })
	s.serviceNowUser("-5")
	s.check(func(st workflows.Status) { eq(t, "after -5", w.hpStatusNow(), hpNotStarted) })
	s.serviceNowUser("7")
	s.check(func(st workflows.Status) { eq(t, "after 7", w.hpStatusNow(), hpSubmitted) })
	s.check(func(st workflows.Status) {
		got := strings.Join(w.statusWrites(), ",")
		eq(t, "status writes", got, "inProgress,notStarted,submitted")
		calls(t, w, "MoveServiceNow", 0)
	})
	s.run(input())
}

func TestServiceNowMoveInsideOneGroupChangesNothingInHyperproof(t *testing.T) {
	t.Run("completed 3 to 4", func(t *testing.T) {
		w := newWorld(hpInProgress)
		s := newStory(t, w)
		s.serviceNowUser("3")
		s.check(func(st workflows.Status) { eq(t, "Hyperproof status", w.hpStatusNow(), hpSubmitted) })
		s.serviceNowUser("4")
		s.check(func(st workflows.Status) {
			eq(t, "Hyperproof status", w.hpStatusNow(), hpSubmitted)
			calls(t, w, "SetHyperproofStatus", 1)
			calls(t, w, "MoveServiceNow", 0)
			eq(t, "status ServiceNowState", st.ServiceNowState, "4")
			eq(t, "ServiceNow state", w.snState(), "4")
		})
		s.run(input())
	})
	// The creator marks the task Submitted by hand while ServiceNow is still
	// in To do; the assignee then moves ServiceNow inside To do (1 to -5):
	// Hyperproof must keep the creator's status.
	t.Run("todo 1 to -5 after Hyperproof moved on", func(t *testing.T) {
		w := newWorld(hpNotStarted)
		s := newStory(t, w)
		s.hyperproofUser(hpSubmitted)
		s.check(func(st workflows.Status) {
			eq(t, "ServiceNow state", w.snState(), "1")
			eq(t, "status HyperproofStatus", st.HyperproofStatus, hpSubmitted)
		})
		s.serviceNowUser("-5")
		s.check(func(st workflows.Status) {
			eq(t, "Hyperproof status", w.hpStatusNow(), hpSubmitted)
			calls(t, w, "SetHyperproofStatus", 0)
			eq(t, "status ServiceNowState", st.ServiceNowState, "-5")
		})
		s.run(input())
	})
}

func TestUnknownState_UnmappedServiceNowStateKeepsHyperproofStatusAndShowsInStatus(t *testing.T) {
	w := newWorld(hpInProgress)
	s := newStory(t, w)
	s.serviceNowUser("99")
	s.check(func(st workflows.Status) {
		eq(t, "Hyperproof status", w.hpStatusNow(), hpInProgress)
		calls(t, w, "SetHyperproofStatus", 0)
		calls(t, w, "MoveServiceNow", 0)
		eq(t, "UnmappedState", st.UnmappedState, "99")
		eq(t, "ServiceNowGroup", st.ServiceNowGroup, "")
		eq(t, "ServiceNow state", w.snState(), "99") // never guessed at or rewritten
	})
	// Comments still flow while the state is unmapped.
	var snID string
	s.then(func() { snID = w.addSNComment(snAssigneeUser, "still working"); s.hintSN() })
	s.check(func(st workflows.Status) { eq(t, "copies", len(w.hpCopiesOf(snID)), 1) })
	// Once the state is mapped again the link no longer shows it.
	s.serviceNowUser("3")
	s.check(func(st workflows.Status) {
		eq(t, "UnmappedState", st.UnmappedState, "")
		eq(t, "Hyperproof status", w.hpStatusNow(), hpSubmitted)
	})
	// Unmapped again, now from Submitted: still nothing guessed.
	s.serviceNowUser("42")
	s.then(func() { s.hintSN(); s.hintHP() })
	s.check(func(st workflows.Status) {
		eq(t, "Hyperproof status", w.hpStatusNow(), hpSubmitted)
		eq(t, "status HyperproofStatus", st.HyperproofStatus, hpSubmitted)
		eq(t, "UnmappedState", st.UnmappedState, "42")
		calls(t, w, "SetHyperproofStatus", 1)
		calls(t, w, "MoveServiceNow", 0)
		eq(t, "ServiceNow state", w.snState(), "42")
	})
	s.run(input())
}

// ---- rule 4: review ----

func TestReopenLost_HyperproofBackToInProgressFromSubmittedMovesServiceNowToFirstInProgressAndAlertsOnce(t *testing.T) {
	w := newWorld(hpInProgress)
	s := newStory(t, w)
	s.serviceNowUser("4")
	s.check(func(st workflows.Status) { eq(t, "Hyperproof status", w.hpStatusNow(), hpSubmitted) })
	s.hyperproofUser(hpInProgress)
	s.check(func(st workflows.Status) {
		eq(t, "ServiceNow state", w.snState(), "2")
		eq(t, "Hyperproof status", w.hpStatusNow(), hpInProgress)
		eq(t, "status HyperproofStatus", st.HyperproofStatus, hpInProgress)
		eq(t, "status ServiceNowState", st.ServiceNowState, "2")
		eq(t, "Reopens", st.Reopens, 1)
		eq(t, "Phase", st.Phase, workflows.PhaseActive)
		calls(t, w, "AlertAssignee", 1)
		if keys := w.alerts(); len(keys) != 1 || keys[0] == "" {
			t.Errorf("alert keys = %q, want one non-empty key", keys)
		}
	})
	// More hints: no second alert, no move back, the alert comment (ours)
	// is not copied into Hyperproof.
	s.then(func() { s.hintSN(); s.hintHP() })
	s.then(func() { s.hintSN() })
	s.check(func(st workflows.Status) {
		calls(t, w, "AlertAssignee", 1)
		eq(t, "ServiceNow state", w.snState(), "2")
		eq(t, "Hyperproof status", w.hpStatusNow(), hpInProgress)
		eq(t, "status writes", strings.Join(w.statusWrites(), ","), "submitted")
		eq(t, "Hyperproof feed", len(w.hpFeed()), 0)
	})
	s.run(input())
}

func TestCloseFromSubmittedLeavesServiceNowWhereItIsAndPublishesProofOnce(t *testing.T) {
	w := newWorld(hpInProgress)
	s := newStory(t, w)
	s.then(func() { w.attach("evidence.pdf", []byte("pdf")); w.setSNState("4"); s.hintSN() })
	s.check(func(st workflows.Status) { eq(t, "Hyperproof status", w.hpStatusNow(), hpSubmitted) })
	s.hyperproofUser(hpClosed)
	s.then(func() { s.hintHP(); s.hintSN() })
	s.check(func(st workflows.Status) {
		eq(t, "ServiceNow state", w.snState(), "4")
		calls(t, w, "MoveServiceNow", 0)
		eq(t, "proof on target", len(w.onTarget()), 1)
		calls(t, w, "PublishProofToTarget", 1)
		eq(t, "ProofPublished", st.ProofPublished, 1)
		eq(t, "Suspended", st.Suspended, true)
		eq(t, "SuspendedAs", st.SuspendedAs, hpClosed)
		eq(t, "Phase", st.Phase, workflows.PhaseSuspended)
		if len(st.Proof) != 1 || st.Proof[0].PublishedAt.IsZero() {
			t.Errorf("proof record not marked published: %+v", st.Proof)
		}
	})
	s.run(input())
}

func TestCloseFromInProgressMovesServiceNowToFirstCompletedAndPublishes(t *testing.T) {
	w := newWorld(hpInProgress)
	s := newStory(t, w)
	s.then(func() { w.attach("evidence.pdf", []byte("pdf")); s.hintSN() })
	// A file attached right before the close is published too.
	s.then(func() { w.attach("late.pdf", []byte("late")); w.setHPStatus(hpClosed); s.hintHP() })
	s.check(func(st workflows.Status) {
		eq(t, "ServiceNow state", w.snState(), "3")
		eq(t, "status ServiceNowState", st.ServiceNowState, "3")
		eq(t, "proof on target", len(w.onTarget()), 2)
		calls(t, w, "PublishProofToTarget", 1)
		eq(t, "Hyperproof status", w.hpStatusNow(), hpClosed)
		calls(t, w, "SetHyperproofStatus", 0)
		eq(t, "Suspended", st.Suspended, true)
	})
	s.run(input())
}

// ---- rule 5: cancel ----

func TestCancelMovesServiceNowToFirstCompletedUnlessAlreadyCompleted(t *testing.T) {
	cases := []struct {
		name    string
		from    string // ServiceNow state before the cancel
		want    string
		moves   int
		hpAfter string // Hyperproof status before the cancel
	}{
		{"from in progress", "2", "3", 1, hpInProgress},
		{"from to do", "-5", "3", 1, hpNotStarted},
		{"from unmapped", "99", "3", 1, hpInProgress},
		{"after submitted", "7", "7", 0, hpSubmitted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(hpInProgress)
			s := newStory(t, w)
			s.serviceNowUser(c.from)
			s.check(func(st workflows.Status) { eq(t, "Hyperproof status before cancel", w.hpStatusNow(), c.hpAfter) })
			s.hyperproofUser(hpCancelled)
			s.check(func(st workflows.Status) {
				eq(t, "ServiceNow state", w.snState(), c.want)
				eq(t, "status ServiceNowState", st.ServiceNowState, c.want)
				eq(t, "ServiceNow writes", len(movesThatChanged(w, c.from)), c.moves)
				eq(t, "Hyperproof status", w.hpStatusNow(), hpCancelled)
				calls(t, w, "PublishProofToTarget", 0)
				eq(t, "Suspended", st.Suspended, true)
				eq(t, "SuspendedAs", st.SuspendedAs, hpCancelled)
			})
			s.run(input())
		})
	}
}

// movesThatChanged counts the MoveServiceNow calls that found ServiceNow
// outside the completed group (i.e. that wrote).
func movesThatChanged(w *world, from string) []string {
	if g, ok := w.smap.GroupOf(testTable, from); ok && g == "completed" {
		return nil
	}
	return w.moves()
}

// ---- rule 6: suspension ----

func TestClosedLoop_NothingIsSyncedEitherWayWhileClosedOrCanceled(t *testing.T) {
	for _, suspendAs := range []string{hpClosed, hpCancelled} {
		t.Run(suspendAs, func(t *testing.T) {
			w := newWorld(hpInProgress)
			s := newStory(t, w)
			s.hyperproofUser(suspendAs)
			var before workflows.Status
			var journalBefore, feedBefore int
			var writesBefore, movesBefore int
			s.check(func(st workflows.Status) {
				before = st
				journalBefore, feedBefore = len(w.journal()), len(w.hpFeed())
				writesBefore, movesBefore = len(w.statusWrites()), len(w.moves())
				eq(t, "Suspended", st.Suspended, true)
			})
			s.then(func() {
				w.addSNComment(snAssigneeUser, "are you still there?")
				w.addHPComment(hpCreatorUser, "note while closed")
				w.attach("late.pdf", []byte("late"))
				w.setSNState("1")
				s.hintSN()
				s.hintHP()
			})
			s.serviceNowUser("2")
			s.then(func() { s.hintHP(); s.hintSN() })
			s.check(func(st workflows.Status) {
				eq(t, "Hyperproof feed", len(w.hpFeed()), feedBefore+1)        // the creator's own note only
				eq(t, "ServiceNow journal", len(w.journal()), journalBefore+1) // the assignee's own comment only
				eq(t, "proof", len(w.proofs()), 0)
				eq(t, "Hyperproof status", w.hpStatusNow(), suspendAs)
				eq(t, "Hyperproof writes", len(w.statusWrites()), writesBefore)
				eq(t, "ServiceNow moves", len(w.moves()), movesBefore)
				eq(t, "ServiceNow state", w.snState(), "2")
				eq(t, "CommentsToHyperproof", st.CommentsToHyperproof, before.CommentsToHyperproof)
				eq(t, "CommentsToServiceNow", st.CommentsToServiceNow, before.CommentsToServiceNow)
				eq(t, "ProofSynced", st.ProofSynced, 0)
				eq(t, "Suspended", st.Suspended, true)
				eq(t, "SuspendedAs", st.SuspendedAs, suspendAs)
				calls(t, w, "CopyCommentToHyperproof", 0)
				calls(t, w, "CopyCommentToServiceNow", 0)
				calls(t, w, "CopyAttachmentToHyperproof", 0)
			})
			s.run(input())
		})
	}
}

func TestResumeCarriesSuspendedPeriodContentOnceAndDoesNotReplayStatusChanges(t *testing.T) {
	// duringSN is the ServiceNow state the assignee leaves during the
	// suspension: in a group that, replayed, would change Hyperproof away
	// from the status the reopen chose.
	cases := []struct {
		name, suspendAs, duringSN, resumeTo, wantSN string
	}{
		{"closed then in progress", hpClosed, "-5", hpInProgress, "2"},
		{"closed then to do", hpClosed, "2", hpNotStarted, "1"},
		{"cancelled then in progress", hpCancelled, "-5", hpInProgress, "2"},
		{"cancelled then to do", hpCancelled, "2", hpNotStarted, "1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(hpInProgress)
			s := newStory(t, w)
			s.hyperproofUser(c.suspendAs)
			s.check(func(st workflows.Status) { eq(t, "ServiceNow state after suspend", w.snState(), "3") })
			var snID, hpID string
			s.then(func() {
				snID = w.addSNComment(snAssigneeUser, "added while suspended")
				hpID = w.addHPComment(hpCreatorUser, "reply while suspended")
				w.attach("during.pdf", []byte("during suspension"))
				s.hintSN()
			})
			// Status changes in ServiceNow during the suspension: none is
			// replayed into Hyperproof.
			s.serviceNowUser("7")
			s.serviceNowUser(c.duringSN)
			s.check(func(st workflows.Status) {
				eq(t, "copies during suspension", len(w.hpCopiesOf(snID))+len(w.snCopiesOf(hpID)), 0)
				eq(t, "Hyperproof status during suspension", w.hpStatusNow(), c.suspendAs)
			})
			s.hyperproofUser(c.resumeTo)
			s.then(func() { s.hintSN(); s.hintHP() })
			s.then(func() { s.hintSN() })
			s.check(func(st workflows.Status) {
				eq(t, "Suspended", st.Suspended, false)
				eq(t, "Hyperproof copies", len(w.hpCopiesOf(snID)), 1)
				eq(t, "ServiceNow copies", len(w.snCopiesOf(hpID)), 1)
				eq(t, "proof", len(w.proofs()), 1)
				calls(t, w, "CopyAttachmentToHyperproof", 1)
				// The reopen decides the state: ServiceNow is in the first
				// state of the group of the Hyperproof status, and the
				// ServiceNow move made during the suspension is not replayed.
				eq(t, "ServiceNow state", w.snState(), c.wantSN)
				eq(t, "status ServiceNowState", st.ServiceNowState, c.wantSN)
				eq(t, "Hyperproof status", w.hpStatusNow(), c.resumeTo)
				eq(t, "status HyperproofStatus", st.HyperproofStatus, c.resumeTo)
				calls(t, w, "SetHyperproofStatus", 0)
			})
			s.run(input())
		})
	}
}

func TestHyperproofToDoMovesServiceNowToFirstTodoState(t *testing.T) {
	w := newWorld(hpInProgress)
	s := newStory(t, w)
	s.hyperproofUser(hpNotStarted)
	s.then(func() { s.hintSN(); s.hintHP() })
	s.check(func(st workflows.Status) {
		eq(t, "ServiceNow state", w.snState(), "1")
		eq(t, "status ServiceNowState", st.ServiceNowState, "1")
		eq(t, "Hyperproof status", w.hpStatusNow(), hpNotStarted)
		calls(t, w, "SetHyperproofStatus", 0)
		calls(t, w, "AlertAssignee", 0)
	})
	s.run(input())
}

func TestCloseReopenMoreProofCloseAgainPublishesEveryProofOnce(t *testing.T) {
	w := newWorld(hpInProgress)
	s := newStory(t, w)
	s.then(func() { w.attach("first.pdf", []byte("one")); w.setSNState("3"); s.hintSN() })
	s.hyperproofUser(hpClosed)
	s.check(func(st workflows.Status) {
		eq(t, "proof on target after first close", len(w.onTarget()), 1)
		eq(t, "ServiceNow state", w.snState(), "3")
	})
	s.hyperproofUser(hpInProgress)
	s.check(func(st workflows.Status) {
		eq(t, "ServiceNow state after reopen", w.snState(), "2")
		eq(t, "Hyperproof status after reopen", w.hpStatusNow(), hpInProgress)
	})
	s.then(func() { w.attach("second.pdf", []byte("two")); s.hintSN() })
	s.serviceNowUser("3")
	s.check(func(st workflows.Status) { eq(t, "Hyperproof status", w.hpStatusNow(), hpSubmitted) })
	s.hyperproofUser(hpClosed)
	s.then(func() { s.hintHP(); s.hintSN() })
	s.check(func(st workflows.Status) {
		target := w.onTarget()
		eq(t, "proof on target", len(target), 2)
		perSource := map[string]int{}
		for _, p := range target {
			perSource[p.SourceFileID]++
		}
		for _, p := range w.proofs() {
			eq(t, "target copies of "+p.FileName, perSource[p.ID], 1)
		}
		calls(t, w, "PublishProofToTarget", 2)
		eq(t, "ProofPublished", st.ProofPublished, 2)
		for _, rec := range st.Proof {
			if rec.PublishedAt.IsZero() {
				t.Errorf("proof %s not marked published", rec.FileName)
			}
		}
	})
	s.run(input())
}

// ---- failures ----

func TestPermanentErrors_NonRetryableActivityFailureShowsInLastErrorAndNextSignalRecovers(t *testing.T) {
	type scenario struct {
		activity string
		setup    func(w *world) // the user's change whose sync fails
		hint     func(s *story)
		effect   func(t *testing.T, w *world) // checked after recovery: exactly once
	}
	boom := func(name string) error {
		return temporal.NewNonRetryableApplicationError(name+" refused by a data policy", "HTTP403", nil)
	}
	cases := []scenario{
		{"ReadSnapshot",
			func(w *world) { w.setSNState("3") }, (*story).hintSN,
			func(t *testing.T, w *world) { eq(t, "Hyperproof status", w.hpStatusNow(), hpSubmitted) }},
		{"SetHyperproofStatus",
			func(w *world) { w.setSNState("3") }, (*story).hintSN,
			func(t *testing.T, w *world) {
				eq(t, "Hyperproof status", w.hpStatusNow(), hpSubmitted)
				eq(t, "status writes", strings.Join(w.statusWrites(), ","), "submitted")
			}},
		{"MoveServiceNow",
			func(w *world) { w.setHPStatus(hpNotStarted) }, (*story).hintHP,
			func(t *testing.T, w *world) { eq(t, "ServiceNow state", w.snState(), "1") }},
		{"CopyCommentToHyperproof",
			func(w *world) { w.addSNComment(snAssigneeUser, "hello") }, (*story).hintSN,
			func(t *testing.T, w *world) { eq(t, "Hyperproof feed", len(w.hpFeed()), 1) }},
		{"CopyCommentToServiceNow",
			func(w *world) { w.addHPComment(hpCreatorUser, "hello") }, (*story).hintHP,
			func(t *testing.T, w *world) { eq(t, "ServiceNow journal", len(w.journal()), 1) }},
		{"CopyAttachmentToHyperproof",
			func(w *world) { w.attach("a.pdf", []byte("a")) }, (*story).hintSN,
			func(t *testing.T, w *world) { eq(t, "proof", len(w.proofs()), 2) }},
		{"PublishProofToTarget",
			func(w *world) { w.setHPStatus(hpClosed) }, (*story).hintHP,
			func(t *testing.T, w *world) {
				eq(t, "ServiceNow state", w.snState(), "3")
				eq(t, "proof on target", len(w.onTarget()), 1)
			}},
		{"AlertAssignee",
			func(w *world) { w.setHPStatus(hpInProgress) }, (*story).hintHP,
			func(t *testing.T, w *world) {
				eq(t, "alert comments", countAlerts(w), 1)
				eq(t, "ServiceNow state", w.snState(), "2")
			}},
	}
	for _, c := range cases {
		t.Run(c.activity, func(t *testing.T) {
			w := newWorld(hpInProgress)
			s := newStory(t, w)
			// Common start: one proof on the task, and (for the alert) the
			// task Submitted so setting In progress is a reopen.
			s.then(func() { w.attach("base.pdf", []byte("base")); s.hintSN() })
			if c.activity == "AlertAssignee" {
				s.serviceNowUser("3")
			}
			s.then(func() {
				w.failWith(c.activity, boom(c.activity))
				c.setup(w)
				c.hint(s)
			})
			s.check(func(st workflows.Status) {
				if !strings.Contains(st.LastError, c.activity+" refused by a data policy") {
					t.Errorf("LastError = %q, want the activity's message", st.LastError)
				}
				if st.LastErrorAt.IsZero() {
					t.Error("LastErrorAt not set")
				}
				eq(t, "Phase", st.Phase, workflows.PhaseBroken)
				w.failWith(c.activity, nil) // the operator fixes the cause
				c.hint(s)
			})
			s.check(func(st workflows.Status) {
				eq(t, "LastError after recovery", st.LastError, "")
				c.effect(t, w)
			})
			// More hints change nothing further.
			s.then(func() { s.hintHP(); s.hintSN() })
			s.check(func(st workflows.Status) {
				eq(t, "LastError", st.LastError, "")
				c.effect(t, w)
			})
			s.run(input())
		})
	}
}

func countAlerts(w *world) int {
	n := 0
	for _, e := range w.journal() {
		if strings.Contains(e.Text, "[hyperproof-alert:") {
			n++
		}
	}
	return n
}

// ---- continue-as-new ----

func TestHistoryLimits_ContinueAsNewCarriesStateWithItsLedgers(t *testing.T) {
	w := newWorld(hpInProgress)
	s := newStory(t, w)
	var snID, hpID, attID string
	s.then(func() {
		snID = w.addSNComment(snAssigneeUser, "before the hand-over")
		hpID = w.addHPComment(hpCreatorUser, "reply before the hand-over")
		attID = w.attach("a.pdf", []byte("a"))
		s.hintSN()
	})
	in := input()
	in.ContinueAsNewAfter = 2 // the first round after link, and this one
	s.env.ExecuteWorkflow(workflows.TaskSync, in)

	if !s.env.IsWorkflowCompleted() {
		t.Fatal("workflow did not continue as new")
	}
	err := s.env.GetWorkflowError()
	if !workflow.IsContinueAsNewError(err) {
		t.Fatalf("workflow error = %v, want continue-as-new", err)
	}
	var can *workflow.ContinueAsNewError
	if !errors.As(err, &can) {
		t.Fatalf("error %T is not a *workflow.ContinueAsNewError", err)
	}
	eq(t, "workflow type", can.WorkflowType.Name, workflows.TaskSyncWorkflowName)
	var next workflows.TaskSyncInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatalf("decode continue-as-new input: %v", err)
	}
	if next.State == nil {
		t.Fatal("continue-as-new input carries no state")
	}
	st := next.State
	eq(t, "HyperproofTaskID", next.HyperproofTaskID, testTaskID)
	eq(t, "ContinueAsNewAfter", next.ContinueAsNewAfter, 2)
	eq(t, "ExistingSysID", next.ExistingSysID, "")
	eq(t, "SysID", st.SysID, w.linked().SysID)
	eq(t, "Number", st.Number, w.linked().Number)
	eq(t, "Runs", st.Runs, 1)
	if _, ok := st.SeenServiceNowComments[snID]; !ok {
		t.Errorf("ServiceNow ledger lost %s: %v", snID, st.SeenServiceNowComments)
	}
	if !st.SeenHyperproofComments[hpID] {
		t.Errorf("Hyperproof ledger lost %s: %v", hpID, st.SeenHyperproofComments)
	}
	if _, ok := st.Proof[attID]; !ok {
		t.Errorf("proof ledger lost %s: %v", attID, st.Proof)
	}
	eq(t, "CommentsToHyperproof", st.CommentsToHyperproof, 1)
	eq(t, "CommentsToServiceNow", st.CommentsToServiceNow, 1)
	eq(t, "HyperproofStatus", st.HyperproofStatus, hpInProgress)
	eq(t, "ServiceNowState", st.ServiceNowState, "2")

	// The next run starts from that state: no second link, nothing carried
	// twice, new content carried once.
	next.ContinueAsNewAfter = 0
	s2 := newStory(t, w)
	var snID2 string
	s2.then(func() { snID2 = w.addSNComment(snAssigneeUser, "after the hand-over"); s2.hintSN(); s2.hintHP() })
	s2.check(func(st workflows.Status) {
		calls(t, w, "LinkServiceNowTask", 1)
		eq(t, "copies of the old comment", len(w.hpCopiesOf(snID)), 1)
		eq(t, "copies of the old reply", len(w.snCopiesOf(hpID)), 1)
		eq(t, "copies of the new comment", len(w.hpCopiesOf(snID2)), 1)
		eq(t, "proof", len(w.proofs()), 1)
		calls(t, w, "CopyAttachmentToHyperproof", 1)
		calls(t, w, "CopyCommentToHyperproof", 2)
		calls(t, w, "CopyCommentToServiceNow", 1)
		eq(t, "CommentsToHyperproof", st.CommentsToHyperproof, 2)
		eq(t, "Linked", st.Linked, true)
	})
	s2.run(next)
}

// refused transition (sync-faults.md): a step the API refuses is not retried
// in a loop, shows in the status query and once as a note on the Hyperproof
// task, and the rest of the task's sync goes on; after the cause is fixed the
// next hint completes the step.
func TestRefusedTransition_ShowsOnceAndTheRestOfTheSyncGoesOn(t *testing.T) {
	w := newWorld(hpInProgress)
	s := newStory(t, w)
	refusal := temporal.NewNonRetryableApplicationError("set servicenow state: HTTP 403: Operation Failed (data policy)", "HTTP403", nil)
	s.then(func() {
		w.failWith("MoveServiceNow", refusal)
		w.setHPStatus(hpNotStarted)
		w.addHPComment(hpCreatorUser, "please start with the export")
		w.attach("evidence.pdf", []byte("pdf"))
		s.hintHP()
		s.hintSN()
	})
	s.check(func(st workflows.Status) {
		eq(t, "Phase", st.Phase, workflows.PhaseBroken)
		eq(t, "problems", len(st.Problems), 1)
		if len(st.Problems) == 1 {
			eq(t, "problem step", st.Problems[0].Step, "servicenow-state")
		}
		eq(t, "ServiceNow state (refused)", w.snState(), "2")
		eq(t, "comment carried meanwhile", len(w.journal()), 1)
		eq(t, "proof carried meanwhile", len(w.proofs()), 1)
		eq(t, "notes on the Hyperproof task", len(w.notes), 1)
		s.hintHP() // the same refusal again: no second note
	})
	s.check(func(st workflows.Status) {
		eq(t, "notes after a repeated refusal", len(w.notes), 1)
		w.failWith("MoveServiceNow", nil)
		s.hintHP()
	})
	s.check(func(st workflows.Status) {
		eq(t, "ServiceNow state after the fix", w.snState(), "1")
		eq(t, "problems after the fix", len(st.Problems), 0)
		eq(t, "LastError after the fix", st.LastError, "")
		eq(t, "Phase after the fix", st.Phase, workflows.PhaseActive)
		eq(t, "comments still once", len(w.journal()), 1)
	})
	s.run(input())
}

// out of order (sync-faults.md): a hint is only a hint; the workflow acts
// on the state it reads, so an older event arriving after a newer one does
// not undo it.
func TestOutOfOrder_HintsActOnTheCurrentState(t *testing.T) {
	w := newWorld(hpInProgress)
	s := newStory(t, w)
	s.then(func() {
		// The assignee completes and at once takes the task back; the
		// hints for both changes arrive late and together.
		w.setSNState("3")
		w.setSNState("2")
		s.hintSN()
		s.hintSN()
	})
	s.check(func(st workflows.Status) {
		eq(t, "Hyperproof status", w.hpStatusNow(), hpInProgress)
		calls(t, w, "SetHyperproofStatus", 0)
	})
	s.then(func() { w.setSNState("3"); s.hintSN() })
	s.then(func() { s.hintSN() }) // a stale duplicate after the newer change
	s.check(func(st workflows.Status) {
		eq(t, "Hyperproof status", w.hpStatusNow(), hpSubmitted)
		eq(t, "status writes", strings.Join(w.statusWrites(), ","), "submitted")
	})
	s.run(input())
}

// Only Hyperproof closes a task: when the close could not be carried to
// ServiceNow (refused), a ServiceNow change made meanwhile must not reopen
// or resubmit the Hyperproof task.
func TestRefusedTransition_CloseRefusedByServiceNowIsNotUndoneByServiceNowChanges(t *testing.T) {
	w := newWorld(hpInProgress)
	s := newStory(t, w)
	s.then(func() {
		w.failWith("MoveServiceNow", temporal.NewNonRetryableApplicationError("Operation Failed (business rule)", "HTTP403", nil))
		w.setHPStatus(hpClosed)
		s.hintHP()
	})
	s.then(func() { w.setSNState("-5"); s.hintSN() }) // the assignee moves it meanwhile
	s.check(func(st workflows.Status) {
		eq(t, "Hyperproof status", w.hpStatusNow(), hpClosed)
		calls(t, w, "SetHyperproofStatus", 0)
		eq(t, "problems", len(st.Problems), 1)
		w.failWith("MoveServiceNow", nil)
		s.hintHP()
	})
	s.check(func(st workflows.Status) {
		eq(t, "Hyperproof status", w.hpStatusNow(), hpClosed)
		eq(t, "suspended", st.Suspended, true)
		eq(t, "ServiceNow state", w.snState(), "3")
		eq(t, "problems", len(st.Problems), 0)
		calls(t, w, "SetHyperproofStatus", 0)
	})
	s.run(input())
}
