package hpsim

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"hpsync/internal/sandbox/seed"
)

const (
	defaultProofLimit = 25
	maxProofLimit     = 500
	maxFieldSize      = 4 << 10
)

type proofJSON struct {
	ID               string  `json:"id"`
	OrgID            string  `json:"orgId"`
	Filename         string  `json:"filename"`
	ContentType      string  `json:"contentType"`
	FileExtension    string  `json:"fileExtension"`
	Size             int64   `json:"size"`
	Version          int     `json:"version"`
	Source           string  `json:"source"`
	SourceID         *string `json:"sourceId"`
	SourceFileID     *string `json:"sourceFileId"`
	SourceModifiedOn *string `json:"sourceModifiedOn"`
	OwnedBy          string  `json:"ownedBy"`
	IsPrivate        bool    `json:"isPrivate"`
	UploadedOn       string  `json:"uploadedOn"`
	Status           string  `json:"status"`
	CreatedBy        string  `json:"createdBy"`
	CreatedOn        string  `json:"createdOn"`
	UpdatedBy        string  `json:"updatedBy"`
	UpdatedOn        string  `json:"updatedOn"`
}

func (p *proof) json() proofJSON {
	created := formatTime(p.CreatedOn)
	return proofJSON{
		ID: p.ID, OrgID: seed.OrgID, Filename: p.Filename, ContentType: p.ContentType,
		FileExtension: fileExtension(p.Filename), Size: p.Size, Version: 0, Source: "api",
		SourceID: strPtr(p.SourceID), SourceFileID: strPtr(p.SourceFileID), SourceModifiedOn: timePtr(p.SourceModifiedOn),
		OwnedBy: p.OwnedBy, UploadedOn: created, Status: "active",
		CreatedBy: p.CreatedBy, CreatedOn: created, UpdatedBy: p.CreatedBy, UpdatedOn: created,
	}
}

// fileExtension is the lower-cased extension of a name without the dot, or
// "" when the name has none (or only something that is not an extension).
func fileExtension(name string) string {
	ext := path.Ext(name)
	if len(ext) < 2 || len(ext) > 11 || strings.ContainsAny(ext, " []()") {
		return ""
	}
	return strings.ToLower(ext[1:])
}

// uploadHandler serves POST /v1/{objectType}s/{id}/proof. The file part is
// streamed to disk as it arrives.
func (s *Server) uploadHandler(objectType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		s.mu.Lock()
		_, ok := s.targetName(objectType, id)
		s.mu.Unlock()
		if !ok {
			writeError(w, http.StatusNotFound, strings.ToUpper(objectType[:1])+objectType[1:]+" not found.")
			return
		}
		p, status, err := s.receiveProof(r)
		if err != nil {
			writeError(w, status, err.Error())
			return
		}
		p.ObjectType, p.ObjectID = objectType, id
		p.CreatedBy = principal(r)
		if p.OwnedBy == "" {
			p.OwnedBy = p.CreatedBy
		}
		s.mu.Lock()
		s.seq++
		p.seq = s.seq
		p.CreatedOn = s.now()
		s.proofs[p.ID] = p
		s.proofList = append(s.proofList, p)
		// Deliberately not touching a task's updatedOn.
		out := p.json()
		s.mu.Unlock()
		writeJSON(w, http.StatusCreated, out)
	}
}

