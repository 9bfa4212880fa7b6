package servicenow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"hpsync/internal/ratelimit"
)

// pageSize is the sysparm_limit the client asks for on every list call; the
// instance may cap it lower, and the client follows Link rel="next" anyway.
const pageSize = 1000

// Limits on how much of a response the client reads into memory.
const (
	maxJSONBody  = 64 << 20
	maxErrorBody = 64 << 10
)

// Config configures a Client.
type Config struct {
	// InstanceURL is the instance's base URL, e.g.
	// "https://example.service-now.com" (no credentials, query or fragment).
	InstanceURL string
	Username    string
	Password    string
	// HTTPClient is used for every call; nil = a client with connect, TLS
	// and response-header timeouts but no overall timeout, so that large
	// downloads and uploads are bounded only by the caller's context.
	HTTPClient *http.Client
	// RequestsPerSecond and Burst pace the requests to the instance. Every
	// client of the same instance in the process shares one limiter (the
	// slowest rate and smallest burst asked for win), which also holds all
	// of them back after a 429 until the instance's Retry-After (or
	// X-RateLimit-Reset) has passed. 0 = DefaultRequestsPerSecond and
	// DefaultBurst; RequestsPerSecond < 0 = no pacing (the server's
	// Retry-After is still honoured).
	RequestsPerSecond float64
	Burst             int
}

// Client calls the ServiceNow Table and Attachment APIs with basic auth. It
// is safe for concurrent use. It paces its requests with a limiter shared by
// every client of the instance, which also holds all of them back after a
// 429 until the instance's Retry-After. It never retries: callers (Temporal
// activities) own the retry policy and can use APIError.Retryable and
// APIError.RetryAfter.
type Client struct {
	base     *url.URL
	username string
	password string
	hc       *http.Client
	limiter  *ratelimit.Limiter
}

// New validates cfg and returns a client.
func New(cfg Config) (*Client, error) {
	raw := strings.TrimSpace(cfg.InstanceURL)
	if raw == "" {
		return nil, errors.New("servicenow: instance URL is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// The parse error quotes the input, which could hold credentials.
		return nil, errors.New("servicenow: instance URL is not a valid URL")
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, errors.New("servicenow: instance URL must start with https:// (or http:// for a local sandbox)")
	case u.Host == "" || u.Hostname() == "":
		return nil, errors.New("servicenow: instance URL has no host")
	case u.User != nil:
		return nil, errors.New("servicenow: instance URL must not contain credentials; use Username and Password")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, errors.New("servicenow: instance URL must not have a query or fragment")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	if cfg.Username == "" {
		return nil, errors.New("servicenow: username is required")
	}
	if cfg.Password == "" {
		return nil, errors.New("servicenow: password is required")
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = defaultHTTPClient()
	}
	perSecond, burst, err := rateSettings(cfg.RequestsPerSecond, cfg.Burst)
	if err != nil {
		return nil, err
	}
	return &Client{
		base: u, username: cfg.Username, password: cfg.Password, hc: hc,
		limiter: ratelimit.Shared(limiterKey(u), perSecond, burst),
	}, nil
}

// BlockedUntil is the time until which every request to the instance waits
// because the instance asked for it (429 Retry-After, X-RateLimit-Reset);
// zero when nothing is held back.
func (c *Client) BlockedUntil() time.Time { return c.limiter.BlockedUntil() }

func defaultHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 15 * time.Second
	tr.ResponseHeaderTimeout = 2 * time.Minute
	tr.ExpectContinueTimeout = time.Second
	tr.IdleConnTimeout = 90 * time.Second
	tr.MaxIdleConnsPerHost = 8
	// No Client.Timeout: it would cut off long downloads mid-body.
	return &http.Client{Transport: tr}
}

// ---------------------------------------------------------------------------
// Requests

// endpoint builds an absolute URL for an API path ("/api/now/...") and query.
func (c *Client) endpoint(path string, q url.Values) string {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawPath = ""
	u.RawQuery = encodeQuery(q)
	return u.String()
}

// encodeQuery encodes with %20 for spaces (date literals contain one).
func encodeQuery(q url.Values) string {
	return strings.ReplaceAll(q.Encode(), "+", "%20")
}

// readValues are the parameters every record read sends: raw values and
// bare sys_ids for references.
func readValues(fields string) url.Values {
	q := url.Values{}
	q.Set("sysparm_display_value", "false")
	q.Set("sysparm_exclude_reference_link", "true")
	if fields != "" {
		q.Set("sysparm_fields", fields)
	}
	return q
}

// do sends one request, when the instance's limiter lets it. A non-2xx
// answer is returned as *APIError with the body consumed; on success the
// caller owns resp.Body. A 429 (or an answer with no requests remaining)
// holds back every client of the instance for the time it names.
func (c *Client) do(ctx context.Context, method, rawURL string, body io.Reader, header http.Header) (*http.Response, error) {
	if err := c.waitTurn(ctx); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return nil, fmt.Errorf("servicenow: %s: %w", method, err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	req.SetBasicAuth(c.username, c.password)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(method, req.URL, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		apiErr := c.apiError(resp)
		c.observe(resp, apiErr)
		return nil, apiErr
	}
	c.observe(resp, nil)
	return resp, nil
}

func (c *Client) transportError(method string, u *url.URL, err error) error {
	// Report the path only: the error chain already carries the cause, and
	// the instance host is in the configuration.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := c.redact(err.Error())
	return &transportErr{op: method + " " + u.Path, msg: msg, err: err}
}

// transportErr is a network-level failure (no HTTP answer). It keeps the
// cause for errors.Is/As (context.Canceled, net.Error timeouts).
type transportErr struct {
	op, msg string
	err     error
}

func (e *transportErr) Error() string { return "servicenow: " + e.op + ": " + e.msg }
func (e *transportErr) Unwrap() error { return e.err }

func (c *Client) redact(s string) string {
	if c.password != "" {
		s = strings.ReplaceAll(s, c.password, "[redacted]")
	}
	return s
}

// readBody reads a success body (bounded). Whitespace-only counts as empty.
func readBody(resp *http.Response) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJSONBody+1))
	if err != nil {
		return nil, fmt.Errorf("servicenow: %s %s: reading response: %w", resp.Request.Method, resp.Request.URL.Path, err)
	}
	if len(data) > maxJSONBody {
		return nil, fmt.Errorf("servicenow: %s %s: response larger than %d bytes", resp.Request.Method, resp.Request.URL.Path, maxJSONBody)
	}
	return bytes.TrimSpace(data), nil
}

