package faults

import (
	crand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Vendor describes the simulator an Injector stands in front of.
type Vendor struct {
	// Name is the spec target ("servicenow", "hyperproof").
	Name string
	// Scope is the path prefix rules without a path apply to ("" = every
	// path).
	Scope string
	// Error writes the vendor's error answer for a 5xx or 429 fault: set
	// Content-Type, call WriteHeader(status) and write the body. The
	// throttling headers are already set; retryAfter is the announced wait
	// for a 429 and 0 otherwise. nil = {"message": "..."}.
	Error func(w http.ResponseWriter, status int, retryAfter time.Duration)
	// ExpireToken makes the access token r carries expire now. nil = the
	// vendor has no tokens and token-expiry rules are refused.
	ExpireToken func(r *http.Request)
	// Logf, when set, is told of every fault that fires (method, path and
	// kind only).
	Logf func(format string, args ...any)
	// Caller names the identity a request acts as, for rules restricted
	// with as= (Rule.As): the ServiceNow basic-auth user name, the OAuth
	// client id of a Hyperproof bearer token. It must not consume the
	// request body. "" = unknown. nil = the vendor cannot tell, and as=
	// rules never match.
	Caller func(r *http.Request) string
}

// Counts is how many faults of each kind fired.
type Counts map[Kind]int64

// String lists the non-zero counts in Kinds order, e.g. "5xx=2 429=1".
func (c Counts) String() string {
	var parts []string
	for _, k := range Kinds {
		if n := c[k]; n != 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, n))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// Injector applies rules to the requests of one simulator. It is safe for
// concurrent use; rules can be added and cleared while it serves.
type Injector struct {
	v Vendor

	mu     sync.Mutex
	seed   uint64
	seeded bool
	added  uint64 // rules added so far: the stream number of the next rule
	rules  []*live
	counts Counts
}

type live struct {
	Rule
	stream uint64
	fired  int
	rng    *rand.Rand
}

// New returns an Injector without rules for the vendor.
func New(v Vendor) *Injector {
	return &Injector{v: v, counts: Counts{}}
}

// Vendor returns the vendor the injector was made for.
func (in *Injector) Vendor() Vendor { return in.v }

// SetSeed makes the share draws deterministic: every rule, present or
// added later, draws from its own stream derived from seed and the rule's
// position.
func (in *Injector) SetSeed(seed uint64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.seed, in.seeded = seed, true
	for _, r := range in.rules {
		r.rng = in.newRand(r.stream)
	}
}

func (in *Injector) newRand(stream uint64) *rand.Rand {
	if in.seeded {
		return rand.New(rand.NewPCG(in.seed, stream))
	}
	var b [16]byte
	_, _ = crand.Read(b[:])
	return rand.New(rand.NewPCG(binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])))
}

// Add appends rules (checked first: nothing is added when one is invalid).
func (in *Injector) Add(rules ...Rule) error {
	checked := make([]Rule, 0, len(rules))
	for i, r := range rules {
		if err := r.validate(); err != nil {
			return fmt.Errorf("faults: rule %d (%s): %w", i+1, r.Kind, err)
		}
		if r.Kind == KindTokenExpiry && in.v.ExpireToken == nil {
			return fmt.Errorf("faults: rule %d: %s: %w", i+1, in.vendorName(), ErrNoTokens)
		}
		checked = append(checked, r)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, r := range checked {
		in.rules = append(in.rules, &live{Rule: r, stream: in.added, rng: in.newRand(in.added)})
		in.added++
	}
	return nil
}

// MustAdd is Add for rules known to be valid; it panics otherwise.
func (in *Injector) MustAdd(rules ...Rule) {
	if err := in.Add(rules...); err != nil {
		panic(err)
	}
}

// Load adds the spec's rules for this vendor and applies its seed.
func (in *Injector) Load(s Spec) error {
	if s.Seeded {
		in.SetSeed(s.Seed)
	}
	return in.Add(s.For(in.v.Name)...)
}

// LoadString parses a spec and loads it (see Load).
func (in *Injector) LoadString(spec string) error {
	s, err := Parse(spec)
	if err != nil {
		return err
	}
	return in.Load(s)
}

// Clear removes every rule (the counts are kept).
func (in *Injector) Clear() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.rules = nil
}

// Rules returns the rules still active, in order.
func (in *Injector) Rules() []Rule {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]Rule, len(in.rules))
	for i, r := range in.rules {
		out[i] = r.Rule
	}
	return out
}

// Counts returns a copy of the counts of faults that fired.
func (in *Injector) Counts() Counts {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make(Counts, len(in.counts))
	for k, n := range in.counts {
		out[k] = n
	}
	return out
}

// Count returns how many faults of one kind fired.
func (in *Injector) Count(k Kind) int64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.counts[k]
}

// ResetCounts sets every count back to zero.
func (in *Injector) ResetCounts() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.counts = Counts{}
}

func (in *Injector) vendorName() string {
	if in.v.Name == "" {
		return "the simulator"
	}
	return in.v.Name
}

// plan is what happens to one request.
type plan struct {
	delay time.Duration
	fault *Rule // the terminal fault, nil = serve normally
}

