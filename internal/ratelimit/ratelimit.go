// Package ratelimit paces the requests of API clients. A Limiter is shared
// by every client in the process that spends the same server-side quota (one
// Hyperproof organisation, one ServiceNow instance): a token bucket keeps the
// process under a client-side rate, and a "blocked until" time, set from the
// server's own answers (Retry-After, X-RateLimit-Reset, ...), holds all of
// them back once the server has said to stop. Without the sharing, each
// client would find out about a 429 by getting one of its own.
//
// The package knows nothing of HTTP headers or error bodies: each client
// reads its server's answers and calls BlockUntil.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// MaxBlock caps how long one answer can hold every request back. The quota
// windows of the APIs used here are at most an hour; a longer wait is more
// likely a malformed header (a reset time in milliseconds, a clock far off)
// than a real one, and would silently stall every client of the key. Callers
// that are refused longer get another 429 and block again.
const MaxBlock = time.Hour

// ErrNegativeBurst is returned by Settings for a negative burst. Clients
// prefix it with their package name.
var ErrNegativeBurst = errors.New("Burst must not be negative") //nolint:staticcheck // names the Config field

// ErrZeroBurst is returned by Wait when the limiter's burst is 0, so that no
// request could ever be sent (Settings never asks for that).
var ErrZeroBurst = errors.New("the rate limiter refuses every request (burst 0)")

// Limiter paces the requests of every client sharing one key; get it from
// Shared. It is safe for concurrent use.
type Limiter struct {
	bucket *rate.Limiter

	mu           sync.Mutex
	blockedUntil time.Time
}

// registry holds one Limiter per key for the life of the process; there are
// only as many keys as configured servers, so nothing is ever removed.
var registry = struct {
	sync.Mutex
	m map[string]*Limiter
}{m: map[string]*Limiter{}}

// Shared returns the process's Limiter of key, creating it with the given
// rate and burst. When clients of one key ask for different settings, the
// slowest rate and the smallest burst win: the quota is the server's, and the
// most cautious client is the one that knows it best.
//
// Keys of different APIs must not collide; callers prefix theirs with the
// API's name.
func Shared(key string, perSecond rate.Limit, burst int) *Limiter {
	registry.Lock()
	defer registry.Unlock()
	l := registry.m[key]
	if l == nil {
		l = &Limiter{bucket: rate.NewLimiter(perSecond, burst)}
		registry.m[key] = l
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

// Settings turns a client's configured rate and burst into limiter settings.
// perSecond 0 means defRate; a negative perSecond means no pacing (rate.Inf;
// the server's blocks still apply). burst 0 means defBurst, but no more than
// one second's worth of requests (at least 1), so that a slow configured
// rate is not undone by a large default burst; a negative burst is an error
// (ErrNegativeBurst).
func Settings(perSecond float64, burst int, defRate float64, defBurst int) (rate.Limit, int, error) {
	switch {
	case perSecond < 0:
		return rate.Inf, 1, nil
	case perSecond == 0:
		perSecond = defRate
	}
	if burst < 0 {
		return 0, 0, ErrNegativeBurst
	}
	if burst == 0 {
		burst = min(defBurst, max(1, int(perSecond)))
	}
	return rate.Limit(perSecond), burst, nil
}

// URLKey is the canonical spelling of a server URL for a limiter key: scheme
// and host in lower case, the scheme's default port dropped, no trailing
// slash, no query or fragment. Two spellings of one server then share one
// limiter.
func URLKey(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if p := u.Port(); p != "" && !(scheme == "https" && p == "443" || scheme == "http" && p == "80") {
		host = net.JoinHostPort(host, p)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]" // IPv6 literal
	}
	return scheme + "://" + host + strings.TrimRight(u.Path, "/")
}

// Wait returns when a request may be sent: once the server's block has
// passed, then with a token from the bucket. It gives up at once, with a
// *WaitError, when the wait would outlast ctx's deadline (rather than sleep
// only to fail), and when ctx ends meanwhile; the error wraps ctx's error.
func (l *Limiter) Wait(ctx context.Context) error {
	if err := l.waitBlocked(ctx); err != nil {
		return err
	}
	res := l.bucket.Reserve()
	if !res.OK() {
		return ErrZeroBurst
	}
	if err := sleep(ctx, res.Delay(), false); err != nil {
		res.Cancel() // give the token back to the other clients
		return err
	}
	// A block may have been set (a 429 to another client) while this
	// request waited for its token.
	return l.waitBlocked(ctx)
}

func (l *Limiter) waitBlocked(ctx context.Context) error {
	// A loop: the block may be extended while it is waited out.
	for {
		d := time.Until(l.blocked())
		if d <= 0 {
			return nil
		}
		if err := sleep(ctx, d, true); err != nil {
			return err
		}
	}
}

// BlockUntil holds every request of the limiter back until t, capped at
// MaxBlock from now. A later block already in place is kept, so answers that
// arrive out of order cannot shorten it; a t in the past does nothing.
func (l *Limiter) BlockUntil(t time.Time) {
	now := time.Now()
	if !t.After(now) {
		return
	}
	if limit := now.Add(MaxBlock); t.After(limit) {
		t = limit
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.After(l.blockedUntil) {
		l.blockedUntil = t
	}
}

// BlockedUntil is the time until which requests are held back by the
// server's answers; zero when nothing is held back.
func (l *Limiter) BlockedUntil() time.Time {
	t := l.blocked()
	if !t.After(time.Now()) {
		return time.Time{}
	}
	return t
}

func (l *Limiter) blocked() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.blockedUntil
}

// sleep waits d, or fails at once when ctx's deadline comes first, or when
// ctx ends meanwhile.
func sleep(ctx context.Context, d time.Duration, blocked bool) error {
	if d <= 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return &WaitError{Wait: d, Blocked: blocked, Err: context.DeadlineExceeded}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return &WaitError{Wait: d, Blocked: blocked, Err: ctx.Err()}
	}
}

// WaitError is a request that was not sent because waiting for the limiter
// would outlast its context. It unwraps to the context's error, so
// errors.Is(err, context.DeadlineExceeded) holds for a wait that was too
// long for the deadline.
type WaitError struct {
	Wait    time.Duration // how long the request would have had to wait
	Blocked bool          // waiting out the server's block, not the client's rate
	Err     error         // context.DeadlineExceeded or the context's error
}

func (e *WaitError) Error() string {
	why := "the client's request rate"
	if e.Blocked {
		why = "the server's rate limit"
	}
	return fmt.Sprintf("request not sent: waiting %s for %s: %v", e.Wait.Round(time.Millisecond), why, e.Err)
}

func (e *WaitError) Unwrap() error { return e.Err }
