package hyperproof

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"hpsync/internal/ratelimit"
)

// Default endpoints (US region).
const (
	DefaultAPIURL   = "https://api.hyperproof.app"
	DefaultTokenURL = "https://accounts.hyperproof.app/oauth/token"
)

// maxPages bounds every paginated listing, so that a server that keeps
// answering with a next token cannot loop the client forever.
const maxPages = 10000

// maxJSONBody bounds a JSON answer the client decodes into memory.
const maxJSONBody = 256 << 20

// tokenRequestTimeout bounds a token request when the base client has no
// timeout of its own (token requests do not carry the caller's context).
const tokenRequestTimeout = 30 * time.Second

// Config configures a Client.
type Config struct {
	// APIURL is the API host, e.g. https://api.hyperproof.app; the client
	// adds /v1/... (a trailing /v1 is tolerated). Empty = DefaultAPIURL.
	APIURL string
	// TokenURL is the OAuth2 token endpoint. Empty = DefaultTokenURL.
	TokenURL     string
	ClientID     string
	ClientSecret string
	// HTTPClient supplies the base transport (and timeout, redirect policy)
	// for API and token requests; nil = http.DefaultClient.
	HTTPClient *http.Client
	// TokenRefreshMargin is how long before its expiry an access token is
	// replaced; 0 = the oauth2 library's default (10 s).
	TokenRefreshMargin time.Duration
	// RequestsPerSecond and Burst pace the API requests. Every client with
	// the same APIURL and RateLimitKey in the process shares one limiter
	// (the slowest rate and smallest burst asked for win), which also holds
	// all of them back after a 429 until the API's Retry-After (or
	// X-RateLimit-Reset, or "Try again in N seconds") has passed.
	// 0 = DefaultRequestsPerSecond and DefaultBurst; RequestsPerSecond < 0 =
	// no pacing (the API's waits are still honoured).
	RequestsPerSecond float64
	Burst             int
	// RateLimitKey names the organisation whose quota the client uses, when
	// clients of several organisations share one API URL; "" = the API URL
	// alone.
	RateLimitKey string
}

// Client calls the Hyperproof REST API with an OAuth2 client-credentials
// token. It is safe for concurrent use. It paces its requests with a limiter
// shared by every client of the organisation, which also waits out the
// API's Retry-After. It does not retry, with one exception: a 401 replaces
// the token (one token request for all concurrent 401s) and repeats the
// request once, unless its body was streamed. Every other non-2xx answer is
// returned as an *APIError (see Retryable and RetryAfter), token failures as
// an *AuthError.
type Client struct {
	base     *url.URL
	http     *http.Client
	clientID string
	secret   string
	tokens   *tokenSwitch
	limiter  *ratelimit.Limiter
}

// New returns a Client. It does not contact Hyperproof; call Me to check the
// credentials.
func New(cfg Config) (*Client, error) {
	if strings.TrimSpace(cfg.ClientID) == "" {
		return nil, errors.New("hyperproof: ClientID is required")
	}
	if cfg.ClientSecret == "" {
		return nil, errors.New("hyperproof: ClientSecret is required")
	}
	apiURL := cfg.APIURL
	if apiURL == "" {
		apiURL = DefaultAPIURL
	}
	base, err := parseHTTPURL("APIURL", apiURL)
	if err != nil {
		return nil, err
	}
	base.Path = strings.TrimSuffix(strings.TrimRight(base.Path, "/"), "/v1")
	base.RawPath = ""
	base.RawQuery, base.Fragment = "", ""
	tokenURL := cfg.TokenURL
	if tokenURL == "" {
		tokenURL = DefaultTokenURL
	}
	if _, err := parseHTTPURL("TokenURL", tokenURL); err != nil {
		return nil, err
	}
	if cfg.TokenRefreshMargin < 0 {
		return nil, errors.New("hyperproof: TokenRefreshMargin must not be negative")
	}
	perSecond, burst, err := rateSettings(cfg.RequestsPerSecond, cfg.Burst)
	if err != nil {
		return nil, err
	}

	hc := cfg.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	baseTransport := hc.Transport
	if baseTransport == nil {
		baseTransport = http.DefaultTransport
	}
	tokenHTTP := &http.Client{Transport: baseTransport, CheckRedirect: hc.CheckRedirect, Timeout: hc.Timeout}
	if tokenHTTP.Timeout == 0 {
		tokenHTTP.Timeout = tokenRequestTimeout
	}
	cc := &clientcredentials.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		TokenURL:     tokenURL,
		// Hyperproof documents the credentials in the form body.
		AuthStyle: oauth2.AuthStyleInParams,
	}
	tokenCtx := context.WithValue(context.Background(), oauth2.HTTPClient, tokenHTTP)
	sw := &tokenSwitch{newSource: func() oauth2.TokenSource {
		// clientcredentials caches the token and, with an explicit
		// margin, refreshes it that long before it expires.
		ts := cc.TokenSource(tokenCtx)
		if cfg.TokenRefreshMargin > 0 {
			ts = oauth2.ReuseTokenSourceWithExpiry(nil, ts, cfg.TokenRefreshMargin)
		}
		return ts
	}}
	sw.cur.Store(&tokenGen{src: sw.newSource()})

	c := &Client{
		base:     base,
		clientID: cfg.ClientID,
		secret:   cfg.ClientSecret,
		tokens:   sw,
		limiter:  ratelimit.Shared(limiterKey(base, cfg.RateLimitKey), perSecond, burst),
		// The bearer header is set per request (do), so that a 401 can be
		// tied to the token that got it.
		http: &http.Client{
			Transport:     baseTransport,
			CheckRedirect: hc.CheckRedirect,
			Jar:           hc.Jar,
			Timeout:       hc.Timeout,
		},
	}
	return c, nil
}

