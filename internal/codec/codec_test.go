package codec

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

func newKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func mustCodec(t *testing.T, spec string) *Codec {
	t.Helper()
	ring, err := ParseKeys(spec)
	if err != nil {
		t.Fatal(err)
	}
	return New(ring)
}

const secretText = "comment from jane.doe@example.com: the door code is 7781"

func samplePayloads(t *testing.T) []*commonpb.Payload {
	t.Helper()
	ps, err := converter.GetDefaultDataConverter().ToPayloads(
		secretText,
		map[string]string{"author": "Jane Doe", "email": "jane.doe@example.com"},
		nil,
		[]byte("raw bytes of jane.doe@example.com"),
	)
	if err != nil {
		t.Fatal(err)
	}
	return ps.Payloads
}

func TestRoundTrip(t *testing.T) {
	c := mustCodec(t, "k1:"+newKey(t))
	in := samplePayloads(t)
	enc, err := c.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range enc {
		if got := string(p.Metadata[MetadataEncoding]); got != EncodingEncrypted {
			t.Errorf("payload %d: encoding %q, want %q", i, got, EncodingEncrypted)
		}
		if got := string(p.Metadata[MetadataKeyID]); got != "k1" {
			t.Errorf("payload %d: key id %q, want k1", i, got)
		}
		if len(p.Metadata) != 2 {
			t.Errorf("payload %d: metadata %v leaks the original's", i, p.Metadata)
		}
		raw, _ := proto.Marshal(p)
		for _, clear := range []string{"jane.doe", "Jane Doe", "door code", "json/plain"} {
			if bytes.Contains(raw, []byte(clear)) {
				t.Errorf("payload %d holds %q in clear", i, clear)
			}
		}
	}
	// Two encryptions of the same payload differ (random nonce).
	again, _ := c.Encode(in[:1])
	if bytes.Equal(again[0].Data, enc[0].Data) {
		t.Error("same ciphertext twice: the nonce is not random")
	}
	dec, err := c.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		if !proto.Equal(dec[i], in[i]) {
			t.Errorf("payload %d: decoded %v, want %v", i, dec[i], in[i])
		}
	}

	// Through the data converter the workflow code sees.
	dc := c.DataConverter()
	ps, err := dc.ToPayloads(secretText)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ps.Payloads[0].Data, []byte("jane.doe")) {
		t.Fatal("data converter did not encrypt")
	}
	var back string
	if err := dc.FromPayloads(ps, &back); err != nil || back != secretText {
		t.Fatalf("data converter round trip: %q, %v", back, err)
	}
}

func TestRotation(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	old := mustCodec(t, "k1:"+k1)
	enc, err := old.Encode(samplePayloads(t))
	if err != nil {
		t.Fatal(err)
	}
	// After rotation: k2 first (encrypts), k1 still listed (decrypts).
	rotated := mustCodec(t, "k2:"+k2+", k1:"+k1)
	dec, err := rotated.Decode(enc)
	if err != nil {
		t.Fatalf("rotated keyring cannot read the old key's payloads: %v", err)
	}
	if !proto.Equal(dec[0], samplePayloads(t)[0]) {
		t.Fatal("decoded payload differs")
	}
	fresh, err := rotated.Encode(samplePayloads(t)[:1])
	if err != nil {
		t.Fatal(err)
	}
	if id := string(fresh[0].Metadata[MetadataKeyID]); id != "k2" {
		t.Fatalf("new payloads encrypted with %q, want the first key k2", id)
	}
	// The old keyring cannot read the new key's payloads, and says why.
	_, err = old.Decode(fresh)
	if err == nil || !strings.Contains(err.Error(), `key "k2", which is not in PAYLOAD_KEYS (it has k1)`) {
		t.Fatalf("error = %v", err)
	}
	// Once k1 is dropped, its payloads are unreadable, by name.
	_, err = mustCodec(t, "k2:"+k2).Decode(enc)
	if err == nil || !strings.Contains(err.Error(), `key "k1", which is not in PAYLOAD_KEYS (it has k2)`) {
		t.Fatalf("error = %v", err)
	}
}

