package hyperproof

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// proofPageSize is the limit asked of GET /v1/proof (the documented maximum).
const proofPageSize = 500

// wireProof is proof metadata as the API writes it.
type wireProof struct {
	ID               string  `json:"id"`
	Filename         string  `json:"filename"`
	NameOverride     string  `json:"nameOverride"`
	ContentType      string  `json:"contentType"`
	Size             flexInt `json:"size"`
	Version          flexInt `json:"version"`
	SourceID         string  `json:"sourceId"`
	SourceFileID     string  `json:"sourceFileId"`
	SourceModifiedOn Time    `json:"sourceModifiedOn"`
	Status           string  `json:"status"`
	CreatedBy        string  `json:"createdBy"`
	CreatedOn        Time    `json:"createdOn"`
	UploadedOn       Time    `json:"uploadedOn"`
}

func (w wireProof) proof() Proof {
	p := Proof{
		ID:               w.ID,
		Filename:         w.Filename,
		ContentType:      w.ContentType,
		Size:             int64(w.Size),
		SourceID:         w.SourceID,
		SourceFileID:     w.SourceFileID,
		Status:           w.Status,
		CreatedBy:        w.CreatedBy,
		UploadedOn:       w.UploadedOn.Time,
		Version:          int64(w.Version),
		SourceModifiedOn: w.SourceModifiedOn.Time,
	}
	if p.UploadedOn.IsZero() {
		p.UploadedOn = w.CreatedOn.Time
	}
	return p
}

func decodeProofInto(out *[]Proof) func(json.RawMessage) error {
	return func(raw json.RawMessage) error {
		var w wireProof
		if err := json.Unmarshal(raw, &w); err != nil {
			return err
		}
		*out = append(*out, w.proof())
		return nil
	}
}

// ListTaskProof lists the proof attached to a task (GET
// /v1/tasks/{id}/proof), only that with the given source file id when
// sourceFileID is not empty.
func (c *Client) ListTaskProof(ctx context.Context, taskID, sourceFileID string) ([]Proof, error) {
	seg, err := pathID("task", taskID)
	if err != nil {
		return nil, err
	}
	var q url.Values
	if sourceFileID != "" {
		q = url.Values{"sourceFileId": {sourceFileID}}
	}
	var out []Proof
	if err := c.listAll(ctx, http.MethodGet, "/v1/tasks/"+seg+"/proof", q, nil, decodeProofInto(&out)); err != nil {
		return nil, err
	}
	if sourceFileID != "" {
		// Do not trust the server to have filtered, but keep items that do
		// not echo their source file id.
		kept := out[:0]
		for _, p := range out {
			if p.SourceFileID == "" || p.SourceFileID == sourceFileID {
				kept = append(kept, p)
			}
		}
		out = kept
	}
	return out, nil
}

// ListProof lists the proof of an object (GET /v1/proof?objectType=&objectId=),
// following nextToken over every page. Empty objectType and objectID list the
// organisation's proof.
func (c *Client) ListProof(ctx context.Context, objectType, objectID string) ([]Proof, error) {
	q := url.Values{"limit": {strconv.Itoa(proofPageSize)}}
	if objectType != "" {
		q.Set("objectType", objectType)
	}
	if objectID != "" {
		q.Set("objectId", objectID)
	}
	var out []Proof
	if err := c.listAll(ctx, http.MethodGet, "/v1/proof", q, nil, decodeProofInto(&out)); err != nil {
		return nil, err
	}
	return out, nil
}

// UploadTaskProof uploads one file as proof of a task (POST
// /v1/tasks/{id}/proof, multipart). The body is streamed.
func (c *Client) UploadTaskProof(ctx context.Context, taskID string, p ProofUpload) (Proof, error) {
	seg, err := pathID("task", taskID)
	if err != nil {
		return Proof{}, err
	}
	return c.uploadProof(ctx, "/v1/tasks/"+seg+"/proof", p)
}

// UploadTargetProof uploads one file to the Proof tab of an object (POST
// /v1/{objectType}s/{id}/proof): objectType "control", "label", ...
func (c *Client) UploadTargetProof(ctx context.Context, objectType, objectID string, p ProofUpload) (Proof, error) {
	if !validObjectType(objectType) {
		return Proof{}, fmt.Errorf("hyperproof: invalid object type %q", objectType)
	}
	seg, err := pathID(objectType, objectID)
	if err != nil {
		return Proof{}, err
	}
	return c.uploadProof(ctx, "/v1/"+objectType+"s/"+seg+"/proof", p)
}

