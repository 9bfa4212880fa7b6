package hyperproof

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"hpsync/internal/ratelimit"
)

// Default client-side rate of requests to one organisation's API.
const (
	DefaultRequestsPerSecond = 10
	DefaultBurst             = 10
)

// limiterKey names the quota a client spends: the API URL and the configured
// RateLimitKey (the organisation). The prefix keeps it apart from other
// APIs' keys in the process-wide registry.
func limiterKey(u *url.URL, key string) string {
	return "hyperproof " + ratelimit.URLKey(u) + "#" + key
}

// rateSettings turns the Config fields into limiter settings.
func rateSettings(perSecond float64, burst int) (rate.Limit, int, error) {
	r, b, err := ratelimit.Settings(perSecond, burst, DefaultRequestsPerSecond, DefaultBurst)
	if err != nil {
		return 0, 0, fmt.Errorf("hyperproof: %w", err)
	}
	return r, b, nil
}

// waitTurn returns when the organisation's limiter lets a request go; its
// error (a wait that would outlast ctx) wraps ctx's.
func (c *Client) waitTurn(ctx context.Context) error {
	if err := c.limiter.Wait(ctx); err != nil {
		return fmt.Errorf("hyperproof: %w", err)
	}
	return nil
}

// observe slows the organisation's limiter down by an answer: an error that
// says when to come back (429, quota 403, 503 with Retry-After) blocks for
// that long, and any answer with X-RateLimit-Remaining 0 blocks until
// X-RateLimit-Reset.
func (c *Client) observe(h http.Header, apiErr *APIError) {
	now := time.Now()
	if apiErr != nil && apiErr.Retryable() && apiErr.RetryAfter > 0 {
		c.limiter.BlockUntil(now.Add(apiErr.RetryAfter))
		return
	}
	rem := strings.TrimSpace(h.Get("X-RateLimit-Remaining"))
	if n, err := strconv.ParseFloat(rem, 64); rem == "" || err != nil || n > 0 {
		return
	}
	// retryAfter reads Reset (epoch, or seconds when small) once nothing
	// remains; the Retry-After header and the message are absent here.
	d := retryAfter(http.Header{
		"X-Ratelimit-Remaining": {rem},
		"X-Ratelimit-Reset":     {h.Get("X-RateLimit-Reset")},
	}, "", now)
	if d > 0 {
		c.limiter.BlockUntil(now.Add(d))
	}
}
