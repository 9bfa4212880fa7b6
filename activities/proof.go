package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

	"hpsync/internal/hyperproof"
	"hpsync/internal/telemetry"
)

// ListServiceNowAttachments lists the attachments of the ServiceNow task
// (metadata only).
func (a *Activities) ListServiceNowAttachments(ctx context.Context, req AttachmentsRequest) ([]AttachmentMeta, error) {
	atts, err := a.SN.ListAttachments(ctx, req.Table, req.SysID)
	if err != nil {
		return nil, classify("list servicenow attachments", err)
	}
	out := make([]AttachmentMeta, 0, len(atts))
	for _, at := range atts {
		out = append(out, AttachmentMeta{
			SysID: at.SysID, FileName: at.FileName, ContentType: at.ContentType, SizeBytes: at.SizeBytes,
			Hash: at.Hash, CreatedBy: at.CreatedBy, CreatedOn: at.CreatedOn,
		})
	}
	sortByCreated(out, func(m AttachmentMeta) time.Time { return m.CreatedOn }, func(m AttachmentMeta) string { return m.SysID })
	return out, nil
}

// hashingReader counts and hashes the bytes that pass through it and
// heartbeats now and then, so a long transfer is seen to be alive.
type hashingReader struct {
	ctx  context.Context
	r    io.Reader
	h    hash.Hash
	n    int64
	last time.Time
}

func newHashingReader(ctx context.Context, r io.Reader) *hashingReader {
	return &hashingReader{ctx: ctx, r: r, h: sha256.New(), last: time.Now()}
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	if n > 0 {
		hr.h.Write(p[:n])
		hr.n += int64(n)
		if time.Since(hr.last) > 5*time.Second && activity.IsActivity(hr.ctx) {
			activity.RecordHeartbeat(hr.ctx, hr.n)
			hr.last = time.Now()
		}
	}
	return n, err
}

func (hr *hashingReader) sum() string { return hex.EncodeToString(hr.h.Sum(nil)) }

// CopyAttachmentToHyperproof streams one ServiceNow attachment into the
// Hyperproof task as proof under the same file name. The attachment's sys_id
// is the proof's source file id: a retry finds the proof already uploaded
// instead of adding a second copy. Bytes never leave this activity.
func (a *Activities) CopyAttachmentToHyperproof(ctx context.Context, req CopyAttachmentRequest) (ProofRecord, error) {
	att := req.Attachment
	rec := ProofRecord{
		AttachmentSysID: att.SysID, FileName: att.FileName, ContentType: att.ContentType,
		SizeBytes: att.SizeBytes, ServiceNowHash: att.Hash, AttachedBy: att.CreatedBy, AttachedOn: att.CreatedOn,
	}
	if a.MaxProofBytes > 0 && att.SizeBytes > a.MaxProofBytes {
		rec.Skipped = fmt.Sprintf("%d bytes is over the Hyperproof proof size limit of %d bytes", att.SizeBytes, a.MaxProofBytes)
		return rec, a.noteSkipped(ctx, req, rec.Skipped)
	}
	existing, err := a.HP.ListTaskProof(ctx, req.HyperproofTaskID, att.SysID)
	if err != nil {
		return rec, classify("list hyperproof task proof", err)
	}
	for _, p := range existing {
		if p.SourceFileID == att.SysID {
			// Uploaded by an earlier attempt: hash what Hyperproof holds so the
			// record still says what arrived.
			sum, n, err := a.hashProof(ctx, p.ID)
			if err != nil {
				return rec, err
			}
			if n != att.SizeBytes {
				return rec, fmt.Errorf("proof %s of %s holds %d bytes, the attachment has %d", p.ID, att.FileName, n, att.SizeBytes)
			}
			rec.SHA256, rec.HyperproofID, rec.ReachedAt = sum, p.ID, p.UploadedOn
			return rec, nil
		}
	}

	body, err := a.SN.DownloadAttachment(ctx, att.SysID)
	if err != nil {
		return rec, classify("download servicenow attachment", err)
	}
	defer body.Close()
	hr := newHashingReader(ctx, body)
	proof, err := a.HP.UploadTaskProof(ctx, req.HyperproofTaskID, hyperproof.ProofUpload{
		Filename:         att.FileName,
		ContentType:      att.ContentType,
		Body:             hr,
		SourceID:         req.SysID,
		SourceFileID:     att.SysID,
		SourceModifiedOn: att.CreatedOn,
	})
	if err != nil {
		return rec, classify("upload hyperproof proof", err)
	}
	rec.SHA256 = hr.sum()
	if hr.n != att.SizeBytes || proof.Size != hr.n {
		return rec, fmt.Errorf("size mismatch for %s: servicenow says %d, read %d, hyperproof stored %d", att.FileName, att.SizeBytes, hr.n, proof.Size)
	}
	if len(att.Hash) == 64 && !strings.EqualFold(att.Hash, rec.SHA256) {
		return rec, fmt.Errorf("hash mismatch for %s: servicenow %s, read %s", att.FileName, att.Hash, rec.SHA256)
	}
	rec.HyperproofID = proof.ID
	rec.ReachedAt = time.Now().UTC()
	telemetry.ItemSynced(ctx, telemetry.KindAttachment, telemetry.DirectionToHyperproof)
	telemetry.SyncLatency(ctx, telemetry.KindAttachment, rec.ReachedAt.Sub(att.CreatedOn))
	return rec, nil
}

