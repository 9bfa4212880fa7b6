package hyperproof_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hpsync/internal/hyperproof"
	"hpsync/internal/sandbox/faults"
	"hpsync/internal/sandbox/hpsim"
)

func loadFaults(t *testing.T, e *env, spec string) {
	t.Helper()
	if err := e.sim.Faults().LoadString(spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { t.Logf("faults fired: %s", e.sim.Faults().Counts()) })
}

func TestFault5xxIsRetryable(t *testing.T) {
	e := newEnv(t, hpsim.Options{})
	loadFaults(t, e, "hyperproof:GET /v1/users:5xx=1,status=502,times=1")
	hp := e.integration(t)
	ae := asAPIError(t, mustErr(hp.ListUsers(ctx(t))), 502)
	if !ae.Retryable() || ae.Message != "Bad Gateway." || ae.RetryAfter != 0 {
		t.Fatalf("502 = %+v", ae)
	}
	if _, err := hp.ListUsers(ctx(t)); err != nil {
		t.Fatalf("after the fault: %v", err)
	}
}

func TestRateLimits_429HoldsBackEveryClientOfTheOrganisation(t *testing.T) {
	e := newEnv(t, hpsim.Options{})
	// Default pacing; a key of its own so no other test shares the limiter.
	a := e.configWith(t, hyperproof.Config{RateLimitKey: t.Name()})
	b := e.configWith(t, hyperproof.Config{RateLimitKey: t.Name()})
	other := e.configWith(t, hyperproof.Config{RateLimitKey: t.Name() + "/other-org"})
	for _, c := range []*hyperproof.Client{a, b, other} {
		if _, err := c.ListTaskStatuses(ctx(t)); err != nil { // tokens first
			t.Fatal(err)
		}
	}
	loadFaults(t, e, "hyperproof:GET /v1/users/me:429,retry-after=1,times=1")

	ae := asAPIError(t, mustErr(a.Me(ctx(t))), 429)
	got429 := time.Now()
	if !ae.Retryable() || ae.RetryAfter != time.Second || ae.Message != "Rate limit is exceeded. Try again in 1 seconds." {
		t.Fatalf("429 = %+v", ae)
	}
	until := b.BlockedUntil()
	if until.Before(got429.Add(800*time.Millisecond)) || until.After(got429.Add(1100*time.Millisecond)) {
		t.Fatalf("the other client is blocked until %v, want ~1s after %v", until, got429)
	}
	// Another organisation is not held back.
	start := time.Now()
	if _, err := other.Me(ctx(t)); err != nil || time.Since(start) > 300*time.Millisecond {
		t.Fatalf("other organisation: %v after %s", err, time.Since(start))
	}
	// A wait that would outlast the deadline fails at once, unsent.
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := b.ListUsers(short); !errors.Is(err, context.DeadlineExceeded) || e.hitCount("GET /v1/users") != 0 {
		t.Fatalf("short deadline: %v", err)
	}

	var wg sync.WaitGroup
	var errs [2]error
	wg.Add(2)
	go func() { defer wg.Done(); _, errs[0] = a.Me(ctx(t)) }()
	go func() { defer wg.Done(); _, errs[1] = b.ListUsers(ctx(t)) }()
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(got429); d < 900*time.Millisecond {
		t.Fatalf("the concurrent calls finished %s after the 429, before its Retry-After", d)
	}
	if !a.BlockedUntil().IsZero() {
		t.Fatal("still blocked")
	}
}