// BlockedUntil is the time until which every request of the client's
// organisation waits because the API asked for it (429 Retry-After,
// X-RateLimit-Reset, "Try again in N seconds"); zero when nothing is held
// back.
func (c *Client) BlockedUntil() time.Time { return c.limiter.BlockedUntil() }

func parseHTTPURL(name, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("hyperproof: %s %q is not an http(s) URL", name, raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("hyperproof: %s must not carry credentials", name)
	}
	return u, nil
}

// tokenSwitch hands out access tokens from the oauth2 library's caching
// source and replaces that source when the API refuses its token (401), so
// that the next token is fetched anew. Each source is a generation: of the
// requests refused with a token of one generation only the first replaces
// it, and the library's source fetches once for all its callers, so
// concurrent 401s cause a single token request.
type tokenSwitch struct {
	newSource func() oauth2.TokenSource
	mu        sync.Mutex // serialises replacements
	cur       atomic.Pointer[tokenGen]
}

type tokenGen struct {
	src oauth2.TokenSource
	gen uint64
}

// token returns a valid token and the generation it belongs to.
func (s *tokenSwitch) token() (*oauth2.Token, uint64, error) {
	g := s.cur.Load()
	t, err := g.src.Token()
	return t, g.gen, err
}

// refused replaces the source of generation gen, unless that was done
// already.
func (s *tokenSwitch) refused(gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.cur.Load(); g.gen == gen {
		s.cur.Store(&tokenGen{src: s.newSource(), gen: gen + 1})
	}
}

// request describes one API call.
type request struct {
	method      string
	path        string // starting with /v1/
	query       url.Values
	payload     []byte    // a body that can be sent again (JSON)
	body        io.Reader // a streamed body, sent once; nil = payload
	contentType string
	accept      string
}

// do sends the request when the organisation's limiter lets it and returns
// the 2xx response (caller closes the body); everything else becomes an
// error. A 401 (token revoked, or expired early) replaces the token and,
// for a request whose body can be sent again, repeats it once with a fresh
// token; a streamed body is not repeated (the caller streams it again).
func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	// r.path is built from escaped segments (pathID).
	target := strings.TrimRight(c.base.String(), "/") + r.path
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}
	replayable := r.body == nil
	for attempt := 1; ; attempt++ {
		if err := c.waitTurn(ctx); err != nil {
			return nil, err
		}
		tok, gen, err := c.tokens.token()
		if err != nil {
			return nil, newAuthError(err, c.clientID, c.secret)
		}
		body := r.body
		if replayable && r.payload != nil {
			body = bytes.NewReader(r.payload)
		}
		req, err := http.NewRequestWithContext(ctx, r.method, target, body)
		if err != nil {
			return nil, fmt.Errorf("hyperproof: %s %s: %w", r.method, r.path, err)
		}
		accept := r.accept
		if accept == "" {
			accept = "application/json"
		}
		req.Header.Set("Accept", accept)
		req.Header.Set("User-Agent", "hpsync")
		if r.contentType != "" {
			req.Header.Set("Content-Type", r.contentType)
		}
		tok.SetAuthHeader(req)
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, redactedError{msg: redact(fmt.Sprintf("hyperproof: %s %s: %v", r.method, r.path, unwrapURLError(err)), c.secret), cause: err}
		}
		if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
			c.observe(resp.Header, nil)
			return resp, nil
		}
		apiErr := newAPIError(resp)
		apiErr.Message = redact(apiErr.Message, c.secret)
		c.observe(resp.Header, apiErr)
		if resp.StatusCode == http.StatusUnauthorized {
			// The token was refused before it expired (revoked, or the
			// server's clock differs): drop it, and try once more with a
			// new one.
			c.tokens.refused(gen)
			if attempt == 1 && replayable {
				continue
			}
		}
		return nil, apiErr
	}
}