func (a *Activities) hashProof(ctx context.Context, proofID string) (string, int64, error) {
	rc, err := a.HP.DownloadProof(ctx, proofID)
	if err != nil {
		return "", 0, classify("download hyperproof proof", err)
	}
	defer rc.Close()
	hr := newHashingReader(ctx, rc)
	if _, err := io.Copy(io.Discard, hr); err != nil {
		return "", 0, fmt.Errorf("read hyperproof proof %s: %w", proofID, err)
	}
	return hr.sum(), hr.n, nil
}

// PublishProofToTarget adds every proof of the task that is not yet on the
// task's target object (e.g. its control) to that object's Proof tab. The
// task proof id is the target proof's source file id, so a retry, or a
// second close after a reopen, uploads only what is missing.
func (a *Activities) PublishProofToTarget(ctx context.Context, req PublishRequest) (PublishResult, error) {
	task, err := a.HP.GetTask(ctx, req.HyperproofTaskID)
	if err != nil {
		return PublishResult{}, classify("read hyperproof task", err)
	}
	res := PublishResult{TargetType: task.TargetType, TargetID: task.TargetID}
	if task.TargetID == "" || task.TargetType == "" {
		return res, nonRetryable("hyperproof task %s has no target object to publish proof to", req.HyperproofTaskID)
	}
	proofs, err := a.HP.ListTaskProof(ctx, req.HyperproofTaskID, "")
	if err != nil {
		return res, classify("list hyperproof task proof", err)
	}
	onTarget, err := a.HP.ListProof(ctx, task.TargetType, task.TargetID)
	if err != nil {
		return res, classify("list target proof", err)
	}
	have := map[string]bool{}
	for _, p := range onTarget {
		if p.SourceFileID != "" {
			have[p.SourceFileID] = true
		}
	}
	for _, p := range proofs {
		if !have[p.ID] {
			if err := a.publishOne(ctx, task, p); err != nil {
				return res, err
			}
			res.Uploaded++
		}
		res.OnTarget = append(res.OnTarget, p.ID)
	}
	return res, nil
}

func (a *Activities) publishOne(ctx context.Context, task hyperproof.Task, p hyperproof.Proof) error {
	rc, err := a.HP.DownloadProof(ctx, p.ID)
	if err != nil {
		return classify("download hyperproof proof", err)
	}
	defer rc.Close()
	hr := newHashingReader(ctx, rc)
	up, err := a.HP.UploadTargetProof(ctx, task.TargetType, task.TargetID, hyperproof.ProofUpload{
		Filename:     p.Filename,
		ContentType:  p.ContentType,
		Body:         hr,
		SourceID:     task.ID,
		SourceFileID: p.ID,
	})
	if err != nil {
		return classify("upload target proof", err)
	}
	if up.Size != hr.n || (p.Size > 0 && p.Size != hr.n) {
		return fmt.Errorf("size mismatch publishing %s: task proof %d, read %d, target stored %d", p.Filename, p.Size, hr.n, up.Size)
	}
	telemetry.ItemSynced(ctx, telemetry.KindProof, telemetry.DirectionToHyperproof)
	return nil
}

// noteSkipped says out loud, on both tasks, that a file could not be
// carried. Each note is keyed by the attachment's sys_id, so a retry finds
// it instead of writing it again.
func (a *Activities) noteSkipped(ctx context.Context, req CopyAttachmentRequest, why string) error {
	att := req.Attachment
	text := fmt.Sprintf("The ServiceNow attachment %q was not copied into Hyperproof as proof: %s.", att.FileName, why)
	if err := a.NoteOnHyperproof(ctx, NoteRequest{HyperproofTaskID: req.HyperproofTaskID, Key: "skipped:" + att.SysID, Text: text}); err != nil {
		return err
	}
	ref := "[hyperproof-skipped:" + att.SysID + "]"
	written, err := a.journalHas(ctx, req.Table, req.SysID, ref)
	if err != nil || written {
		return err
	}
	if err := a.SN.AddComment(ctx, req.Table, req.SysID, text+"\n\n"+ref); err != nil {
		return classify("add servicenow note", err)
	}
	return nil
}
