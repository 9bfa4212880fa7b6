// Package config reads the worker's and starter's settings from the
// environment (envconfig), as fixed by shared/design/interfaces.md.
//
// A missing or invalid setting is reported as one line naming the variable
// and what is wrong. Secrets never appear in errors or in String().
package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"hpsync/internal/codec"
	"hpsync/internal/sandbox/faults"
	"hpsync/internal/sandbox/seed"
	"hpsync/internal/statusmap"
)

// Config is every setting of interfaces.md. Secret fields are tagged
// json:"-" so that a Config that ends up marshalled (for example into workflow
// history) does not carry them.
type Config struct {
	TemporalAddress   string `envconfig:"TEMPORAL_ADDRESS" default:"127.0.0.1:7233"`
	TemporalNamespace string `envconfig:"TEMPORAL_NAMESPACE" default:"default"`
	TemporalTaskQueue string `envconfig:"TEMPORAL_TASK_QUEUE" default:"hyperproof-servicenow"`

	HyperproofAPIURL       string `envconfig:"HYPERPROOF_API_URL" default:"https://api.hyperproof.app"`
	HyperproofTokenURL     string `envconfig:"HYPERPROOF_TOKEN_URL" default:"https://accounts.hyperproof.app/oauth/token"`
	HyperproofClientID     string `envconfig:"HYPERPROOF_CLIENT_ID"`
	HyperproofClientSecret string `envconfig:"HYPERPROOF_CLIENT_SECRET" json:"-"`

	ServiceNowInstanceURL string `envconfig:"SERVICENOW_INSTANCE_URL"`
	ServiceNowUsername    string `envconfig:"SERVICENOW_USERNAME"`
	ServiceNowPassword    string `envconfig:"SERVICENOW_PASSWORD" json:"-"`
	ServiceNowTable       string `envconfig:"SERVICENOW_TABLE" default:"sc_task"`

	// StatusMapFile is the JSON status map; "" is the built-in map.
	StatusMapFile string `envconfig:"STATUS_MAP_FILE"`

	// WebhookAddr is where the worker listens for ServiceNow webhooks; ""
	// (WEBHOOK_ADDR set to nothing) turns the listener off.
	WebhookAddr   string `envconfig:"WEBHOOK_ADDR" default:"127.0.0.1:8088"`
	WebhookSecret string `envconfig:"WEBHOOK_SECRET" json:"-"`

	HyperproofPollInterval  time.Duration `envconfig:"HYPERPROOF_POLL_INTERVAL" default:"15s"`
	ServiceNowPollInterval  time.Duration `envconfig:"SERVICENOW_POLL_INTERVAL" default:"60s"`
	ServiceNowSyncWorkNotes bool          `envconfig:"SERVICENOW_SYNC_WORK_NOTES" default:"false"`
	// MaxProofBytes is the largest attachment carried into Hyperproof as
	// proof (default 100 MiB, the size Hyperproof's own SDK refuses at). A
	// larger one is not downloaded; a note says so on both tasks.
	MaxProofBytes int64 `envconfig:"HYPERPROOF_MAX_PROOF_BYTES" default:"104857600"`
	// Request pacing per Hyperproof organisation and per ServiceNow
	// instance, shared by every activity of the worker; a 429 holds all of
	// them back for as long as the server asks.
	HyperproofRequestsPerSecond float64 `envconfig:"HYPERPROOF_REQUESTS_PER_SECOND" default:"10"`
	ServiceNowRequestsPerSecond float64 `envconfig:"SERVICENOW_REQUESTS_PER_SECOND" default:"20"`

	// Sandbox: the worker also serves the built-in simulators and points
	// itself at them.
	Sandbox bool `envconfig:"SANDBOX" default:"false"`
	// SandboxHyperproofAddr is where the worker serves the Hyperproof
	// simulator in SANDBOX mode.
	SandboxHyperproofAddr string `envconfig:"SANDBOX_HYPERPROOF_ADDR" default:"127.0.0.1:8091"`
	// SandboxServiceNowAddr is where the worker serves the ServiceNow
	// simulator in SANDBOX mode.
	SandboxServiceNowAddr string `envconfig:"SANDBOX_SERVICENOW_ADDR" default:"127.0.0.1:8092"`
	// SandboxFaults injects faults into the simulators (grammar in package
	// internal/sandbox/faults), for the demo and crash tests.
	SandboxFaults string `envconfig:"SANDBOX_FAULTS"`

	// PayloadKeys encrypts Temporal payloads: "id:base64,id:base64", each key
	// 32 bytes; the first encrypts, all decrypt. "" is no encryption.
	PayloadKeys string `envconfig:"PAYLOAD_KEYS" json:"-"`
	// CodecAddr is where the worker serves the codec server (for the
	// Temporal UI and CLI); "" is off.
	CodecAddr string `envconfig:"CODEC_ADDR"`
	// CodecCORSOrigin lists the browser origins (the Temporal UI's address)
	// the codec server answers, comma-separated.
	CodecCORSOrigin string `envconfig:"CODEC_CORS_ORIGIN"`
	// MetricsAddr is where the worker serves Prometheus metrics at
	// /metrics; "" (METRICS_ADDR set to nothing) is off.
	MetricsAddr string `envconfig:"METRICS_ADDR" default:"127.0.0.1:9464"`

	// StatusMap is loaded from StatusMapFile by Load.
	StatusMap statusmap.Map `ignored:"true"`
}