// decodeResult unwraps {"result": ...}. A body that is not JSON (for example
// the HTML page of a hibernating instance, served with 200) is an error that
// quotes the start of the page.
func decodeResult(resp *http.Response, data []byte) (json.RawMessage, error) {
	var env struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("servicenow: %s %s: HTTP %d: response is not JSON (Content-Type %q): %s",
			resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, resp.Header.Get("Content-Type"), snippet(data))
	}
	if len(env.Result) == 0 || string(env.Result) == "null" {
		return nil, fmt.Errorf("servicenow: %s %s: HTTP %d: response has no \"result\"", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode)
	}
	return env.Result, nil
}

// getObject GETs a single-record endpoint and returns the result object.
func (c *Client) getObject(ctx context.Context, rawURL string) (rawRecord, error) {
	resp, err := c.do(ctx, http.MethodGet, rawURL, nil, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := readBody(resp)
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("servicenow: GET %s: HTTP %d with an empty body", resp.Request.URL.Path, resp.StatusCode)
	}
	res, err := decodeResult(resp, data)
	if err != nil {
		return nil, err
	}
	return decodeObject(resp, res)
}

func decodeObject(resp *http.Response, res json.RawMessage) (rawRecord, error) {
	var rec rawRecord
	if err := json.Unmarshal(res, &rec); err != nil {
		return nil, fmt.Errorf("servicenow: %s %s: result is not an object: %s", resp.Request.Method, resp.Request.URL.Path, snippet(res))
	}
	return rec, nil
}

