package ratelimit

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// The registry is process-wide: every test uses keys of its own (t.Name()).

func TestSettings(t *testing.T) {
	cases := []struct {
		name      string
		perSecond float64
		burst     int
		wantRate  rate.Limit
		wantBurst int
	}{
		{"defaults", 0, 0, 10, 5},
		{"burst defaults to a second's worth", 2, 0, 2, 2},
		{"slow rate, burst at least 1", 0.2, 0, 0.2, 1},
		{"fast rate, burst the default", 100, 0, 100, 5},
		{"explicit burst", 3, 7, 3, 7},
		{"default rate, explicit burst", 0, 2, 10, 2},
		{"no pacing", -1, 0, rate.Inf, 1},
		{"no pacing ignores a negative burst", -1, -3, rate.Inf, 1},
	}
	for _, tc := range cases {
		r, b, err := Settings(tc.perSecond, tc.burst, 10, 5)
		if err != nil || r != tc.wantRate || b != tc.wantBurst {
			t.Errorf("%s: Settings(%v, %d) = %v, %d, %v; want %v, %d", tc.name, tc.perSecond, tc.burst, r, b, err, tc.wantRate, tc.wantBurst)
		}
	}
	if _, _, err := Settings(5, -1, 10, 5); !errors.Is(err, ErrNegativeBurst) {
		t.Errorf("negative burst: %v", err)
	}
}

func TestURLKey(t *testing.T) {
	key := func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return URLKey(u)
	}
	same := []string{"https://example.com/api", "HTTPS://Example.COM:443/api/", "https://example.com/api//"}
	for _, raw := range same[1:] {
		if key(raw) != key(same[0]) {
			t.Errorf("%q = %q, want %q", raw, key(raw), key(same[0]))
		}
	}
	for _, raw := range []string{"http://example.com/api", "https://example.com:8443/api", "https://example.com/other", "https://other.example.com/api"} {
		if key(raw) == key(same[0]) {
			t.Errorf("%q shares the key of %q", raw, same[0])
		}
	}
	if got := key("http://[::1]:80/x"); got != "http://[::1]/x" {
		t.Errorf("IPv6, default port: %q", got)
	}
	if got := key("http://[::1]:8080"); got != "http://[::1]:8080" {
		t.Errorf("IPv6 with port: %q", got)
	}
}

func TestSharedIsPerKeyAndTheSlowestWins(t *testing.T) {
	a := Shared(t.Name(), 10, 5)
	b := Shared(t.Name(), 20, 2) // faster rate, smaller burst
	c := Shared(t.Name(), 4, 8)  // slower rate, larger burst
	if a != b || a != c {
		t.Fatal("one key, several limiters")
	}
	if got, burst := a.bucket.Limit(), a.bucket.Burst(); got != 4 || burst != 2 {
		t.Fatalf("rate %v burst %d, want 4 and 2", got, burst)
	}
	if Shared(t.Name()+"/other", 10, 5) == a {
		t.Fatal("two keys share a limiter")
	}
}

func TestWaitPaces(t *testing.T) {
	l := Shared(t.Name(), 20, 2)
	start := time.Now()
	for range 6 {
		if err := l.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// The burst of 2, then 4 more at 20/s: at least 0.2 s.
	if d := time.Since(start); d < 180*time.Millisecond {
		t.Fatalf("6 waits at 20/s burst 2 took %s", d)
	}
	if err := Shared(t.Name()+"/zero", 1, 0).Wait(context.Background()); !errors.Is(err, ErrZeroBurst) {
		t.Fatalf("burst 0: %v", err)
	}
}

func TestWaitTooLongForTheDeadlineFailsAtOnceAndKeepsTheToken(t *testing.T) {
	l := Shared(t.Name(), 2, 1)
	if err := l.Wait(context.Background()); err != nil { // the burst
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := l.Wait(short)
	var we *WaitError
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &we) || we.Blocked || we.Wait < 300*time.Millisecond {
		t.Fatalf("short deadline: %v (%+v)", err, we)
	}
	if time.Since(start) > 50*time.Millisecond {
		t.Fatalf("the failing wait took %s", time.Since(start))
	}
	// The refused wait gave its token back: the next one is due 0.5 s
	// after the first, not 1 s.
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 800*time.Millisecond {
		t.Fatalf("the next wait took %s; the refused one kept its token", d)
	}
}

func TestBlockUntil(t *testing.T) {
	l := Shared(t.Name(), rate.Inf, 1)
	if !l.BlockedUntil().IsZero() {
		t.Fatal("a new limiter is blocked")
	}
	l.BlockUntil(time.Now().Add(-time.Second))
	if !l.BlockedUntil().IsZero() {
		t.Fatal("a time in the past blocks")
	}
	until := time.Now().Add(300 * time.Millisecond)
	l.BlockUntil(until)
	l.BlockUntil(until.Add(-200 * time.Millisecond)) // an earlier answer arriving late
	if got := l.BlockedUntil(); !got.Equal(until) {
		t.Fatalf("blocked until %v, want %v", got, until)
	}
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if now := time.Now(); now.Before(until) {
		t.Fatalf("the wait ended %s before the block", until.Sub(now))
	}
	if !l.BlockedUntil().IsZero() {
		t.Fatal("still blocked after the block passed")
	}

	capped := Shared(t.Name()+"/capped", rate.Inf, 1)
	start := time.Now()
	capped.BlockUntil(start.Add(24 * time.Hour))
	if got := capped.BlockedUntil(); got.After(start.Add(MaxBlock+time.Second)) || got.Before(start.Add(MaxBlock)) {
		t.Fatalf("a day's block ends at %v, want MaxBlock from %v", got, start)
	}
}

func TestWaitWhileBlocked(t *testing.T) {
	l := Shared(t.Name(), rate.Inf, 1)
	l.BlockUntil(time.Now().Add(time.Second))

	// A deadline before the block ends fails at once.
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := l.Wait(short)
	var we *WaitError
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &we) || !we.Blocked || time.Since(start) > 50*time.Millisecond {
		t.Fatalf("short deadline: %v after %s", err, time.Since(start))
	}
	// A cancelled wait ends with the cancellation.
	cctx, ccancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, ccancel)
	if err := l.Wait(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
}

func TestBlockSetDuringTheRateWaitIsHonoured(t *testing.T) {
	l := Shared(t.Name(), 5, 1)
	if err := l.Wait(context.Background()); err != nil { // the burst
		t.Fatal(err)
	}
	// The next token is 200 ms away; another client's 429 blocks meanwhile.
	start := time.Now()
	until := start.Add(400 * time.Millisecond)
	time.AfterFunc(50*time.Millisecond, func() { l.BlockUntil(until) })
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if now := time.Now(); now.Before(until) {
		t.Fatalf("the wait ended %s before the block set during it", until.Sub(now))
	}
}

func TestWaitErrorText(t *testing.T) {
	e := &WaitError{Wait: 1500 * time.Millisecond, Blocked: true, Err: context.DeadlineExceeded}
	if got, want := e.Error(), "request not sent: waiting 1.5s for the server's rate limit: context deadline exceeded"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	e.Blocked = false
	if got, want := e.Error(), "request not sent: waiting 1.5s for the client's request rate: context deadline exceeded"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}