// decide draws the rules for a request, counts what fires and drops rules
// that are used up.
func (in *Injector) decide(r *http.Request) plan {
	// The caller is read before the injector's lock is taken: the vendor
	// may take locks of its own to answer.
	caller := ""
	if in.v.Caller != nil {
		caller = in.v.Caller(r)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	var p plan
	kept := in.rules[:0]
	for _, lr := range in.rules {
		if (p.fault == nil || !lr.Kind.terminal()) && lr.matches(r, in.v.Scope, caller) &&
			(lr.Share >= 1 || lr.rng.Float64() < lr.Share) {
			lr.fired++
			in.counts[lr.Kind]++
			if lr.Kind.terminal() {
				f := lr.Rule
				p.fault = &f
			} else {
				p.delay += lr.Latency
			}
		}
		if lr.Times == 0 || lr.fired < lr.Times {
			kept = append(kept, lr)
		}
	}
	clear(in.rules[len(kept):])
	in.rules = kept
	return p
}

// Middleware returns next behind the injector.
func (in *Injector) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := in.decide(r)
		if p.delay > 0 {
			in.logf("latency %s", r, p.delay)
			t := time.NewTimer(p.delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if p.fault == nil {
			next.ServeHTTP(w, r)
			return
		}
		f := p.fault
		in.logf("%s", r, f.Kind)
		switch f.Kind {
		case KindStatus:
			for k, vs := range f.Header {
				for _, v := range vs {
					w.Header().Add(k, v)
				}
			}
			if w.Header().Get("Content-Type") == "" {
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
			}
			w.WriteHeader(f.Status)
			_, _ = io.WriteString(w, f.Body)
		case Kind5xx:
			in.writeError(w, f.Status, 0)
		case Kind429:
			secs := retrySeconds(f.RetryAfter)
			if f.Hint != HintReset {
				w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
			}
			if f.Hint != HintRetryAfter {
				w.Header().Set("X-RateLimit-Remaining", "0")
				// The epoch second is rounded up, so that waiting until it
				// waits at least the announced time.
				at := time.Now().Add(time.Duration(secs) * time.Second)
				reset := at.Unix()
				if at.Nanosecond() > 0 {
					reset++
				}
				w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset, 10))
			}
			in.writeError(w, http.StatusTooManyRequests, time.Duration(secs)*time.Second)
		case KindReset:
			abort(w)
		case KindCommitLost:
			next.ServeHTTP(&discardWriter{header: http.Header{}}, r)
			abort(w)
		case KindTokenExpiry:
			var once sync.Once
			expire := func() { once.Do(func() { in.v.ExpireToken(r) }) }
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = &expiringBody{ReadCloser: r.Body, expire: expire}
			}
			next.ServeHTTP(&expiringWriter{ResponseWriter: w, expire: expire}, r)
			// A request that neither read nor wrote anything still leaves
			// an expired token behind.
			expire()
		}
	})
}

func (in *Injector) logf(format string, r *http.Request, args ...any) {
	if in.v.Logf == nil {
		return
	}
	in.v.Logf("faults: "+in.vendorName()+": %s %s: "+format, append([]any{r.Method, r.URL.Path}, args...)...)
}

func (in *Injector) writeError(w http.ResponseWriter, status int, retryAfter time.Duration) {
	if in.v.Error != nil {
		in.v.Error(w, status, retryAfter)
		return
	}
	msg := http.StatusText(status)
	if retryAfter > 0 {
		msg += fmt.Sprintf(". Try again in %d seconds.", int64(retryAfter/time.Second))
	}
	b, _ := json.Marshal(map[string]string{"message": msg})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// abort drops the connection without an answer: a TCP RST where the
// connection can be taken over, else the server's own abort.
func abort(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 or a writer that cannot be hijacked: the server resets
		// the stream.
		panic(http.ErrAbortHandler)
	}
	nc := conn
	if u, ok := conn.(interface{ NetConn() net.Conn }); ok { // TLS
		nc = u.NetConn()
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close sends RST, not FIN
	}
	_ = conn.Close()
}

// discardWriter takes a handler's answer and throws it away.
type discardWriter struct {
	header http.Header
	status int
}

func (d *discardWriter) Header() http.Header { return d.header }
func (d *discardWriter) WriteHeader(code int) {
	if d.status == 0 {
		d.status = code
	}
}
func (d *discardWriter) Write(b []byte) (int, error) {
	if d.status == 0 {
		d.status = http.StatusOK
	}
	return len(b), nil
}
func (d *discardWriter) Flush() {}

// expiringBody calls expire on the first read of the request body.
type expiringBody struct {
	io.ReadCloser
	expire func()
}

func (b *expiringBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 || err != nil {
		b.expire()
	}
	return n, err
}

// expiringWriter calls expire on the first write of the answer body.
type expiringWriter struct {
	http.ResponseWriter
	expire func()
}

func (w *expiringWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.expire()
	return n, err
}

func (w *expiringWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ErrNoTokens is returned (wrapped) by Add for a token-expiry rule on a
// vendor without access tokens.
var ErrNoTokens = errors.New("the vendor has no access tokens to expire")
