package hyperproof

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// maxErrorBody is how much of an error answer is read.
const maxErrorBody = 64 << 10

// isQuotaMessage tells a transient quota answer (API Management's
// "Bandwidth quota exceeded. Try again later.", "Out of call volume quota.
// Quota will be replenished in 00:00:59.") from a real authorization 403.
func isQuotaMessage(msg string) bool {
	m := strings.ToLower(msg)
	if !strings.Contains(m, "quota") {
		return false
	}
	return strings.Contains(m, "exceeded") || strings.Contains(m, "out of") || strings.Contains(m, "replenished")
}

var (
	tryAgainRe    = regexp.MustCompile(`(?i)try again in\s+(\d+(?:\.\d+)?)\s*(second|sec|s\b|minute|min)`)
	htmlTagRe     = regexp.MustCompile(`(?s)<(script|style)[^>]*>.*?</(script|style)>|<[^>]*>`)
	replenishedRe = regexp.MustCompile(`(?i)replenished in\s+(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})`)
)

// newAPIError builds the error of a non-2xx answer and closes its body.
func newAPIError(resp *http.Response) *APIError {
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	e := &APIError{StatusCode: resp.StatusCode, Message: errorMessage(raw)}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	e.RetryAfter = retryAfter(resp.Header, e.Message, time.Now())
	return e
}

// errorMessage extracts the message of an error body: Hyperproof's
// {"statusCode","message"}, OAuth's {"error","error_description"},
// {"error":{"message"}}, {"title","detail"}, or the text itself.
func errorMessage(raw []byte) string {
	text := strings.TrimSpace(string(raw))
	if text == "" {
		return ""
	}
	var body struct {
		Message          json.RawMessage `json:"message"`
		Error            json.RawMessage `json:"error"`
		ErrorDescription string          `json:"error_description"`
		Title            string          `json:"title"`
		Detail           string          `json:"detail"`
	}
	if err := json.Unmarshal(raw, &body); err == nil {
		if s := jsonText(body.Message); s != "" {
			return s
		}
		if body.ErrorDescription != "" {
			if s := jsonText(body.Error); s != "" {
				return s + ": " + body.ErrorDescription
			}
			return body.ErrorDescription
		}
		if len(body.Error) > 0 {
			var nested struct {
				Message string `json:"message"`
				Detail  string `json:"detail"`
			}
			if json.Unmarshal(body.Error, &nested) == nil && nested.Message != "" {
				if nested.Detail != "" {
					return nested.Message + ": " + nested.Detail
				}
				return nested.Message
			}
			if s := jsonText(body.Error); s != "" {
				return s
			}
		}
		if body.Title != "" {
			if body.Detail != "" {
				return body.Title + ": " + body.Detail
			}
			return body.Title
		}
	}
	// Not a known JSON shape: an HTML page or plain text. Keep it short and
	// on one line.
	if strings.HasPrefix(text, "<") {
		text = html.UnescapeString(htmlTagRe.ReplaceAllString(text, " "))
	}
	text = strings.Join(strings.Fields(text), " ")
	return truncate(text, 300)
}

// jsonText renders a JSON string as itself and any other JSON value (an
// array of validation messages, say) compactly.
func jsonText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimSpace(s)
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return strings.Join(list, "; ")
	}
	return truncate(string(raw), 300)
}

// retryAfter reads how long to wait: the Retry-After header (seconds or an
// HTTP date), else X-RateLimit-Reset when X-RateLimit-Remaining is 0, else
// the "Try again in N seconds" / "replenished in hh:mm:ss" text.
func retryAfter(h http.Header, msg string, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 {
			return time.Duration(secs * float64(time.Second))
		}
		if t, err := http.ParseTime(v); err == nil {
			if d := t.Sub(now); d > 0 {
				return d
			}
			return 0
		}
	}
	if rem := strings.TrimSpace(h.Get("X-RateLimit-Remaining")); rem != "" {
		if n, err := strconv.ParseFloat(rem, 64); err == nil && n <= 0 {
			if reset := strings.TrimSpace(h.Get("X-RateLimit-Reset")); reset != "" {
				if v, err := strconv.ParseFloat(reset, 64); err == nil && v >= 0 {
					if v < 1e9 { // small values are a delay in seconds, not an epoch
						return time.Duration(v * float64(time.Second))
					}
					at := time.Unix(0, int64(v*float64(time.Second)))
					if d := at.Sub(now); d > 0 {
						return d
					}
					return 0
				}
			}
		}
	}
	if m := tryAgainRe.FindStringSubmatch(msg); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		unit := time.Second
		if strings.HasPrefix(strings.ToLower(m[2]), "min") {
			unit = time.Minute
		}
		return time.Duration(v * float64(unit))
	}
	if m := replenishedRe.FindStringSubmatch(msg); m != nil {
		days, _ := strconv.Atoi(m[1])
		hh, _ := strconv.Atoi(m[2])
		mm, _ := strconv.Atoi(m[3])
		ss, _ := strconv.Atoi(m[4])
		return time.Duration(days)*24*time.Hour + time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute + time.Duration(ss)*time.Second
	}
	return 0
}