// Load reads the environment, applies SANDBOX, loads the status map and
// validates. The error is one line naming the variable and what is wrong.
func Load() (Config, error) {
	var c Config
	if err := envconfig.Process("", &c); err != nil {
		return Config{}, processError(err)
	}
	if c.Sandbox {
		c.ApplySandbox()
	}
	m, err := statusmap.Load(c.StatusMapFile)
	if err != nil {
		return Config{}, fmt.Errorf("config: STATUS_MAP_FILE: %w", err)
	}
	c.StatusMap = m
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// processError rewrites envconfig's errors to the one-line shape of the
// others. Only non-string fields can fail to parse, and none of them is a
// secret, so the value may be shown.
func processError(err error) error {
	var pe *envconfig.ParseError
	if errors.As(err, &pe) {
		switch pe.TypeName {
		case "time.Duration":
			return fmt.Errorf("config: %s: %q is not a duration (write e.g. 15s or 1m)", pe.KeyName, pe.Value)
		case "bool":
			return fmt.Errorf("config: %s: %q is not a boolean (write true or false)", pe.KeyName, pe.Value)
		}
		return fmt.Errorf("config: %s: cannot read %q as %s", pe.KeyName, pe.Value, pe.TypeName)
	}
	return fmt.Errorf("config: %s", strings.Join(strings.Fields(err.Error()), " "))
}

// ApplySandbox, when Sandbox is set, points the integration at the built-in
// simulators and gives it their seeded credentials (replacing any others: the
// simulators know only these), and makes a random WebhookSecret when none is
// set. Without Sandbox it does nothing.
func (c *Config) ApplySandbox() {
	if !c.Sandbox {
		return
	}
	c.HyperproofAPIURL = "http://" + c.SandboxHyperproofAddr
	c.HyperproofTokenURL = "http://" + c.SandboxHyperproofAddr + "/oauth/token"
	c.HyperproofClientID = seed.IntegrationClientID
	c.HyperproofClientSecret = seed.IntegrationClientSecret
	c.ServiceNowInstanceURL = "http://" + c.SandboxServiceNowAddr
	c.ServiceNowUsername = seed.SNIntegrationUser
	c.ServiceNowPassword = seed.SNIntegrationPassword
	if c.WebhookSecret == "" {
		b := make([]byte, 32)
		rand.Read(b) // never fails (crypto/rand since Go 1.24)
		c.WebhookSecret = hex.EncodeToString(b)
	}
}

// Validate checks every setting; the first problem is returned as one line
// naming the variable.
func (c Config) Validate() error {
	for _, s := range []struct{ name, value string }{
		{"TEMPORAL_ADDRESS", c.TemporalAddress},
		{"TEMPORAL_NAMESPACE", c.TemporalNamespace},
		{"TEMPORAL_TASK_QUEUE", c.TemporalTaskQueue},
	} {
		if strings.TrimSpace(s.value) == "" {
			return fmt.Errorf("config: %s must not be empty", s.name)
		}
	}
	if c.Sandbox {
		if err := hostPort("SANDBOX_HYPERPROOF_ADDR", c.SandboxHyperproofAddr); err != nil {
			return err
		}
		if err := hostPort("SANDBOX_SERVICENOW_ADDR", c.SandboxServiceNowAddr); err != nil {
			return err
		}
	}
	if err := httpURL("HYPERPROOF_API_URL", c.HyperproofAPIURL); err != nil {
		return err
	}
	if err := httpURL("HYPERPROOF_TOKEN_URL", c.HyperproofTokenURL); err != nil {
		return err
	}
	for _, s := range []struct{ name, value string }{
		{"HYPERPROOF_CLIENT_ID", c.HyperproofClientID},
		{"HYPERPROOF_CLIENT_SECRET", c.HyperproofClientSecret},
		{"SERVICENOW_INSTANCE_URL", c.ServiceNowInstanceURL},
		{"SERVICENOW_USERNAME", c.ServiceNowUsername},
		{"SERVICENOW_PASSWORD", c.ServiceNowPassword},
	} {
		if s.value == "" {
			return c.missing(s.name)
		}
	}
	if err := httpURL("SERVICENOW_INSTANCE_URL", c.ServiceNowInstanceURL); err != nil {
		return err
	}

	// The built-in map names exactly the tables tasks may be created in.
	if tables := statusmap.Default().Tables(); !slices.Contains(tables, c.ServiceNowTable) {
		return fmt.Errorf("config: SERVICENOW_TABLE %q must be one of %s", c.ServiceNowTable, strings.Join(tables, ", "))
	}
	if c.StatusMap == nil {
		return errors.New("config: STATUS_MAP_FILE: no status map loaded")
	}
	if err := c.StatusMap.Validate(); err != nil {
		return fmt.Errorf("config: STATUS_MAP_FILE: %w", err)
	}
	if _, ok := c.StatusMap[c.ServiceNowTable]; !ok {
		return fmt.Errorf("config: SERVICENOW_TABLE %q has no entry in the status map", c.ServiceNowTable)
	}

	if c.WebhookAddr != "" {
		if err := hostPort("WEBHOOK_ADDR", c.WebhookAddr); err != nil {
			return err
		}
		if c.WebhookSecret == "" {
			if c.Sandbox {
				return errors.New("config: WEBHOOK_SECRET is empty in SANDBOX mode (ApplySandbox was not applied)")
			}
			return errors.New("config: WEBHOOK_SECRET is required when WEBHOOK_ADDR is set (or set WEBHOOK_ADDR= to turn webhooks off, or SANDBOX=true)")
		}
	}

	for _, d := range []struct {
		name  string
		value time.Duration
	}{
		{"HYPERPROOF_POLL_INTERVAL", c.HyperproofPollInterval},
		{"SERVICENOW_POLL_INTERVAL", c.ServiceNowPollInterval},
	} {
		if d.value <= 0 {
			return fmt.Errorf("config: %s must be greater than 0, not %s", d.name, d.value)
		}
	}
	for _, r := range []struct {
		name  string
		value float64
	}{
		{"HYPERPROOF_REQUESTS_PER_SECOND", c.HyperproofRequestsPerSecond},
		{"SERVICENOW_REQUESTS_PER_SECOND", c.ServiceNowRequestsPerSecond},
	} {
		if r.value <= 0 {
			return fmt.Errorf("config: %s must be greater than 0, not %v", r.name, r.value)
		}
	}
	if _, err := faults.Parse(c.SandboxFaults); err != nil {
		return fmt.Errorf("config: SANDBOX_FAULTS: %v", err)
	}
	if c.MaxProofBytes <= 0 {
		return fmt.Errorf("config: HYPERPROOF_MAX_PROOF_BYTES must be greater than 0, not %d", c.MaxProofBytes)
	}
	return c.validateTelemetry()
}

// validateTelemetry checks the encryption, codec server and metrics settings.
func (c Config) validateTelemetry() error {
	ring, err := codec.ParseKeys(c.PayloadKeys)
	if err != nil {
		return fmt.Errorf("config: PAYLOAD_KEYS: %v", err)
	}
	if c.CodecAddr != "" {
		if err := hostPort("CODEC_ADDR", c.CodecAddr); err != nil {
			return err
		}
		if ring.Empty() {
			return errors.New("config: CODEC_ADDR is set but PAYLOAD_KEYS is empty (the codec server would have no key)")
		}
	}
	if strings.TrimSpace(c.CodecCORSOrigin) != "" {
		if c.CodecAddr == "" {
			return errors.New("config: CODEC_CORS_ORIGIN is set but CODEC_ADDR is empty (no codec server to answer the UI)")
		}
		for _, o := range codec.ParseOrigins(c.CodecCORSOrigin) {
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
				u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
				return fmt.Errorf("config: CODEC_CORS_ORIGIN %q must be an origin such as http://localhost:8080 (scheme and host, no path)", o)
			}
		}
	}
	if c.MetricsAddr != "" {
		if err := hostPort("METRICS_ADDR", c.MetricsAddr); err != nil {
			return err
		}
	}
	return nil
}