// unwrapURLError drops the *url.Error wrapper (its text repeats the URL).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// doJSON sends in (if not nil) as JSON and decodes a 2xx answer into out (if
// not nil). It reports whether the answer had a body.
func (c *Client) doJSON(ctx context.Context, method, path string, query url.Values, in, out any) (bool, error) {
	r := request{method: method, path: path, query: query}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return false, fmt.Errorf("hyperproof: encode %s %s: %w", method, path, err)
		}
		r.payload = b
		r.contentType = "application/json"
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	return decodeBody(resp, method, path, out)
}

func decodeBody(resp *http.Response, method, path string, out any) (bool, error) {
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxJSONBody+1))
	if err != nil {
		return false, fmt.Errorf("hyperproof: %s %s: reading answer: %w", method, path, err)
	}
	if len(raw) > maxJSONBody {
		return false, fmt.Errorf("hyperproof: %s %s: answer larger than %d bytes", method, path, maxJSONBody)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return false, nil
	}
	if out == nil {
		return true, nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return true, fmt.Errorf("hyperproof: %s %s: decoding answer: %w", method, path, err)
	}
	return true, nil
}

// page is one answer of a listing: a bare array, or {data, nextToken}.
type page struct {
	items     []json.RawMessage
	nextToken string
}

func (p *page) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		return nil
	case len(b) > 0 && b[0] == '[':
		return json.Unmarshal(b, &p.items)
	case len(b) > 0 && b[0] == '{':
		var obj struct {
			Data      []json.RawMessage `json:"data"`
			Items     []json.RawMessage `json:"items"`
			NextToken *string           `json:"nextToken"`
		}
		if err := json.Unmarshal(b, &obj); err != nil {
			return err
		}
		p.items = obj.Data
		if p.items == nil {
			p.items = obj.Items
		}
		if obj.NextToken != nil {
			p.nextToken = *obj.NextToken
		}
		return nil
	default:
		return fmt.Errorf("expected a JSON array or a {data, nextToken} object")
	}
}

// listAll follows nextToken until the last page and decodes every item with
// decode. body, when not nil, builds the JSON body for a page (PUT filters);
// the token is then sent both in the body (by body) and as a query parameter.
func (c *Client) listAll(ctx context.Context, method, path string, query url.Values, body func(nextToken string) any, decode func(json.RawMessage) error) error {
	seen := map[string]bool{}
	next := ""
	for i := 0; i < maxPages; i++ {
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		if next != "" {
			q.Set("nextToken", next)
		}
		var in any
		if body != nil {
			in = body(next)
		}
		var p page
		if _, err := c.doJSON(ctx, method, path, q, in, &p); err != nil {
			return err
		}
		for _, item := range p.items {
			if err := decode(item); err != nil {
				return fmt.Errorf("hyperproof: %s %s: decoding item: %w", method, path, err)
			}
		}
		if p.nextToken == "" {
			return nil
		}
		if seen[p.nextToken] {
			return fmt.Errorf("hyperproof: %s %s: the server repeated page token %q", method, path, truncate(p.nextToken, 40))
		}
		seen[p.nextToken] = true
		next = p.nextToken
	}
	return fmt.Errorf("hyperproof: %s %s: more than %d pages", method, path, maxPages)
}

// pathID escapes one path segment and refuses empty ids, which would change
// the meaning of the path.
func pathID(what, id string) (string, error) {
	if strings.TrimSpace(id) == "" {
		return "", fmt.Errorf("hyperproof: empty %s id", what)
	}
	return url.PathEscape(id), nil
}
