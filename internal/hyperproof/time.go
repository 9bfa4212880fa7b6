package hyperproof

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Time is a timestamp as Hyperproof writes it. Hyperproof's services do not
// agree on one layout: besides RFC 3339 with microseconds
// ("2025-09-12T20:59:47.694353Z") they send seven fractional digits with a
// colon offset ("2023-05-12T14:16:27.4176600+00:00") and offsets without a
// colon ("2024-02-24T12:01:57+0000"). Time accepts all of them, JSON null and
// "" (the zero Time), and always holds UTC.
type Time struct{ time.Time }

// timeLayouts are tried in order. When parsing, Go accepts a fractional
// second after the seconds field even if the layout does not show one.
var timeLayouts = []string{
	time.RFC3339Nano,                      // ...Z, ...+00:00, any number of fractional digits
	"2006-01-02T15:04:05.999999999Z0700",  // ...+0000
	"2006-01-02T15:04:05.999999999Z07",    // ...+00
	"2006-01-02T15:04:05.999999999",       // no zone: UTC
	"2006-01-02 15:04:05.999999999Z07:00", // space instead of T
	"2006-01-02 15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04Z07:00",
	"2006-01-02",
}

// ParseTime parses a Hyperproof timestamp in any of the layouts Time accepts.
// The empty string gives the zero time. The result is in UTC.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("hyperproof: unrecognised timestamp %q", s)
}

// UnmarshalJSON implements json.Unmarshaler.
func (t *Time) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("hyperproof: timestamp is not a string: %s", truncate(string(b), 64))
	}
	v, err := ParseTime(s)
	if err != nil {
		return err
	}
	t.Time = v
	return nil
}

// MarshalJSON writes RFC 3339 in UTC, or null for the zero Time.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(t.UTC().Format(time.RFC3339Nano))
}

// ptr returns nil for the zero time and a pointer to the UTC time otherwise.
func (t *Time) ptr() *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	v := t.UTC()
	return &v
}

// formatTime is how the client writes timestamps: RFC 3339 in UTC.
func formatTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

// flexInt decodes a JSON number, a numeric string or null.
type flexInt int64

func (n *flexInt) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*n = 0
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		b = []byte(strings.TrimSpace(s))
		if len(b) == 0 {
			*n = 0
			return nil
		}
	}
	var f json.Number
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("hyperproof: not a number: %s", truncate(string(b), 64))
	}
	if i, err := f.Int64(); err == nil {
		*n = flexInt(i)
		return nil
	}
	fl, err := f.Float64()
	if err != nil {
		return fmt.Errorf("hyperproof: not a number: %s", truncate(string(b), 64))
	}
	*n = flexInt(int64(fl))
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
