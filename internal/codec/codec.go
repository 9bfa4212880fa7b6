// Package codec encrypts Temporal payloads (workflow and activity inputs and
// results, signals, queries, memos and failure messages) with AES-256-GCM, so
// comment text, names and e-mail addresses are not stored in clear in
// Temporal, and serves the same codec over HTTP for the Temporal UI and CLI.
//
// An encrypted payload carries the metadata encoding "binary/encrypted" and
// the id of the key that encrypted it ("encryption-key-id"); its data is a
// 12-byte random nonce followed by the AES-GCM sealed, serialized original
// payload (metadata included), with the key id as additional data. Keys come
// from PAYLOAD_KEYS as "id:base64,id:base64": the first encrypts, every one
// decrypts, so a rotated-out key stays listed until no history needs it.
// Payloads without the encrypted encoding (histories written before
// encryption was turned on) pass through decoding unchanged.
package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

const (
	// MetadataEncoding is the payload metadata key naming the encoding.
	MetadataEncoding = converter.MetadataEncoding
	// EncodingEncrypted is the encoding of a payload this codec encrypted.
	EncodingEncrypted = "binary/encrypted"
	// MetadataKeyID is the payload metadata key naming the encrypting key.
	MetadataKeyID = "encryption-key-id"

	keySize   = 32 // AES-256
	nonceSize = 12 // GCM standard nonce
)

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Key is one named AES-256 key.
type Key struct {
	ID   string
	aead cipher.AEAD
	b64  string // the key as written in PAYLOAD_KEYS (for log redaction)
}

// Keyring holds the keys of PAYLOAD_KEYS in order; the first encrypts.
type Keyring struct {
	keys []Key
	byID map[string]cipher.AEAD
}

// ParseKeys reads PAYLOAD_KEYS ("k2:<base64 of 32 bytes>,k1:<base64>"). An
// empty or blank spec is an empty keyring (no encryption). Errors are one
// line and never contain key material.
func ParseKeys(spec string) (*Keyring, error) {
	r := &Keyring{byID: map[string]cipher.AEAD{}}
	if strings.TrimSpace(spec) == "" {
		return r, nil
	}
	for i, entry := range strings.Split(spec, ",") {
		n := i + 1
		entry = strings.TrimSpace(entry)
		id, material, ok := strings.Cut(entry, ":")
		id, material = strings.TrimSpace(id), strings.TrimSpace(material)
		if !ok || id == "" || material == "" {
			return nil, fmt.Errorf("key %d is not written as id:base64-key", n)
		}
		if !keyIDPattern.MatchString(id) {
			return nil, fmt.Errorf("key %d: the id may only hold letters, digits, '.', '_' and '-' (at most 64)", n)
		}
		if _, dup := r.byID[id]; dup {
			return nil, fmt.Errorf("key %d: id %q is listed twice", n, id)
		}
		raw, err := decodeKey(material)
		if err != nil {
			return nil, fmt.Errorf("key %d (%s): %v; make one with: openssl rand -base64 32", n, id, err)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("key %d (%s): %v", n, id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("key %d (%s): %v", n, id, err)
		}
		r.keys = append(r.keys, Key{ID: id, aead: aead, b64: material})
		r.byID[id] = aead
	}
	return r, nil
}

// decodeKey accepts standard or URL-safe base64, padded or not, of exactly
// 32 bytes.
func decodeKey(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != keySize {
				return nil, fmt.Errorf("the key is %d bytes, not %d", len(b), keySize)
			}
			return b, nil
		}
	}
	return nil, errors.New("the key is not base64")
}

// Empty tells whether the keyring has no key (encryption off).
func (r *Keyring) Empty() bool { return r == nil || len(r.keys) == 0 }

// IDs lists the key ids, the encrypting one first.
func (r *Keyring) IDs() []string {
	if r == nil {
		return nil
	}
	ids := make([]string, len(r.keys))
	for i, k := range r.keys {
		ids[i] = k.ID
	}
	return ids
}

// Material lists each key as written in PAYLOAD_KEYS, for log redaction.
func (r *Keyring) Material() []string {
	if r == nil {
		return nil
	}
	out := make([]string, len(r.keys))
	for i, k := range r.keys {
		out[i] = k.b64
	}
	return out
}

