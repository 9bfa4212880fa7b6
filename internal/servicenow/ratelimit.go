package servicenow

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

// Default client-side rate of requests to one instance.
const (
	DefaultRequestsPerSecond = 20
	DefaultBurst             = 20
)

// maxBlock caps how long a server's header can hold every request back
// (ServiceNow's rate-limit windows are one hour).
const maxBlock = time.Hour

// instanceLimiter paces the requests to one instance, for every client of
// that instance in the process: a token bucket, and a time before which
// nothing is sent because the instance said so (Retry-After,
// X-RateLimit-Reset).
type instanceLimiter struct {
	bucket *rate.Limiter

	mu           sync.Mutex
	blockedUntil time.Time
}

// limiters is the process-wide registry, by instance key.
var limiters = struct {
	sync.Mutex
	m map[string]*instanceLimiter
}{m: map[string]*instanceLimiter{}}

// limiterKey identifies an instance: scheme, host (lower case, default port
// dropped) and path.
func limiterKey(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if p := u.Port(); p != "" && !(scheme == "https" && p == "443" || scheme == "http" && p == "80") {
		host = net.JoinHostPort(host, p)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host + strings.TrimRight(u.Path, "/")
}

// sharedLimiter returns the limiter of key, creating it with the given rate
// and burst. When clients of one instance ask for different rates, the
// slowest rate and the smallest burst win.
func sharedLimiter(key string, perSecond rate.Limit, burst int) *instanceLimiter {
	limiters.Lock()
	defer limiters.Unlock()
	l := limiters.m[key]
	if l == nil {
		l = &instanceLimiter{bucket: rate.NewLimiter(perSecond, burst)}
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

// rateSettings turns the Config fields into limiter settings.
func rateSettings(perSecond float64, burst int) (rate.Limit, int, error) {
	switch {
	case perSecond == 0:
		perSecond = DefaultRequestsPerSecond
	case perSecond < 0:
		return rate.Inf, 1, nil
	}
	if burst < 0 {
		return 0, 0, fmt.Errorf("servicenow: Burst must not be negative")
	}
	if burst == 0 {
		// The default burst, but no more than a second's worth.
		burst = min(DefaultBurst, max(1, int(perSecond)))
	}
	return rate.Limit(perSecond), burst, nil
}

// wait blocks until a request may be sent: after any server-imposed block,
// then for a token of the bucket. It gives up at once, with an error that
// wraps context.DeadlineExceeded, when the wait would outlast ctx's
// deadline, and when ctx is cancelled.
func (l *instanceLimiter) wait(ctx context.Context) error {
	if err := l.waitBlocked(ctx); err != nil {
		return err
	}
	res := l.bucket.Reserve()
	if !res.OK() {
		return fmt.Errorf("servicenow: the rate limiter refuses every request (burst 0)")
	}
	if err := sleep(ctx, res.Delay(), "the client's request rate"); err != nil {
		res.Cancel()
		return err
	}
	// A 429 may have arrived while this request waited for its turn.
	return l.waitBlocked(ctx)
}

func (l *instanceLimiter) waitBlocked(ctx context.Context) error {
	for {
		l.mu.Lock()
		d := time.Until(l.blockedUntil)
		l.mu.Unlock()
		if d <= 0 {
			return nil
		}
		if err := sleep(ctx, d, "the instance's rate limit (Retry-After)"); err != nil {
			return err
		}
	}
}

// block holds every request back for d (capped at maxBlock); a longer
// block already in place is kept.
func (l *instanceLimiter) block(d time.Duration) {
	if d <= 0 {
		return
	}
	if d > maxBlock {
		d = maxBlock
	}
	until := time.Now().Add(d)
	l.mu.Lock()
	if until.After(l.blockedUntil) {
		l.blockedUntil = until
	}
	l.mu.Unlock()
}

func (l *instanceLimiter) until() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Now().After(l.blockedUntil) {
		return time.Time{}
	}
	return l.blockedUntil
}

// observe slows the limiter down by the headers of an answer: a 429 (or a
// 503 that says when to come back) blocks for its RetryAfter; any answer
// that reports no requests remaining blocks until X-RateLimit-Reset.
func (l *instanceLimiter) observe(resp *http.Response, apiErr *APIError) {
	if apiErr != nil && apiErr.Retryable() && apiErr.RetryAfter > 0 {
		l.block(apiErr.RetryAfter)
		return
	}
	if d := exhaustedUntil(resp.Header, time.Now()); d > 0 {
		l.block(d)
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

// sleep waits d, or fails at once when ctx's deadline comes first, or when
// ctx is cancelled meanwhile.
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
// limit would outlast its context. It unwraps to the context's error.
type rateWaitError struct {
	wait time.Duration
	why  string
	err  error
}

func (e *rateWaitError) Error() string {
	return fmt.Sprintf("servicenow: request not sent: waiting %s for %s: %v", e.wait.Round(time.Millisecond), e.why, e.err)
}

func (e *rateWaitError) Unwrap() error { return e.err }