func TestFaultLatencyResetAndCommitLost(t *testing.T) {
	e := newEnv(t, hpsim.Options{})
	hp := e.integration(t)
	ctx := ctx(t)
	taskID := e.sim.SeededTaskIDs()[0]
	statuses, err := hp.ListTaskStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done, _ := hyperproof.StatusByType(statuses, hyperproof.StatusClosed)
	before, err := hp.GetTask(ctx, taskID)
	if err != nil {
		t.Fatal(err)
	}
	loadFaults(t, e, "hyperproof:GET /v1/taskstatuses:latency=200ms;"+
		"hyperproof:PATCH /v1/tasks/:reset;"+
		"hyperproof:POST /v1/tasks/:commit-lost,times=1")

	start := time.Now()
	if _, err := hp.ListTaskStatuses(ctx); err != nil || time.Since(start) < 200*time.Millisecond {
		t.Fatalf("latency: %v after %s", err, time.Since(start))
	}

	// Reset: a network error, and the change was not made.
	_, err = hp.SetTaskStatus(ctx, taskID, done.ID)
	var ae *hyperproof.APIError
	if err == nil || errors.As(err, &ae) || !strings.Contains(err.Error(), "hyperproof: PATCH /v1/tasks/") {
		t.Fatalf("reset: %v", err)
	}
	if got, err := hp.GetTask(ctx, taskID); err != nil || got.TaskStatusID != before.TaskStatusID {
		t.Fatalf("after reset: %+v %v", got, err)
	}

	// Commit lost: an error, but the comment is there.
	_, err = hp.AddComment(ctx, taskID, hyperproof.NewComment{Text: "from ServiceNow", SourceCommentID: "sn:lost-1"})
	if err == nil || errors.As(err, &ae) {
		t.Fatalf("commit-lost: %v", err)
	}
	comments, err := hp.ListComments(ctx, taskID)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range comments {
		if c.SourceCommentID == "sn:lost-1" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d comments with the lost answer's source id, want 1", n)
	}
	counts := e.sim.Faults().Counts()
	if counts[faults.KindLatency] != 1 || counts[faults.KindReset] != 1 || counts[faults.KindCommitLost] != 1 {
		t.Fatalf("counts %v", counts)
	}
}

func TestExpiringCredentials_Concurrent401sShareOneRefresh(t *testing.T) {
	e := newEnv(t, hpsim.Options{})
	hp := e.integration(t)
	if _, err := hp.Me(ctx(t)); err != nil {
		t.Fatal(err)
	}
	e.sim.RevokeTokens()
	const n = 16
	// The first n calls are held 100 ms on their way in, so that all of
	// them carry the revoked token before any 401 comes back.
	loadFaults(t, e, "hyperproof:GET /v1/users/me:latency=100ms,times=16")
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = hp.Me(ctx(t))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := e.tokens.Load(); got != 2 {
		t.Fatalf("token requests = %d, want 2 (the first, and one refresh for all %d 401s)", got, n)
	}
	if got := e.hitCount("GET /v1/users/me"); got != 1+2*n {
		t.Fatalf("GET /v1/users/me sent %d times, want %d (each call: 401, then once more)", got, 1+2*n)
	}
}

// bigProof uploads size pseudo-random bytes as proof and returns the proof
// and its hash.
func bigProof(t *testing.T, hp *hyperproof.Client, taskID string, size int64) (hyperproof.Proof, [32]byte) {
	t.Helper()
	h := sha256.New()
	_, _ = io.Copy(h, &genReader{n: size, state: 0x9e3779b97f4a7c15})
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	p, err := hp.UploadTaskProof(ctx(t), taskID, hyperproof.ProofUpload{Filename: "big.bin", Body: &genReader{n: size, state: 0x9e3779b97f4a7c15}, SourceFileID: "big"})
	if err != nil {
		t.Fatal(err)
	}
	return p, sum
}

func TestExpiringCredentials_TokenExpiresMidDownload(t *testing.T) {
	e := newEnv(t, hpsim.Options{})
	hp := e.integration(t)
	taskID := e.sim.SeededTaskIDs()[0]
	p, want := bigProof(t, hp, taskID, 16<<20)
	loadFaults(t, e, "hyperproof:GET /v1/proof/:token-expiry,times=1")

	rc, err := hp.DownloadProof(ctx(t), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, rc, 1<<20); err != nil {
		t.Fatal(err)
	}
	// While the download streams, its token has expired: the next call is
	// refused once, gets a new token and goes through.
	if _, err := hp.Me(ctx(t)); err != nil {
		t.Fatalf("call during the download: %v", err)
	}
	if got := e.hitCount("GET /v1/users/me"); got != 2 {
		t.Fatalf("GET /v1/users/me sent %d times, want 2 (401, repeat)", got)
	}
	// The download in flight completes, byte for byte.
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatalf("the download in flight failed: %v", err)
	}
	var got [32]byte
	copy(got[:], h.Sum(nil))
	if got != want {
		t.Fatal("downloaded bytes differ")
	}
	if n := e.tokens.Load(); n != 2 {
		t.Fatalf("token requests = %d, want 2", n)
	}
	if n := e.sim.Faults().Count(faults.KindTokenExpiry); n != 1 {
		t.Fatalf("token-expiry fired %d times", n)
	}
}

