package snsim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"time"
)

// hook is one queued business-rule post.
type hook struct {
	table, sysID, event string
}

// WebhookPayload is the body the business rule posts.
type WebhookPayload struct {
	Table string `json:"table"`
	SysID string `json:"sys_id"`
}

// Sign returns the X-Signature-256 value for body: "sha256=<hex HMAC>".
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// queueHookLocked reserves a webhook post; s.mu must be held. The post is
// sent by startHooks once the lock is released.
func (s *Server) queueHookLocked(table, sysID, event string) []hook {
	if s.opts.WebhookURL == "" || s.closed {
		return nil
	}
	s.hooks.Add(1)
	return []hook{{table: table, sysID: sysID, event: event}}
}

// startHooks sends queued posts in the background, like an async business
// rule: the API answer does not wait for them and failures are only logged.
func (s *Server) startHooks(hooks []hook) {
	for _, h := range hooks {
		go func() {
			defer s.hooks.Done()
			s.post(h)
		}()
	}
}

func (s *Server) post(h hook) {
	body, err := json.Marshal(WebhookPayload{Table: h.table, SysID: h.sysID})
	if err != nil {
		s.logf("snsim: webhook %s %s/%s: %v", h.event, h.table, h.sysID, err)
		return
	}
	ctx, cancel := context.WithTimeout(s.hookCtx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opts.WebhookURL, bytes.NewReader(body))
	if err != nil {
		s.logf("snsim: webhook %s %s/%s: %v", h.event, h.table, h.sysID, err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ServiceNow/1.0")
	req.Header.Set(SignatureHeader, Sign(s.opts.WebhookSecret, body))
	resp, err := s.hookClient.Do(req)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			s.logf("snsim: webhook %s %s/%s: %v", h.event, h.table, h.sysID, err)
		}
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		s.logf("snsim: webhook %s %s/%s: HTTP %d", h.event, h.table, h.sysID, resp.StatusCode)
	}
}

func removeFile(s *Server, path string) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.logf("snsim: remove %s: %v", path, err)
	}
}
