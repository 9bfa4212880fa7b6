package hyperproof

import (
	"encoding/json"
	"mime"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseTimeLayouts(t *testing.T) {
	cases := map[string]time.Time{
		"2025-09-12T20:59:47.694353Z":       time.Date(2025, 9, 12, 20, 59, 47, 694353000, time.UTC),
		"2023-05-12T14:16:27.4176600+00:00": time.Date(2023, 5, 12, 14, 16, 27, 417660000, time.UTC),
		"2024-02-24T12:01:57+0000":          time.Date(2024, 2, 24, 12, 1, 57, 0, time.UTC),
		"2024-02-24T14:01:57+0200":          time.Date(2024, 2, 24, 12, 1, 57, 0, time.UTC),
		"2024-02-24T12:01:57.5+0000":        time.Date(2024, 2, 24, 12, 1, 57, 500000000, time.UTC),
		"2020-12-17T20:00:00Z":              time.Date(2020, 12, 17, 20, 0, 0, 0, time.UTC),
		"2020-12-17T20:00:00":               time.Date(2020, 12, 17, 20, 0, 0, 0, time.UTC),
		"2020-12-17":                        time.Date(2020, 12, 17, 0, 0, 0, 0, time.UTC),
		"":                                  {},
	}
	for in, want := range cases {
		got, err := ParseTime(in)
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseTime("yesterday"); err == nil {
		t.Error("garbage accepted")
	}
	var v struct {
		A Time  `json:"a"`
		B Time  `json:"b"`
		C *Time `json:"c"`
	}
	if err := json.Unmarshal([]byte(`{"a":null,"b":"2024-02-24T12:01:57+0000","c":"2023-05-12T14:16:27.4176600+00:00"}`), &v); err != nil {
		t.Fatal(err)
	}
	if !v.A.IsZero() || v.B.Hour() != 12 || v.C.ptr().Nanosecond() != 417660000 {
		t.Fatalf("%+v", v)
	}
	if err := json.Unmarshal([]byte(`{"a":12}`), &v); err == nil {
		t.Error("a number was accepted as a timestamp")
	}
	b, _ := json.Marshal(struct{ A, B Time }{B: Time{time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC)}})
	if string(b) != `{"A":null,"B":"2024-01-02T03:04:05.000006Z"}` {
		t.Errorf("marshal = %s", b)
	}
}

func TestFlexInt(t *testing.T) {
	var v struct{ A, B, C, D flexInt }
	if err := json.Unmarshal([]byte(`{"A":627,"B":"123456","C":null,"D":1.0}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.A != 627 || v.B != 123456 || v.C != 0 || v.D != 1 {
		t.Fatalf("%+v", v)
	}
}

func TestQuotaMessages(t *testing.T) {
	for msg, want := range map[string]bool{
		"Bandwidth quota exceeded. Try again later.":                       true,
		"Out of call volume quota. Quota will be replenished in 00:00:59.": true,
		"User does not have permission to perform this action.":            false,
		"Forbidden": false,
		"":          false,
	} {
		if got := isQuotaMessage(msg); got != want {
			t.Errorf("isQuotaMessage(%q) = %v", msg, got)
		}
		e := &APIError{StatusCode: 403, Message: msg}
		if e.Retryable() != want {
			t.Errorf("403 %q Retryable = %v", msg, e.Retryable())
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	cases := []struct {
		name string
		h    http.Header
		msg  string
		want time.Duration
	}{
		{"seconds header wins", h("Retry-After", "3", "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "1735689660"), "Try again in 5 seconds.", 3 * time.Second},
		{"http date", h("Retry-After", now.Add(90*time.Second).Format(http.TimeFormat)), "", 90 * time.Second},
		{"reset epoch", h("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "1735689660"), "Try again in 5 seconds.", 60 * time.Second},
		{"remaining not zero", h("X-RateLimit-Remaining", "4", "X-RateLimit-Reset", "1735689660"), "Try again in 5 seconds.", 5 * time.Second},
		{"text", nil, "Rate limit is exceeded. Try again in 12 seconds.", 12 * time.Second},
		{"text minutes", nil, "Try again in 2 minutes", 2 * time.Minute},
		{"replenished", nil, "Out of call volume quota. Quota will be replenished in 00:01:05.", 65 * time.Second},
		{"nothing", nil, "Bandwidth quota exceeded. Try again later.", 0},
	}
	for _, tc := range cases {
		if got := retryAfter(tc.h, tc.msg, now); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestErrorMessageShapes(t *testing.T) {
	for body, want := range map[string]string{
		`{"statusCode":404,"message":"Task not found."}`:                                           "Task not found.",
		`{"error":"invalid_client","error_description":"bad"}`:                                     "invalid_client: bad",
		`{"error":{"message":"No Record found","detail":"ACL"},"status":"x"}`:                      "No Record found: ACL",
		`{"title":"Bad Request","detail":"title is required"}`:                                     "Bad Request: title is required",
		`{"message":["a","b"]}`:                                                                    "a; b",
		"upstream connect error\n or disconnect":                                                   "upstream connect error or disconnect",
		"<html><head><title>x</title><style>p{}</style></head><body>Gateway Timeout</body></html>": "x Gateway Timeout",
		"": "",
	} {
		if got := errorMessage([]byte(body)); got != want {
			t.Errorf("errorMessage(%q) = %q, want %q", body, got, want)
		}
	}
}

func TestFormDataDisposition(t *testing.T) {
	for _, name := range []string{
		"plain.txt", "Évaluation des risques [v2].pdf", "README", `a"b\c.txt`, "100% done; ok, 'x'.txt", "日本語 ファイル.docx",
	} {
		cd := formDataDisposition("proof", name)
		_, params, err := mime.ParseMediaType(cd)
		if err != nil || params["filename"] != name || params["name"] != "proof" {
			t.Errorf("%q -> %s -> %q, %v", name, cd, params["filename"], err)
		}
	}
	cd := formDataDisposition("proof", "evil\r\nX-Injected: 1.txt")
	if strings.ContainsAny(cd, "\r\n") {
		t.Fatalf("control characters kept: %q", cd)
	}
	if _, params, _ := mime.ParseMediaType(formDataDisposition("proof", "")); params["filename"] != "file" {
		t.Errorf("empty name -> %q", params["filename"])
	}
}

func TestAuthErrorRedactsSecret(t *testing.T) {
	e := newAuthError(errString("dial tcp: client_secret=hunter%3F2 raw hunter?2"), "cid", "hunter?2")
	if strings.Contains(e.Error(), "hunter") || !e.Retryable() || e.Rejected() {
		t.Fatalf("secret kept or wrong class: %s", e.Error())
	}
}

type errString string

func (e errString) Error() string { return string(e) }