// Keyring is PAYLOAD_KEYS parsed (empty when encryption is off, or when the
// value is invalid, which Validate reports).
func (c Config) Keyring() *codec.Keyring {
	ring, err := codec.ParseKeys(c.PayloadKeys)
	if err != nil {
		ring, _ = codec.ParseKeys("")
	}
	return ring
}

// CodecOrigins is CODEC_CORS_ORIGIN as a list.
func (c Config) CodecOrigins() []string { return codec.ParseOrigins(c.CodecCORSOrigin) }

// Secrets lists every secret value of the settings (the client secret, the
// ServiceNow password, the webhook secret, PAYLOAD_KEYS and each of its
// keys) for log redaction. Empty values are left out.
func (c Config) Secrets() []string {
	var out []string
	for _, s := range []string{c.HyperproofClientSecret, c.ServiceNowPassword, c.WebhookSecret, c.PayloadKeys} {
		if strings.TrimSpace(s) != "" {
			out = append(out, s)
		}
	}
	if ring, err := codec.ParseKeys(c.PayloadKeys); err == nil {
		out = append(out, ring.Material()...)
	} else {
		// An invalid value is still secret: each entry's key part.
		for _, e := range strings.Split(c.PayloadKeys, ",") {
			if _, k, ok := strings.Cut(e, ":"); ok && strings.TrimSpace(k) != "" {
				out = append(out, strings.TrimSpace(k))
			}
		}
	}
	return out
}

