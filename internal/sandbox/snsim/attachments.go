package snsim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"
)

func (s *Server) serveAttachment(w http.ResponseWriter, r *http.Request, rc *reqCtx, rest string) {
	switch {
	case rest == "":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r)
			return
		}
		s.listAttachments(w, r, rc)
	case rest == "file":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, r)
			return
		}
		s.uploadRaw(w, r, rc)
	case rest == "upload":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, r)
			return
		}
		s.uploadMultipart(w, r, rc)
	default:
		id, sub, _ := strings.Cut(rest, "/")
		switch {
		case sub == "" && r.Method == http.MethodGet:
			s.getAttachment(w, rc, id)
		case sub == "" && r.Method == http.MethodDelete:
			s.deleteAttachment(w, id)
		case sub == "file" && r.Method == http.MethodGet:
			s.downloadAttachment(w, id)
		case sub == "" || sub == "file":
			methodNotAllowed(w, r)
		default:
			writeError(w, http.StatusBadRequest, "Requested URI does not represent any resource", nil)
		}
	}
}

// renderAttachment is the Attachment API's metadata object: the stored
// columns plus download_link.
func (s *Server) renderAttachment(rec record, rc *reqCtx) map[string]any {
	at := s.tables["sys_attachment"]
	out := map[string]any{}
	for _, f := range at.fields {
		out[f.name] = rec[f.name]
	}
	out["download_link"] = rc.base + rc.apiPrefix + "/attachment/" + rec["sys_id"] + "/file"
	return out
}

func (s *Server) listAttachments(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	offset, limit := s.pageParams(r)
	s.mu.Lock()
	at := s.tables["sys_attachment"]
	q, ignored := parseQuery(r.URL.Query().Get("sysparm_query"), at)
	rows := selectRows(at, q, at.sortedRows())
	total := len(rows)
	out := []map[string]any{}
	for i := offset; i < total && i < offset+limit; i++ {
		out = append(out, s.renderAttachment(rows[i], rc))
	}
	s.mu.Unlock()
	if len(ignored) > 0 {
		s.logf("snsim: sys_attachment: ignored invalid query terms %q", ignored)
	}
	s.setPageHeaders(w, r, rc, offset, limit, total)
	writeJSON(w, http.StatusOK, map[string]any{"result": out})
}

func (s *Server) getAttachment(w http.ResponseWriter, rc *reqCtx, id string) {
	s.mu.Lock()
	rec, ok := s.tables["sys_attachment"].rows[id]
	var out map[string]any
	if ok {
		out = s.renderAttachment(rec, rc)
	}
	s.mu.Unlock()
	if !ok {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": out})
}

func (s *Server) deleteAttachment(w http.ResponseWriter, id string) {
	s.mu.Lock()
	at := s.tables["sys_attachment"]
	_, ok := at.rows[id]
	path := s.files[id]
	if ok {
		delete(at.rows, id)
		delete(s.files, id)
	}
	s.mu.Unlock()
	if !ok {
		notFound(w)
		return
	}
	if path != "" {
		removeFile(s, path)
	}
	w.WriteHeader(http.StatusNoContent)
}

// downloadAttachment streams the stored bytes from disk.
func (s *Server) downloadAttachment(w http.ResponseWriter, id string) {
	s.mu.Lock()
	rec, ok := s.tables["sys_attachment"].rows[id]
	var meta record
	if ok {
		meta = record{}
		for k, v := range rec {
			meta[k] = v
		}
	}
	path := s.files[id]
	s.mu.Unlock()
	if !ok || path == "" {
		notFound(w)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		s.logf("snsim: open attachment %s: %v", id, err)
		notFound(w)
		return
	}
	defer f.Close()

	h := w.Header()
	h.Set("Content-Type", meta["content_type"])
	h.Set("Content-Length", meta["size_bytes"])
	h.Set("Content-Disposition", contentDisposition(meta["file_name"]))
	h.Set("X-Content-Type-Options", "nosniff")
	// The instance sends this header name in lower case; set it verbatim.
	h["x-attachment-metadata"] = []string{s.metadataHeader(meta)}
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, f); err != nil {
		s.logf("snsim: download %s: %v", id, err)
	}
}

// metadataHeader renders the x-attachment-metadata value the way the
// instance does: a JSON object with odd spacing, no download_link, ASCII
// only (non-ASCII escaped) so that it is a valid header value.
func (s *Server) metadataHeader(meta record) string {
	at := s.tables["sys_attachment"]
	parts := make([]string, 0, len(at.fields))
	for _, f := range at.fields {
		parts = append(parts, fmt.Sprintf("%s : %s", asciiJSON(f.name), asciiJSON(meta[f.name])))
	}
	return "{  " + strings.Join(parts, ",  ") + "}"
}

func asciiJSON(s string) string {
	b, _ := json.Marshal(s)
	var out strings.Builder
	for _, r := range string(b) {
		switch {
		case r < 0x80:
			out.WriteRune(r)
		case r > 0xFFFF:
			r -= 0x10000
			fmt.Fprintf(&out, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
		default:
			fmt.Fprintf(&out, `\u%04x`, r)
		}
	}
	return out.String()
}

// contentDisposition renders "attachment", an ASCII fallback filename and
// the RFC 5987 filename* parameter (UTF-8, percent-encoded), as the instance
// does.
func contentDisposition(name string) string {
	var fallback strings.Builder
	for _, r := range name {
		if r < 0x20 || r >= 0x7f || r == '"' || r == '\\' {
			fallback.WriteByte('_')
		} else {
			fallback.WriteRune(r)
		}
	}
	var enc strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if isAttrChar(c) {
			enc.WriteByte(c)
		} else {
			fmt.Fprintf(&enc, "%%%02X", c)
		}
	}
	return `attachment;filename="` + fallback.String() + `";filename*=UTF-8''` + enc.String()
}

func isAttrChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$&+-.^_`|~", c) >= 0
}

// checkParentLocked validates the record an attachment goes on.
func (s *Server) checkParentLocked(tableName, sysID string) *apiError {
	t := s.tables[tableName]
	if t == nil || tableName == "sys_attachment" {
		return &apiError{http.StatusBadRequest, "Invalid table " + tableName, strp("Table " + tableName + " does not exist")}
	}
	if _, ok := t.rows[sysID]; !ok {
		return errNotFound()
	}
	return nil
}

func (s *Server) uploadRaw(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	q := r.URL.Query()
	for _, p := range []string{"table_name", "table_sys_id", "file_name"} {
		if q.Get(p) == "" {
			writeError(w, http.StatusBadRequest, "Failed to create the attachment. Missing parameter: "+p, nil)
			return
		}
	}
	contentType := r.Header.Get("Content-Type")
	if contentType == "" {
		writeError(w, http.StatusBadRequest, "Content-Type header is mandatory", strp("Set Content-Type to the MIME type of the file"))
		return
	}
	s.store(w, r, rc, r.Body, q.Get("table_name"), q.Get("table_sys_id"), q.Get("file_name"), contentType)
}

// uploadMultipart handles POST /attachment/upload: text parts table_name and
// table_sys_id (or record_sys_id) first, the file part last.
func (s *Server) uploadMultipart(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	mr, err := r.MultipartReader()
	if err != nil {
		writeError(w, http.StatusBadRequest, "Failed to create the attachment. The request must be multipart/form-data", nil)
		return
	}
	fields := map[string]string{}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			writeError(w, http.StatusBadRequest, "Failed to create the attachment. File part might be missing in the request.", nil)
			return
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, "Failed to create the attachment. Malformed multipart body", nil)
			return
		}
		if part.FileName() == "" {
			b, _ := io.ReadAll(io.LimitReader(part, 64<<10))
			fields[part.FormName()] = string(b)
			_ = part.Close()
			continue
		}
		tableName := fields["table_name"]
		sysID := fields["table_sys_id"]
		if sysID == "" {
			sysID = fields["record_sys_id"]
		}
		if tableName == "" || sysID == "" {
			writeError(w, http.StatusBadRequest, "Failed to create the attachment. table_name and table_sys_id must come before the file part", nil)
			return
		}
		contentType := part.Header.Get("Content-Type")
		if contentType == "" {
			contentType = "application/octet-stream"
		}
		s.store(w, r, rc, part, tableName, sysID, part.FileName(), contentType)
		return
	}
}

// store streams body to a file while hashing it, then records the
// attachment. The parent record is NOT touched (no sys_updated_on or
// sys_mod_count change); a separate business rule on sys_attachment posts
// the webhook for linked tasks.
func (s *Server) store(w http.ResponseWriter, r *http.Request, rc *reqCtx, body io.Reader, tableName, sysID, fileName, contentType string) {
	s.mu.Lock()
	aerr := s.checkParentLocked(tableName, sysID)
	s.mu.Unlock()
	if aerr != nil {
		aerr.write(w)
		return
	}

	tmp, err := os.CreateTemp(s.dataDir, "upload-*")
	if err != nil {
		writeError(w, http.StatusInternalServerError, "Failed to create the attachment", strp(err.Error()))
		return
	}
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, sum), body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		removeFile(s, tmp.Name())
		writeError(w, http.StatusBadRequest, "Failed to create the attachment", strp("Could not read the request body"))
		return
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		removeFile(s, tmp.Name())
		writeError(w, http.StatusServiceUnavailable, "Service Unavailable", nil)
		return
	}
	if aerr := s.checkParentLocked(tableName, sysID); aerr != nil {
		s.mu.Unlock()
		removeFile(s, tmp.Name())
		aerr.write(w)
		return
	}
	id := newSysID()
	final := filepath.Join(s.dataDir, id)
	if err := os.Rename(tmp.Name(), final); err != nil {
		s.mu.Unlock()
		removeFile(s, tmp.Name())
		writeError(w, http.StatusInternalServerError, "Failed to create the attachment", strp(err.Error()))
		return
	}
	if !utf8.ValidString(fileName) {
		fileName = strings.ToValidUTF8(fileName, "_")
	}
	at := s.tables["sys_attachment"]
	rec := at.blank()
	size := strconv.FormatInt(n, 10)
	rec["sys_id"] = id
	rec["file_name"] = fileName
	rec["content_type"] = contentType
	rec["size_bytes"] = size
	rec["size_compressed"] = size
	rec["compressed"] = "false"
	rec["table_name"] = tableName
	rec["table_sys_id"] = sysID
	rec["hash"] = hex.EncodeToString(sum.Sum(nil))
	rec["state"] = "available"
	rec["chunk_size_bytes"] = "700000"
	stampCreate(rec, s.nowString(), rc.user)
	at.rows[id] = rec
	s.files[id] = final
	var hooks []hook
	if parent := s.tables[tableName]; parent.task && strings.HasPrefix(parent.rows[sysID]["correlation_id"], CorrelationPrefix) {
		hooks = s.queueHookLocked(tableName, sysID, "attachment")
	}
	out := s.renderAttachment(rec, rc)
	s.mu.Unlock()
	s.startHooks(hooks)

	w.Header().Set("Location", rc.base+rc.apiPrefix+"/attachment/"+id+"/file")
	if strings.EqualFold(r.Header.Get("X-no-response-body"), "true") {
		w.WriteHeader(http.StatusCreated)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"result": out})
}