// sendJSON sends a JSON body and returns the result object, or nil when the
// answer had an empty body (201/200 with nothing). The response headers are
// returned for Location.
func (c *Client) sendJSON(ctx context.Context, method, rawURL string, body any) (rawRecord, http.Header, error) {
	payload, err := json.Marshal(body)
	if err != nil {
		return nil, nil, fmt.Errorf("servicenow: encoding request: %w", err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	resp, err := c.do(ctx, method, rawURL, bytes.NewReader(payload), h)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := readBody(resp)
	if err != nil {
		return nil, nil, err
	}
	if len(data) == 0 {
		return nil, resp.Header, nil
	}
	res, err := decodeResult(resp, data)
	if err != nil {
		return nil, nil, err
	}
	rec, err := decodeObject(resp, res)
	return rec, resp.Header, err
}

// list GETs path with q and every following page (Link rel="next"), calling
// fn for each record.
func (c *Client) list(ctx context.Context, path string, q url.Values, fn func(rawRecord) error) error {
	next := c.endpoint(path, q)
	seen := map[string]bool{}
	for next != "" {
		if seen[next] {
			return fmt.Errorf("servicenow: GET %s: pagination loop: the next page is a page already read", path)
		}
		seen[next] = true
		resp, err := c.do(ctx, http.MethodGet, next, nil, nil)
		if err != nil {
			return err
		}
		data, err := readBody(resp)
		resp.Body.Close()
		if err != nil {
			return err
		}
		res, err := decodeResult(resp, data)
		if err != nil {
			return err
		}
		var rows []rawRecord
		if err := json.Unmarshal(res, &rows); err != nil {
			return fmt.Errorf("servicenow: GET %s: result is not a list: %s", path, snippet(res))
		}
		for _, r := range rows {
			if err := fn(r); err != nil {
				return err
			}
		}
		next, err = c.nextLink(resp)
		if err != nil {
			return err
		}
	}
	return nil
}

// nextLink returns the absolute URL of Link rel="next", or "". Links may be
// absolute (on the instance host, or on another name for it behind a proxy)
// or relative; the client only ever sends its credentials to the configured
// instance, so it keeps the link's path and query and uses its own scheme
// and host.
func (c *Client) nextLink(resp *http.Response) (string, error) {
	for _, l := range parseLinks(resp.Header.Values("Link")) {
		if !hasRel(l.rel, "next") {
			continue
		}
		u, err := resp.Request.URL.Parse(l.url)
		if err != nil {
			return "", fmt.Errorf("servicenow: GET %s: invalid next link", resp.Request.URL.Path)
		}
		u.Scheme, u.Host, u.User, u.Fragment = c.base.Scheme, c.base.Host, nil, ""
		return u.String(), nil
	}
	return "", nil
}

type link struct{ url, rel string }

// parseLinks parses RFC 8288 Link values: <url>;param=value,... . It scans
// for <...> so that commas inside a URL do not split it.
func parseLinks(values []string) []link {
	var out []link
	for _, v := range values {
		for {
			start := strings.IndexByte(v, '<')
			if start < 0 {
				break
			}
			end := strings.IndexByte(v[start:], '>')
			if end < 0 {
				break
			}
			end += start
			l := link{url: strings.TrimSpace(v[start+1 : end])}
			v = v[end+1:]
			params := v
			if n := strings.IndexByte(v, '<'); n >= 0 {
				params = v[:n]
			}
			for _, p := range strings.Split(params, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "rel") {
					l.rel = strings.Trim(strings.TrimSpace(strings.TrimRight(strings.TrimSpace(val), ",")), `"`)
				}
			}
			out = append(out, l)
		}
	}
	return out
}

func hasRel(rel, want string) bool {
	for _, r := range strings.Fields(rel) {
		if strings.EqualFold(r, want) {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// Errors

// apiError decodes a non-2xx answer. The envelope is
// {"error":{"message","detail"},"status":"failure"} with the keys in either
// order and detail possibly null; other shapes ({"error":"...",
// "error_description":"..."}, {"message":"..."}) and non-JSON bodies still
// give a useful message.
func (c *Client) apiError(resp *http.Response) *APIError {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	data = bytes.TrimSpace(data)
	e := &APIError{StatusCode: resp.StatusCode}

	var env map[string]json.RawMessage
	if json.Unmarshal(data, &env) == nil {
		if raw, ok := env["error"]; ok {
			var obj map[string]json.RawMessage
			if json.Unmarshal(raw, &obj) == nil {
				e.Message = jsonText(obj["message"])
				e.Detail = jsonText(obj["detail"])
			} else {
				e.Message = jsonText(raw)
				e.Detail = jsonText(env["error_description"])
			}
		}
		if e.Message == "" {
			e.Message = jsonText(env["message"])
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
		if e.Message == "" {
			e.Message = "HTTP " + strconv.Itoa(resp.StatusCode)
		}
		if len(data) > 0 {
			e.Message += ": " + snippet(data)
		}
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		e.RetryAfter = retryAfter(resp.Header, time.Now())
	}
	e.Message = c.redact(e.Message)
	e.Detail = c.redact(e.Detail)
	return e
}

// jsonText renders a JSON value as text: strings as themselves, null as "",
// anything else compactly.
func jsonText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	if string(raw) == "null" {
		return ""
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) == nil {
		return b.String()
	}
	return string(raw)
}

// retryAfter reads Retry-After (seconds or HTTP date), else
// X-RateLimit-Reset (UNIX epoch seconds).
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
			if secs > 0 {
				return time.Duration(secs) * time.Second
			}
			return 0
		}
		if t, err := http.ParseTime(v); err == nil {
			if d := t.Sub(now); d > 0 {
				return d.Round(time.Second)
			}
			return 0
		}
	}
	if v := strings.TrimSpace(h.Get("X-RateLimit-Reset")); v != "" {
		if epoch, err := strconv.ParseInt(v, 10, 64); err == nil {
			if d := time.Unix(epoch, 0).Sub(now); d > 0 {
				return d.Round(time.Second)
			}
		}
	}
	return 0
}

var (
	htmlTitle  = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)
	htmlTag    = regexp.MustCompile(`(?s)<[^>]*>`)
	whitespace = regexp.MustCompile(`\s+`)
)

// snippet is a short one-line excerpt of a body for error messages; for an
// HTML page it prefers the title.
func snippet(data []byte) string {
	s := string(data)
	if m := htmlTitle.FindStringSubmatch(s); m != nil && strings.TrimSpace(m[1]) != "" {
		s = m[1]
	} else if strings.Contains(s, "<") {
		s = htmlTag.ReplaceAllString(s, " ")
	}
	s = strings.TrimSpace(whitespace.ReplaceAllString(s, " "))
	const limit = 200
	if len(s) > limit {
		cut := limit
		for cut > 0 && !isRuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
