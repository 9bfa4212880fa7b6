package hyperproof

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Default client-side rate of requests to one organisation's API.
const (
	DefaultRequestsPerSecond = 10
	DefaultBurst             = 10
)

// maxBlock caps how long one answer's headers can hold every request back.
const maxBlock = time.Hour

// orgLimiter paces the requests of every client of one organisation (API
// URL and RateLimitKey) in the process: a token bucket, plus a time before
// which nothing is sent because the API said so (Retry-After,
// X-RateLimit-Reset, "Try again in N seconds").
type orgLimiter struct {
	bucket *rate.Limiter

	mu           sync.Mutex
	blockedUntil time.Time
}

var limiters = struct {
	sync.Mutex
	m map[string]*orgLimiter
}{m: map[string]*orgLimiter{}}

// limiterKey is the API URL (scheme, lower-case host, port unless the
// default, path) and the configured key.
func limiterKey(u *url.URL, key string) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if p := u.Port(); p != "" && !(scheme == "https" && p == "443" || scheme == "http" && p == "80") {
		host = net.JoinHostPort(host, p)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host + strings.TrimRight(u.Path, "/") + "#" + key
}

// sharedLimiter returns the limiter of key, creating it with the given rate
// and burst; when clients ask for different rates the slowest rate and the
// smallest burst win.
func sharedLimiter(key string, perSecond rate.Limit, burst int) *orgLimiter {
	limiters.Lock()
	defer limiters.Unlock()
	l, ok := limiters.m[key]
	if !ok {
		l = &orgLimiter{bucket: rate.NewLimiter(perSecond, burst)}
		limiters.m[key] = l
		return l
	}
	if perSecond < l.bucket.Limit() {
		l.bucket.SetLimit(perSecond)
	}
	if burst < l.bucket.Burst() {
		l.bucket.SetBurst(burst)
	}
	return l
}

func rateSettings(perSecond float64, burst int) (rate.Limit, int, error) {
	if perSecond < 0 {
		return rate.Inf, 1, nil
	}
	if perSecond == 0 {
		perSecond = DefaultRequestsPerSecond
	}
	if burst < 0 {
		return 0, 0, fmt.Errorf("hyperproof: Burst must not be negative")
	}
	if burst == 0 {
		burst = min(DefaultBurst, max(1, int(perSecond)))
	}
	return rate.Limit(perSecond), burst, nil
}

// wait returns when a request may go: after the API's block, then with a
// token from the bucket. It fails at once when the wait would outlast ctx's
// deadline, and when ctx ends meanwhile (the error wraps ctx's).
func (l *orgLimiter) wait(ctx context.Context) error {
	if err := l.waitBlocked(ctx); err != nil {
		return err
	}
	res := l.bucket.Reserve()
	if !res.OK() {
		return fmt.Errorf("hyperproof: the rate limiter refuses every request (burst 0)")
	}
	if err := sleep(ctx, res.Delay(), "the client's request rate"); err != nil {
		res.Cancel()
		return err
	}
	return l.waitBlocked(ctx) // a 429 may have come in meanwhile
}

func (l *orgLimiter) waitBlocked(ctx context.Context) error {
	for {
		l.mu.Lock()
		d := time.Until(l.blockedUntil)
		l.mu.Unlock()
		if d <= 0 {
			return nil
		}
		if err := sleep(ctx, d, "the API's rate limit"); err != nil {
			return err
		}
	}
}

func (l *orgLimiter) block(d time.Duration) {
	if d <= 0 {
		return
	}
	until := time.Now().Add(min(d, maxBlock))
	l.mu.Lock()
	defer l.mu.Unlock()
	if until.After(l.blockedUntil) {
		l.blockedUntil = until
	}
}

func (l *orgLimiter) until() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.blockedUntil.After(time.Now()) {
		return time.Time{}
	}
	return l.blockedUntil
}

// observe slows the limiter down by an answer: an error that says when to
// come back (429, quota 403, 503 with Retry-After) blocks for that long, and
// any answer with X-RateLimit-Remaining 0 blocks until X-RateLimit-Reset.
func (l *orgLimiter) observe(h http.Header, apiErr *APIError) {
	if apiErr != nil && apiErr.Retryable() && apiErr.RetryAfter > 0 {
		l.block(apiErr.RetryAfter)
		return
	}
	rem := strings.TrimSpace(h.Get("X-RateLimit-Remaining"))
	if n, err := strconv.ParseFloat(rem, 64); rem == "" || err != nil || n > 0 {
		return
	}
	// retryAfter reads Reset (epoch, or seconds when small) once nothing
	// remains; the Retry-After header and the message are absent here.
	l.block(retryAfter(http.Header{
		"X-Ratelimit-Remaining": {rem},
		"X-Ratelimit-Reset":     {h.Get("X-RateLimit-Reset")},
	}, "", time.Now()))
}

func sleep(ctx context.Context, d time.Duration, why string) error {
	if d <= 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return &rateWaitError{wait: d, why: why, err: context.DeadlineExceeded}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return &rateWaitError{wait: d, why: why, err: ctx.Err()}
	}
}

// rateWaitError is a request that was not sent because waiting for the rate
// limit would outlast its context; it unwraps to the context's error.
type rateWaitError struct {
	wait time.Duration
	why  string
	err  error
}

func (e *rateWaitError) Error() string {
	return fmt.Sprintf("hyperproof: request not sent: waiting %s for %s: %v", e.wait.Round(time.Millisecond), e.why, e.err)
}

func (e *rateWaitError) Unwrap() error { return e.err }