// ErrCredentialsRejected is matched (errors.Is) by an *AuthError whose token
// request was refused: wrong client id or secret, disabled client.
var ErrCredentialsRejected = errors.New("hyperproof: client credentials rejected")

// AuthError is a failure to obtain an access token. It never carries the
// client secret.
type AuthError struct {
	ClientID    string
	StatusCode  int    // HTTP status of the token endpoint, 0 if none was received
	Code        string // OAuth "error", e.g. invalid_client
	Description string // OAuth "error_description" or the answer's text
	err         error  // transport error when StatusCode is 0
}

// Rejected tells whether the token endpoint refused the credentials
// (as opposed to being unreachable or failing).
func (e *AuthError) Rejected() bool {
	return e.StatusCode == http.StatusBadRequest || e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
}

// Retryable tells whether asking again later may succeed: the token endpoint
// was unreachable, throttled or failing. Rejected credentials are not
// retryable.
func (e *AuthError) Retryable() bool {
	return e.StatusCode == 0 || e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

func (e *AuthError) Error() string {
	var b strings.Builder
	if e.Rejected() {
		fmt.Fprintf(&b, "hyperproof: the token endpoint rejected the client credentials of client %q (HTTP %d", e.ClientID, e.StatusCode)
	} else if e.StatusCode != 0 {
		fmt.Fprintf(&b, "hyperproof: token request for client %q failed (HTTP %d", e.ClientID, e.StatusCode)
	} else {
		fmt.Fprintf(&b, "hyperproof: token request for client %q failed", e.ClientID)
		if e.err != nil {
			fmt.Fprintf(&b, ": %v", e.err)
		}
		return b.String()
	}
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Description != "" {
		b.WriteString(": " + e.Description)
	}
	b.WriteString(")")
	if e.Rejected() {
		b.WriteString("; check the client id and secret")
	}
	return b.String()
}

// Unwrap lets errors.Is match ErrCredentialsRejected, or the transport error.
func (e *AuthError) Unwrap() error {
	if e.Rejected() {
		return ErrCredentialsRejected
	}
	return e.err
}

// newAuthError turns a token source failure into an *AuthError with every
// occurrence of the secret removed.
func newAuthError(err error, clientID, secret string) *AuthError {
	ae := &AuthError{ClientID: clientID}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.Response != nil {
			ae.StatusCode = re.Response.StatusCode
		}
		ae.Code = re.ErrorCode
		ae.Description = re.ErrorDescription
		if ae.Code == "" && ae.Description == "" {
			ae.Description = errorMessage(re.Body)
		}
		if ae.StatusCode == 0 {
			ae.StatusCode = http.StatusBadRequest // an OAuth error without a response
		}
	} else {
		ae.err = redactedError{msg: redact(err.Error(), secret), cause: err}
	}
	ae.Code = redact(ae.Code, secret)
	ae.Description = redact(truncate(ae.Description, 300), secret)
	return ae
}

// redactedError shows a cleaned message but still unwraps to the cause, so
// that errors.Is(err, context.Canceled) and the like keep working.
type redactedError struct {
	msg   string
	cause error
}

func (e redactedError) Error() string { return e.msg }
func (e redactedError) Unwrap() error { return e.cause }

func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	s = strings.ReplaceAll(s, secret, "[REDACTED]")
	// The secret may also appear form-encoded.
	if esc := url.QueryEscape(secret); esc != secret {
		s = strings.ReplaceAll(s, esc, "[REDACTED]")
	}
	return s
}