func validObjectType(t string) bool {
	if t == "" {
		return false
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// DownloadProof streams the bytes of a proof (GET /v1/proof/{id}/contents).
// The caller closes the reader.
func (c *Client) DownloadProof(ctx context.Context, proofID string) (io.ReadCloser, error) {
	seg, err := pathID("proof", proofID)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/proof/" + seg + "/contents", accept: "*/*"})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

func (c *Client) uploadProof(ctx context.Context, path string, p ProofUpload) (Proof, error) {
	if p.Body == nil {
		return Proof{}, errors.New("hyperproof: proof upload without a body")
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(writeProofForm(mw, p))
	}()
	resp, err := c.do(ctx, request{
		method:      http.MethodPost,
		path:        path,
		body:        pr,
		contentType: mw.FormDataContentType(),
	})
	// Whatever happened, stop the writer (it fails its next write) and wait
	// for it, so that p.Body is no longer read once we return.
	pr.CloseWithError(errors.New("hyperproof: upload request finished"))
	<-done
	if err != nil {
		return Proof{}, err
	}
	defer resp.Body.Close()
	var w wireProof
	ok, err := decodeBody(resp, http.MethodPost, path, &w)
	if err != nil {
		return Proof{}, err
	}
	if !ok || w.ID == "" {
		return Proof{}, fmt.Errorf("hyperproof: POST %s: the answer carries no proof id", path)
	}
	return w.proof(), nil
}

// writeProofForm writes the multipart body: the hp-proof-* text fields, then
// the file part "proof" with its own content type and file name.
func writeProofForm(mw *multipart.Writer, p ProofUpload) error {
	fields := []struct{ name, value string }{
		{"hp-proof-source-id", p.SourceID},
		{"hp-proof-source-file-id", p.SourceFileID},
	}
	if !p.SourceModifiedOn.IsZero() {
		fields = append(fields, struct{ name, value string }{"hp-proof-source-modified-on", formatTime(p.SourceModifiedOn)})
	}
	for _, f := range fields {
		if f.value == "" {
			continue
		}
		if err := mw.WriteField(f.name, f.value); err != nil {
			return err
		}
	}
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", formDataDisposition("proof", p.Filename))
	h.Set("Content-Type", proofContentType(p))
	part, err := mw.CreatePart(h)
	if err != nil {
		return err
	}
	if _, err := io.Copy(part, p.Body); err != nil {
		return fmt.Errorf("hyperproof: reading proof %q: %w", p.Filename, err)
	}
	return mw.Close()
}

func proofContentType(p ProofUpload) string {
	if ct := strings.TrimSpace(p.ContentType); ct != "" {
		if _, _, err := mime.ParseMediaType(ct); err == nil && !strings.ContainsAny(ct, "\r\n") {
			return ct
		}
	}
	if ext := path.Ext(p.Filename); ext != "" {
		if ct := mime.TypeByExtension(ext); ct != "" {
			return ct
		}
	}
	return "application/octet-stream"
}

// formDataDisposition builds the Content-Disposition of a multipart file
// part. The name is kept as it is (accents, spaces, brackets, no extension):
// it is written as a quoted string in UTF-8 (as browsers do), with control
// characters replaced, and, when it is not plain ASCII or needs escaping, an
// RFC 5987 filename* parameter as well, which parsers that know it prefer.
func formDataDisposition(field, filename string) string {
	name := cleanFilename(filename)
	var b strings.Builder
	b.WriteString(`form-data; name="`)
	b.WriteString(quoteEscape(field))
	b.WriteString(`"; filename="`)
	b.WriteString(quoteEscape(name))
	b.WriteString(`"`)
	if needsExtended(name) {
		b.WriteString("; filename*=UTF-8''")
		b.WriteString(rfc5987Escape(name))
	}
	return b.String()
}

// cleanFilename replaces control characters (which would break the header)
// and invalid UTF-8; an empty name becomes "file".
func cleanFilename(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '_'
		}
		return r
	}, s)
	if strings.TrimSpace(s) == "" {
		return "file"
	}
	return s
}

func quoteEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

func needsExtended(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf || s[i] == '"' || s[i] == '\\' || s[i] == '%' {
			return true
		}
	}
	return false
}

// rfc5987Escape percent-encodes everything but RFC 5987 attr-chars.
func rfc5987Escape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