func TestWrongOrMissingKey(t *testing.T) {
	c := mustCodec(t, "k1:"+newKey(t))
	enc, err := c.Encode(samplePayloads(t)[:1])
	if err != nil {
		t.Fatal(err)
	}
	p := enc[0]
	clone := func(mod func(*commonpb.Payload)) []*commonpb.Payload {
		q := proto.Clone(p).(*commonpb.Payload)
		mod(q)
		return []*commonpb.Payload{q}
	}
	tests := []struct {
		name  string
		codec *Codec
		in    []*commonpb.Payload
		want  string
	}{
		{"same id, other key", mustCodec(t, "k1:"+newKey(t)), enc,
			`payload decryption: key "k1" does not open the payload (a different key under the same id, or damaged data)`},
		{"no keys at all", New(nil), enc,
			`payload decryption: the payload is encrypted with key "k1" and PAYLOAD_KEYS is empty`},
		{"key id missing", c, clone(func(q *commonpb.Payload) { delete(q.Metadata, MetadataKeyID) }),
			"payload decryption: the payload is encrypted but names no key id (encryption-key-id metadata missing)"},
		{"key id changed", mustCodec(t, "k1:"+newKey(t)+",k9:"+base64.StdEncoding.EncodeToString(make([]byte, 32))),
			clone(func(q *commonpb.Payload) { q.Metadata[MetadataKeyID] = []byte("k9") }),
			`payload decryption: key "k9" does not open the payload`},
		{"damaged", c, clone(func(q *commonpb.Payload) { q.Data[len(q.Data)-1] ^= 1 }),
			`payload decryption: key "k1" does not open the payload`},
		{"truncated", c, clone(func(q *commonpb.Payload) { q.Data = q.Data[:10] }),
			`payload decryption: key "k1": the payload is too short to be encrypted data`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.codec.Decode(tt.in)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error = %v\nwant    %s...", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestPlainPayloadsPassThrough(t *testing.T) {
	// Histories written before encryption was turned on stay readable.
	in := samplePayloads(t)
	for _, c := range []*Codec{mustCodec(t, "k1:"+newKey(t)), New(nil)} {
		out, err := c.Decode(in)
		if err != nil {
			t.Fatal(err)
		}
		for i := range in {
			if !proto.Equal(out[i], in[i]) {
				t.Fatalf("plain payload %d changed by decode", i)
			}
		}
	}
	// Without keys nothing is encrypted.
	out, err := New(nil).Encode(in)
	if err != nil || !proto.Equal(out[0], in[0]) {
		t.Fatalf("empty keyring encoded: %v %v", out[0], err)
	}
}

func TestParseKeys(t *testing.T) {
	key := newKey(t)
	raw, _ := base64.StdEncoding.DecodeString(key)
	for _, spec := range []string{
		"k1:" + key,
		" k1 : " + key + " ",
		"k1:" + base64.RawStdEncoding.EncodeToString(raw),
		"k1:" + base64.URLEncoding.EncodeToString(raw),
		"k1:" + base64.RawURLEncoding.EncodeToString(raw),
	} {
		r, err := ParseKeys(spec)
		if err != nil || strings.Join(r.IDs(), ",") != "k1" {
			t.Errorf("ParseKeys(%q) = %v, %v", spec, r.IDs(), err)
		}
	}
	r, err := ParseKeys("2026-q3:" + newKey(t) + ",2026_q2:" + key)
	if err != nil || strings.Join(r.IDs(), ",") != "2026-q3,2026_q2" || len(r.Material()) != 2 {
		t.Fatalf("two keys: %v, %v", r.IDs(), err)
	}
	if r, err := ParseKeys("  "); err != nil || !r.Empty() {
		t.Fatalf("blank: %v, %v", r, err)
	}

	short := base64.StdEncoding.EncodeToString([]byte("sixteen byte key"))
	for spec, want := range map[string]string{
		key:                               "key 1 is not written as id:base64-key",
		"k1:" + key + ",":                 "key 2 is not written as id:base64-key",
		"k1:":                             "key 1 is not written as id:base64-key",
		"k 1:" + key:                      "key 1: the id may only hold letters, digits, '.', '_' and '-' (at most 64)",
		"k1:" + key + ",k1:" + newKey(t):  `key 2: id "k1" is listed twice`,
		"k1:" + short:                     "key 1 (k1): the key is 16 bytes, not 32; make one with: openssl rand -base64 32",
		"k1:" + key + ",k2:not*base64!!!": "key 2 (k2): the key is not base64; make one with: openssl rand -base64 32",
	} {
		_, err := ParseKeys(spec)
		if err == nil || err.Error() != want {
			t.Errorf("ParseKeys(...) error = %v, want %s", err, want)
			continue
		}
		if strings.Contains(err.Error(), key) || strings.Contains(err.Error(), short) {
			t.Errorf("error shows key material: %v", err)
		}
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "payload-keys")
	spec, created, err := LoadOrCreateKeyFile(path, "demo1")
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	if r, err := ParseKeys(spec); err != nil || r.IDs()[0] != "demo1" {
		t.Fatalf("made %v, %v", r.IDs(), err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode(), err)
	}
	again, created, err := LoadOrCreateKeyFile(path, "demo1")
	if err != nil || created || again != spec {
		t.Fatalf("second run did not reuse the key: created=%v err=%v", created, err)
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateKeyFile(path, "demo1"); err == nil {
		t.Fatal("a bad key file was accepted")
	}
}

func TestHTTPHandler(t *testing.T) {
	c := mustCodec(t, "k1:"+newKey(t))
	srv := httptest.NewServer(NewHTTPHandler(c, []string{"http://localhost:8080"}))
	defer srv.Close()

	post := func(path string, ps []*commonpb.Payload, origin string) (*http.Response, []*commonpb.Payload) {
		t.Helper()
		body, err := protojson.Marshal(&commonpb.Payloads{Payloads: ps})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Namespace", "default")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return resp, nil
		}
		var out commonpb.Payloads
		if err := protojson.Unmarshal(b, &out); err != nil {
			t.Fatalf("response %s: %v", b, err)
		}
		return resp, out.Payloads
	}

	in := samplePayloads(t)
	resp, enc := post("/encode", in, "http://localhost:8080")
	if resp.StatusCode != 200 || len(enc) != len(in) || string(enc[0].Metadata[MetadataEncoding]) != EncodingEncrypted {
		t.Fatalf("encode: %d %v", resp.StatusCode, enc)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "http://localhost:8080" {
		t.Errorf("allowed origin got Access-Control-Allow-Origin %q", got)
	}
	_, dec := post("/default/decode", enc, "")
	for i := range in {
		if !proto.Equal(dec[i], in[i]) {
			t.Fatalf("decode %d: %v", i, dec[i])
		}
	}
	resp, _ = post("/decode", enc, "https://evil.example")
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("foreign origin got Access-Control-Allow-Origin %q", got)
	}
	// A payload of an unknown key: 400 naming the key, not a crash.
	other, _ := mustCodec(t, "k7:"+newKey(t)).Encode(in[:1])
	if resp, _ := post("/decode", other, ""); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown key: status %d", resp.StatusCode)
	}

	// The UI's preflight.
	req, _ := http.NewRequest(http.MethodOptions, srv.URL+"/decode", nil)
	req.Header.Set("Origin", "http://localhost:8080")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type,x-namespace")
	pre, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pre.Body.Close()
	if pre.StatusCode != http.StatusNoContent || !strings.Contains(pre.Header.Get("Access-Control-Allow-Headers"), "X-Namespace") ||
		pre.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("preflight: %d %v", pre.StatusCode, pre.Header)
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/decode", http.StatusMethodNotAllowed},
		{http.MethodPost, "/other", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.want)
		}
	}
}

func TestParseOrigins(t *testing.T) {
	got := ParseOrigins(" http://localhost:8080/ ,, https://ui.example.com")
	if strings.Join(got, "|") != "http://localhost:8080|https://ui.example.com" {
		t.Fatalf("ParseOrigins = %q", got)
	}
}