func TestExpiringCredentials_TokenExpiresMidUpload(t *testing.T) {
	e := newEnv(t, hpsim.Options{})
	hp := e.integration(t)
	taskID := e.sim.SeededTaskIDs()[0]
	if _, err := hp.Me(ctx(t)); err != nil {
		t.Fatal(err)
	}
	loadFaults(t, e, "hyperproof:POST /v1/tasks/:token-expiry,times=1")
	// The upload in flight completes although its token expires as the
	// bytes stream in.
	p, _ := bigProof(t, hp, taskID, 8<<20)
	if p.Size != 8<<20 {
		t.Fatalf("size %d", p.Size)
	}
	// The next call meets the expired token, refreshes once, and succeeds.
	list, err := hp.ListTaskProof(ctx(t), taskID, "big")
	if err != nil || len(list) != 1 || list[0].ID != p.ID {
		t.Fatalf("after the upload: %+v %v", list, err)
	}
	if n := e.tokens.Load(); n != 2 {
		t.Fatalf("token requests = %d, want 2", n)
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestStreamedUploadIsNotRepeatedAfter401(t *testing.T) {
	e := newEnv(t, hpsim.Options{})
	hp := e.integration(t)
	taskID := e.sim.SeededTaskIDs()[0]
	if _, err := hp.Me(ctx(t)); err != nil {
		t.Fatal(err)
	}
	e.sim.RevokeTokens()
	body := &countingReader{r: strings.NewReader(strings.Repeat("evidence ", 1000))}
	_, err := hp.UploadTaskProof(ctx(t), taskID, hyperproof.ProofUpload{Filename: "e.txt", Body: body, SourceFileID: "e"})
	ae := asAPIError(t, err, 401)
	if ae.Retryable() {
		t.Fatalf("401 = %+v", ae)
	}
	if n := e.hitCount("POST /v1/tasks/" + taskID + "/proof"); n != 1 {
		t.Fatalf("the streamed upload was sent %d times, want 1", n)
	}
	if list, err := hp.ListTaskProof(ctx(t), taskID, ""); err != nil || len(list) != 0 {
		t.Fatalf("proof after the refused upload: %+v %v", list, err)
	}
	// The caller (an activity retry) streams again from the source: it
	// goes through with the token fetched after the 401.
	p, err := hp.UploadTaskProof(ctx(t), taskID, hyperproof.ProofUpload{Filename: "e.txt", Body: strings.NewReader(strings.Repeat("evidence ", 1000)), SourceFileID: "e"})
	if err != nil || p.Size != 9000 {
		t.Fatalf("re-streamed upload: %+v %v", p, err)
	}
	if n := e.tokens.Load(); n != 2 {
		t.Fatalf("token requests = %d, want 2", n)
	}
}

func TestRateLimitConfig(t *testing.T) {
	e := newEnv(t, hpsim.Options{})
	paced := e.configWith(t, hyperproof.Config{RequestsPerSecond: 10, Burst: 2, RateLimitKey: t.Name()})
	start := time.Now()
	for range 6 {
		if _, err := paced.ListTaskStatuses(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 350*time.Millisecond {
		t.Fatalf("6 calls at 10/s burst 2 took %s", d)
	}
	if _, err := hyperproof.New(hyperproof.Config{ClientID: "c", ClientSecret: "s", Burst: -1}); err == nil {
		t.Fatal("negative burst accepted")
	}
}