// receiveProof reads the multipart body: the file part "proof" (to disk) and
// the hp-proof-* text fields, in any order.
func (s *Server) receiveProof(r *http.Request) (p *proof, status int, err error) {
	mt, _, perr := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if perr != nil || mt != "multipart/form-data" {
		return nil, http.StatusBadRequest, errors.New("the body must be multipart/form-data")
	}
	mr, merr := r.MultipartReader()
	if merr != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("invalid multipart body: %v", merr)
	}
	p = &proof{ID: newID()}
	gotFile := false
	defer func() {
		if err != nil && gotFile {
			os.Remove(p.path)
		}
	}()
	fields := map[string]string{}
	for {
		part, perr := mr.NextPart()
		if perr == io.EOF {
			break
		}
		if perr != nil {
			return p, http.StatusBadRequest, fmt.Errorf("invalid multipart body: %v", perr)
		}
		_, params, derr := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
		if derr != nil {
			part.Close()
			return p, http.StatusBadRequest, fmt.Errorf("invalid Content-Disposition of a part: %v", derr)
		}
		name := params["name"]
		if name == "proof" {
			if gotFile {
				part.Close()
				return p, http.StatusBadRequest, errors.New("only one proof file per request")
			}
			gotFile = true
			p.Filename = params["filename"] // mime.ParseMediaType prefers filename*
			if strings.TrimSpace(p.Filename) == "" {
				p.Filename = "proof"
			}
			p.ContentType = part.Header.Get("Content-Type")
			if p.ContentType == "" {
				p.ContentType = "application/octet-stream"
			}
			p.path = filepath.Join(s.dataDir, "proof-"+p.ID)
			n, werr := writeFile(p.path, part)
			part.Close()
			if werr != nil {
				return p, http.StatusBadRequest, fmt.Errorf("reading the proof file: %v", werr)
			}
			p.Size = n
			continue
		}
		v, rerr := io.ReadAll(io.LimitReader(part, maxFieldSize+1))
		part.Close()
		if rerr != nil {
			return p, http.StatusBadRequest, fmt.Errorf("reading field %q: %v", name, rerr)
		}
		if len(v) > maxFieldSize {
			return p, http.StatusBadRequest, fmt.Errorf("field %q is too long", name)
		}
		fields[name] = string(v)
	}
	if !gotFile {
		return p, http.StatusBadRequest, errors.New("the multipart body has no \"proof\" file part")
	}
	p.SourceID = fields["hp-proof-source-id"]
	p.SourceFileID = fields["hp-proof-source-file-id"]
	if v := fields["hp-proof-source-modified-on"]; v != "" {
		t, terr := parseTime(v)
		if terr != nil {
			return p, http.StatusBadRequest, fmt.Errorf("hp-proof-source-modified-on: %v", terr)
		}
		p.SourceModifiedOn = &t
	}
	if owner := fields["hp-proof-owned-by"]; owner != "" {
		s.mu.Lock()
		_, ok := s.users[owner]
		s.mu.Unlock()
		if !ok {
			return p, http.StatusBadRequest, errors.New("hp-proof-owned-by is not a user of the organization")
		}
		p.OwnedBy = owner
	}
	return p, 0, nil
}

func writeFile(name string, r io.Reader) (int64, error) {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

func (s *Server) handleListTaskProof(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	fileID := r.URL.Query().Get("sourceFileId")
	s.mu.Lock()
	if _, ok := s.tasks[id]; !ok {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "Task not found.")
		return
	}
	out := []proofJSON{}
	for _, p := range s.proofList {
		if p.ObjectType == "task" && p.ObjectID == id && (fileID == "" || p.SourceFileID == fileID) {
			out = append(out, p.json())
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// pageToken is the (opaque to clients) position of a proof listing.
type pageToken struct {
	After int64  `json:"a"`
	Type  string `json:"t,omitempty"`
	ID    string `json:"o,omitempty"`
}

func (s *Server) handleListProof(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	objectType, objectID := q.Get("objectType"), q.Get("objectId")
	limit := defaultProofLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxProofLimit {
			writeError(w, http.StatusBadRequest, "limit must be a number from 1 to 500.")
			return
		}
		limit = n
	}
	var after int64
	if v := q.Get("nextToken"); v != "" {
		var tok pageToken
		raw, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || json.Unmarshal(raw, &tok) != nil || tok.Type != objectType || tok.ID != objectID {
			writeError(w, http.StatusBadRequest, "nextToken is invalid.")
			return
		}
		after = tok.After
	}
	s.mu.Lock()
	if objectType != "" && objectID != "" {
		if _, ok := s.targetName(objectType, objectID); !ok {
			s.mu.Unlock()
			writeError(w, http.StatusNotFound, "Object not found.")
			return
		}
	}
	data := []proofJSON{}
	var last int64
	more := false
	for _, p := range s.proofList {
		if p.seq <= after || objectType != "" && p.ObjectType != objectType || objectID != "" && p.ObjectID != objectID {
			continue
		}
		if len(data) == limit {
			more = true
			break
		}
		data = append(data, p.json())
		last = p.seq
	}
	s.mu.Unlock()
	resp := struct {
		Data      []proofJSON `json:"data"`
		NextToken string      `json:"nextToken,omitempty"`
	}{Data: data}
	if more {
		b, _ := json.Marshal(pageToken{After: last, Type: objectType, ID: objectID})
		resp.NextToken = base64.RawURLEncoding.EncodeToString(b)
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleDownloadProof(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	p, ok := s.proofs[r.PathValue("id")]
	var filePath, name, ct string
	var created time.Time
	if ok {
		filePath, name, ct, created = p.path, p.Filename, p.ContentType, p.CreatedOn
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Proof not found.")
		return
	}
	f, err := os.Open(filePath)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "The proof file cannot be read.")
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", attachmentDisposition(name))
	http.ServeContent(w, r, "", created, f) // streams from disk, honours Range
}

// attachmentDisposition names a download: an ASCII fallback plus the exact
// name in RFC 5987 form.
func attachmentDisposition(name string) string {
	fallback := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '_'
		}
		return r
	}, name)
	return `attachment; filename="` + fallback + `"; filename*=UTF-8''` + extValue(name)
}

// extValue percent-encodes everything but RFC 5987 attr-chars.
func extValue(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