// Codec is a converter.PayloadCodec that encrypts with the first key of its
// keyring and decrypts with any. With an empty keyring it encrypts nothing
// and reports encrypted payloads as unreadable, by key id.
type Codec struct{ ring *Keyring }

var _ converter.PayloadCodec = (*Codec)(nil)

// New makes a codec over ring (nil is an empty keyring).
func New(ring *Keyring) *Codec {
	if ring == nil {
		ring = &Keyring{byID: map[string]cipher.AEAD{}}
	}
	return &Codec{ring: ring}
}

// Encode encrypts every payload with the first key.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	if c.ring.Empty() {
		return payloads, nil
	}
	key := c.ring.keys[0]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("payload encryption: %w", err)
		}
		nonce := make([]byte, nonceSize, nonceSize+len(plain)+key.aead.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("payload encryption: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				MetadataEncoding: []byte(EncodingEncrypted),
				MetadataKeyID:    []byte(key.ID),
			},
			Data: key.aead.Seal(nonce, nonce, plain, []byte(key.ID)),
		}
	}
	return out, nil
}

// Decode decrypts encrypted payloads and passes the others through.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[MetadataEncoding]) != EncodingEncrypted {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		if id == "" {
			return nil, errors.New("payload decryption: the payload is encrypted but names no key id (" + MetadataKeyID + " metadata missing)")
		}
		aead, ok := c.ring.byID[id]
		if !ok {
			if c.ring.Empty() {
				return nil, fmt.Errorf("payload decryption: the payload is encrypted with key %q and PAYLOAD_KEYS is empty", id)
			}
			return nil, fmt.Errorf("payload decryption: the payload is encrypted with key %q, which is not in PAYLOAD_KEYS (it has %s)",
				id, strings.Join(c.ring.IDs(), ", "))
		}
		data := p.GetData()
		if len(data) < nonceSize+aead.Overhead() {
			return nil, fmt.Errorf("payload decryption: key %q: the payload is too short to be encrypted data", id)
		}
		plain, err := aead.Open(nil, data[:nonceSize], data[nonceSize:], []byte(id))
		if err != nil {
			return nil, fmt.Errorf("payload decryption: key %q does not open the payload (a different key under the same id, or damaged data)", id)
		}
		dec := &commonpb.Payload{}
		if err := proto.Unmarshal(plain, dec); err != nil {
			return nil, fmt.Errorf("payload decryption: key %q: the decrypted payload does not parse: %v", id, err)
		}
		out[i] = dec
	}
	return out, nil
}

// DataConverter is the SDK's default converter with this codec beneath it.
func (c *Codec) DataConverter() converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// ApplyTo sets the client's data converter to this codec's and its failure
// converter to one that moves failure messages and stack traces into an
// encoded (so encrypted) attribute: error texts may quote comments or names.
// The UI and CLI show them through the codec server.
func (c *Codec) ApplyTo(opts *client.Options) {
	dc := c.DataConverter()
	opts.DataConverter = dc
	opts.FailureConverter = temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter:          dc,
		EncodeCommonAttributes: !c.ring.Empty(),
	})
}

// NewKeySpec makes a PAYLOAD_KEYS value with one new random key named id.
func NewKeySpec(id string) string {
	b := make([]byte, keySize)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return id + ":" + base64.StdEncoding.EncodeToString(b)
}

// LoadOrCreateKeyFile reads a PAYLOAD_KEYS value from path, or writes a new
// one-key value there (mode 0600) when the file does not exist. The demo
// keeps its key this way so that its persistent dev server's histories stay
// readable from one run to the next. created tells whether it was made now.
func LoadOrCreateKeyFile(path, id string) (spec string, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		spec = strings.TrimSpace(string(b))
		if _, perr := ParseKeys(spec); perr != nil || spec == "" {
			if perr == nil {
				perr = errors.New("no key")
			}
			return "", false, fmt.Errorf("payload key file %s: %v", path, perr)
		}
		return spec, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("payload key file: %w", err)
	}
	spec = NewKeySpec(id)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("payload key file: %w", err)
	}
	if _, err := f.WriteString(spec + "\n"); err != nil {
		f.Close()
		return "", false, fmt.Errorf("payload key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", false, fmt.Errorf("payload key file: %w", err)
	}
	return spec, true, nil
}