// missing reports an empty required setting.
func (c Config) missing(name string) error {
	if c.Sandbox {
		return fmt.Errorf("config: %s is empty in SANDBOX mode (ApplySandbox was not applied)", name)
	}
	return fmt.Errorf("config: %s is required (or set SANDBOX=true)", name)
}

// httpURL checks an absolute http(s) URL with a host. The value is not echoed:
// a URL may carry credentials.
func httpURL(name, value string) error {
	u, err := url.Parse(value)
	switch {
	case err != nil:
		return fmt.Errorf("config: %s is not a valid URL", name)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("config: %s must be an absolute http:// or https:// URL", name)
	case u.Host == "":
		return fmt.Errorf("config: %s must name a host", name)
	}
	return nil
}

// hostPort checks a listen or dial address of the form host:port.
func hostPort(name, value string) error {
	if _, port, err := net.SplitHostPort(value); err != nil || port == "" {
		return fmt.Errorf("config: %s %q must be host:port", name, value)
	}
	return nil
}

const redacted = "[redacted]"

// String lists the settings for logging, by variable name, with the client
// secret, the ServiceNow password and the webhook secret shown as
// "[redacted]", PAYLOAD_KEYS as its key ids only (and any credentials inside
// URLs masked).
func (c Config) String() string {
	secret := func(s string) string {
		if s == "" {
			return ""
		}
		return redacted
	}
	statusMap := c.StatusMapFile
	if statusMap == "" {
		statusMap = "(built-in)"
	}
	var b strings.Builder
	for i, kv := range [][2]string{
		{"TEMPORAL_ADDRESS", c.TemporalAddress},
		{"TEMPORAL_NAMESPACE", c.TemporalNamespace},
		{"TEMPORAL_TASK_QUEUE", c.TemporalTaskQueue},
		{"HYPERPROOF_API_URL", safeURL(c.HyperproofAPIURL)},
		{"HYPERPROOF_TOKEN_URL", safeURL(c.HyperproofTokenURL)},
		{"HYPERPROOF_CLIENT_ID", c.HyperproofClientID},
		{"HYPERPROOF_CLIENT_SECRET", secret(c.HyperproofClientSecret)},
		{"SERVICENOW_INSTANCE_URL", safeURL(c.ServiceNowInstanceURL)},
		{"SERVICENOW_USERNAME", c.ServiceNowUsername},
		{"SERVICENOW_PASSWORD", secret(c.ServiceNowPassword)},
		{"SERVICENOW_TABLE", c.ServiceNowTable},
		{"STATUS_MAP_FILE", statusMap},
		{"WEBHOOK_ADDR", c.WebhookAddr},
		{"WEBHOOK_SECRET", secret(c.WebhookSecret)},
		{"HYPERPROOF_POLL_INTERVAL", c.HyperproofPollInterval.String()},
		{"SERVICENOW_POLL_INTERVAL", c.ServiceNowPollInterval.String()},
		{"SERVICENOW_SYNC_WORK_NOTES", fmt.Sprint(c.ServiceNowSyncWorkNotes)},
		{"HYPERPROOF_MAX_PROOF_BYTES", fmt.Sprint(c.MaxProofBytes)},
		{"HYPERPROOF_REQUESTS_PER_SECOND", fmt.Sprint(c.HyperproofRequestsPerSecond)},
		{"SERVICENOW_REQUESTS_PER_SECOND", fmt.Sprint(c.ServiceNowRequestsPerSecond)},
		{"SANDBOX_FAULTS", c.SandboxFaults},
		{"SANDBOX", fmt.Sprint(c.Sandbox)},
		{"SANDBOX_HYPERPROOF_ADDR", c.SandboxHyperproofAddr},
		{"SANDBOX_SERVICENOW_ADDR", c.SandboxServiceNowAddr},
		{"PAYLOAD_KEYS", payloadKeys(c.PayloadKeys)},
		{"CODEC_ADDR", c.CodecAddr},
		{"CODEC_CORS_ORIGIN", c.CodecCORSOrigin},
		{"METRICS_ADDR", c.MetricsAddr},
	} {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%q", kv[0], kv[1])
	}
	return b.String()
}

// payloadKeys shows PAYLOAD_KEYS as its key ids, "k2:[redacted],k1:[redacted]".
func payloadKeys(spec string) string {
	if strings.TrimSpace(spec) == "" {
		return ""
	}
	ring, err := codec.ParseKeys(spec)
	if err != nil {
		return redacted
	}
	ids := ring.IDs()
	for i, id := range ids {
		ids[i] = id + ":" + redacted
	}
	return strings.Join(ids, ",")
}

// GoString makes %#v as safe as %v.
func (c Config) GoString() string { return "config.Config{" + c.String() + "}" }

// LogValue makes slog (text and JSON handlers alike) log String(), never the
// raw fields.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// safeURL masks a password inside a URL; a value that does not parse is
// shown only as "[invalid URL]", since it may hold anything.
func safeURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "[invalid URL]"
	}
	return u.Redacted()
}
