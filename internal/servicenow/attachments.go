package servicenow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const attachmentPath = "/api/now/attachment"

// ListAttachments lists a record's attachments (metadata), oldest first with
// sys_id as tie-breaker, across all pages.
func (c *Client) ListAttachments(ctx context.Context, table, sysID string) ([]Attachment, error) {
	if err := checkTable(table); err != nil {
		return nil, err
	}
	if err := checkSysID(sysID); err != nil {
		return nil, err
	}
	id, err := literal("sys_id", sysID)
	if err != nil {
		return nil, err
	}
	return c.listAttachments(ctx, "table_name="+table+"^table_sys_id="+id+"^ORDERBYsys_created_on^ORDERBYsys_id")
}

// ListAttachmentsCreatedSince lists attachments created at or after since
// (to the second, UTC) on records of the given tables, oldest first with
// sys_id as tie-breaker, across all pages. Adding an attachment does not
// change its parent's sys_updated_on, so new files are found with this call
// rather than through the parent.
func (c *Client) ListAttachmentsCreatedSince(ctx context.Context, tables []string, since time.Time) ([]Attachment, error) {
	if len(tables) == 0 {
		return nil, errors.New("servicenow: no tables given")
	}
	for _, t := range tables {
		if err := checkTable(t); err != nil {
			return nil, err
		}
	}
	terms := []string{"table_nameIN" + strings.Join(tables, ",")}
	if !since.IsZero() {
		terms = append(terms, "sys_created_on>="+FormatTime(since))
	}
	terms = append(terms, "ORDERBYsys_created_on", "ORDERBYsys_id")
	return c.listAttachments(ctx, strings.Join(terms, "^"))
}

func (c *Client) listAttachments(ctx context.Context, query string) ([]Attachment, error) {
	q := url.Values{}
	q.Set("sysparm_query", query)
	q.Set("sysparm_limit", fmt.Sprint(pageSize))
	out := []Attachment{}
	err := c.list(ctx, attachmentPath, q, func(r rawRecord) error {
		a, err := decodeAttachment(r)
		if err != nil {
			return err
		}
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetAttachment reads an attachment's metadata (404 *APIError when missing).
func (c *Client) GetAttachment(ctx context.Context, sysID string) (Attachment, error) {
	if err := checkSysID(sysID); err != nil {
		return Attachment{}, err
	}
	rec, err := c.getObject(ctx, c.endpoint(attachmentPath+"/"+url.PathEscape(sysID), nil))
	if err != nil {
		return Attachment{}, err
	}
	return decodeAttachment(rec)
}

// DownloadAttachment opens the attachment's bytes as a stream. The caller
// must close it. Nothing is buffered: the size is bounded only by the
// caller's context and whatever it copies the stream into.
func (c *Client) DownloadAttachment(ctx context.Context, sysID string) (io.ReadCloser, error) {
	if err := checkSysID(sysID); err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("Accept", "*/*")
	resp, err := c.do(ctx, http.MethodGet, c.endpoint(attachmentPath+"/"+url.PathEscape(sysID)+"/file", nil), nil, h)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// UploadAttachment attaches body to a record (POST /attachment/file with the
// raw bytes, streamed). contentType "" is sent as application/octet-stream
// (the instance refuses an upload without Content-Type). The parent record
// must exist (404 otherwise).
func (c *Client) UploadAttachment(ctx context.Context, table, sysID, fileName, contentType string, body io.Reader) (Attachment, error) {
	if err := checkTable(table); err != nil {
		return Attachment{}, err
	}
	if err := checkSysID(sysID); err != nil {
		return Attachment{}, err
	}
	if fileName == "" {
		return Attachment{}, errors.New("servicenow: empty file name")
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	if body == nil {
		body = http.NoBody
	}
	q := url.Values{}
	q.Set("table_name", table)
	q.Set("table_sys_id", sysID)
	q.Set("file_name", fileName)
	h := http.Header{}
	h.Set("Content-Type", contentType)
	resp, err := c.do(ctx, http.MethodPost, c.endpoint(attachmentPath+"/file", q), body, h)
	if err != nil {
		return Attachment{}, err
	}
	defer resp.Body.Close()
	data, err := readBody(resp)
	if err != nil {
		return Attachment{}, err
	}
	if len(data) == 0 {
		// Only the Location header (…/attachment/<id>/file) tells the id.
		id := attachmentIDFromLocation(resp.Header.Get("Location"))
		if id == "" {
			return Attachment{}, fmt.Errorf("servicenow: POST %s/file: created, but the answer had neither a body nor a Location header", attachmentPath)
		}
		return c.GetAttachment(ctx, id)
	}
	res, err := decodeResult(resp, data)
	if err != nil {
		return Attachment{}, err
	}
	rec, err := decodeObject(resp, res)
	if err != nil {
		return Attachment{}, err
	}
	return decodeAttachment(rec)
}

func attachmentIDFromLocation(loc string) string {
	if loc == "" {
		return ""
	}
	if u, err := url.Parse(loc); err == nil {
		loc = u.Path
	}
	loc = strings.TrimSuffix(strings.TrimRight(loc, "/"), "/file")
	id := lastSegment(loc)
	if checkSysID(id) != nil || id == "attachment" {
		return ""
	}
	return id
}

// DeleteAttachment deletes an attachment (204). The integration never
// deletes; users do, and the tests act as users.
func (c *Client) DeleteAttachment(ctx context.Context, sysID string) error {
	if err := checkSysID(sysID); err != nil {
		return err
	}
	resp, err := c.do(ctx, http.MethodDelete, c.endpoint(attachmentPath+"/"+url.PathEscape(sysID), nil), nil, nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}
