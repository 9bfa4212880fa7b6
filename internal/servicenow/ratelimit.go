package servicenow

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

// Default client-side rate of requests to one instance.
const (
	DefaultRequestsPerSecond = 20
	DefaultBurst             = 20
)

// limiterKey names the quota a client spends: the instance (its URL). The
// prefix keeps it apart from other APIs' keys in the process-wide registry.
func limiterKey(u *url.URL) string {
	return "servicenow " + ratelimit.URLKey(u)
}

// rateSettings turns the Config fields into limiter settings.
func rateSettings(perSecond float64, burst int) (rate.Limit, int, error) {
	r, b, err := ratelimit.Settings(perSecond, burst, DefaultRequestsPerSecond, DefaultBurst)
	if err != nil {
		return 0, 0, fmt.Errorf("servicenow: %w", err)
	}
	return r, b, nil
}

// waitTurn returns when the instance's limiter lets a request go; its error
// (a wait that would outlast ctx) wraps ctx's.
func (c *Client) waitTurn(ctx context.Context) error {
	if err := c.limiter.Wait(ctx); err != nil {
		return fmt.Errorf("servicenow: %w", err)
	}
	return nil
}

// observe slows the instance's limiter down by the headers of an answer: a
// 429 (or a 503 that says when to come back) blocks for its RetryAfter; any
// answer that reports no requests remaining blocks until X-RateLimit-Reset.
func (c *Client) observe(resp *http.Response, apiErr *APIError) {
	now := time.Now()
	if apiErr != nil && apiErr.Retryable() && apiErr.RetryAfter > 0 {
		c.limiter.BlockUntil(now.Add(apiErr.RetryAfter))
		return
	}
	if d := exhaustedUntil(resp.Header, now); d > 0 {
		c.limiter.BlockUntil(now.Add(d))
	}
}

// exhaustedUntil is the wait until X-RateLimit-Reset when
// X-RateLimit-Remaining says nothing is left, else 0.
func exhaustedUntil(h http.Header, now time.Time) time.Duration {
	rem := strings.TrimSpace(h.Get("X-RateLimit-Remaining"))
	if rem == "" {
		return 0
	}
	if n, err := strconv.ParseFloat(rem, 64); err != nil || n > 0 {
		return 0
	}
	epoch, err := strconv.ParseInt(strings.TrimSpace(h.Get("X-RateLimit-Reset")), 10, 64)
	if err != nil {
		return 0
	}
	return time.Unix(epoch, 0).Sub(now)
}
