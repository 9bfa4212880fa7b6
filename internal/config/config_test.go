package config

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"hpsync/internal/sandbox/seed"
	"hpsync/internal/statusmap"
)

// allVars is every variable Config reads.
var allVars = []string{
	"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_TASK_QUEUE",
	"HYPERPROOF_API_URL", "HYPERPROOF_TOKEN_URL", "HYPERPROOF_CLIENT_ID", "HYPERPROOF_CLIENT_SECRET",
	"SERVICENOW_INSTANCE_URL", "SERVICENOW_USERNAME", "SERVICENOW_PASSWORD", "SERVICENOW_TABLE",
	"STATUS_MAP_FILE", "WEBHOOK_ADDR", "WEBHOOK_SECRET",
	"HYPERPROOF_POLL_INTERVAL", "SERVICENOW_POLL_INTERVAL", "SERVICENOW_SYNC_WORK_NOTES",
	"SANDBOX", "SANDBOX_HYPERPROOF_ADDR", "SANDBOX_SERVICENOW_ADDR",
	"PAYLOAD_KEYS", "CODEC_ADDR", "CODEC_CORS_ORIGIN", "METRICS_ADDR",
}

const (
	clientSecret  = "hp-client-secret-7f3a"
	snPassword    = "sn-password-9c1d"
	webhookSecret = "webhook-secret-5e8b"
	payloadKey    = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq8w=" // 32 bytes
	payloadKeyOld = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" // 32 bytes
	shortKey      = "c2l4dGVlbiBieXRlIGtleQ=="                     // 16 bytes
)

// requiredEnv is the smallest production (non-sandbox) environment.
var requiredEnv = map[string]string{
	"HYPERPROOF_CLIENT_ID":     "client-id",
	"HYPERPROOF_CLIENT_SECRET": clientSecret,
	"SERVICENOW_INSTANCE_URL":  "https://acme.service-now.com",
	"SERVICENOW_USERNAME":      "hyperproof.integration",
	"SERVICENOW_PASSWORD":      snPassword,
	"WEBHOOK_SECRET":           webhookSecret,
}

// setEnv clears every config variable (whatever the machine has set), then
// sets base overlaid with over; a value of "<unset>" in over removes the
// variable again. t.Setenv restores the environment afterwards.
func setEnv(t *testing.T, base, over map[string]string) {
	t.Helper()
	for _, k := range allVars {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for _, m := range []map[string]string{base, over} {
		for k, v := range m {
			if v == "<unset>" {
				os.Unsetenv(k)
				continue
			}
			t.Setenv(k, v)
		}
	}
}

func TestLoadDefaults(t *testing.T) {
	setEnv(t, requiredEnv, nil)
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		TemporalAddress:             "127.0.0.1:7233",
		TemporalNamespace:           "default",
		TemporalTaskQueue:           "hyperproof-servicenow",
		HyperproofAPIURL:            "https://api.hyperproof.app",
		HyperproofTokenURL:          "https://accounts.hyperproof.app/oauth/token",
		HyperproofClientID:          "client-id",
		HyperproofClientSecret:      clientSecret,
		ServiceNowInstanceURL:       "https://acme.service-now.com",
		ServiceNowUsername:          "hyperproof.integration",
		ServiceNowPassword:          snPassword,
		ServiceNowTable:             "sc_task",
		StatusMapFile:               "",
		WebhookAddr:                 "127.0.0.1:8088",
		WebhookSecret:               webhookSecret,
		HyperproofPollInterval:      15 * time.Second,
		ServiceNowPollInterval:      60 * time.Second,
		ServiceNowSyncWorkNotes:     false,
		MaxProofBytes:               100 << 20,
		HyperproofRequestsPerSecond: 10,
		ServiceNowRequestsPerSecond: 20,
		Sandbox:                     false,
		SandboxHyperproofAddr:       "127.0.0.1:8091",
		SandboxServiceNowAddr:       "127.0.0.1:8092",
		MetricsAddr:                 "127.0.0.1:9464",
		StatusMap:                   statusmap.Default(),
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Load() =\n%#v\nwant\n%#v", fieldsOf(c), fieldsOf(want))
	}
}

// fieldsOf shows every field, secrets included, for a failure message of a
// test whose secrets are fake.
func fieldsOf(c Config) string {
	type plain Config
	return fmt.Sprintf("%+v", plain(c))
}

func TestLoadOverrides(t *testing.T) {
	dir := t.TempDir()
	mapFile := filepath.Join(dir, "map.json")
	if err := os.WriteFile(mapFile, []byte(`{"problem_task": {"todo": ["151"], "inProgress": ["154"], "completed": ["157"]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	setEnv(t, requiredEnv, map[string]string{
		"TEMPORAL_ADDRESS":           "temporal:7233",
		"SERVICENOW_TABLE":           "problem_task",
		"STATUS_MAP_FILE":            mapFile,
		"HYPERPROOF_POLL_INTERVAL":   "2m",
		"SERVICENOW_POLL_INTERVAL":   "1500ms",
		"SERVICENOW_SYNC_WORK_NOTES": "true",
		"WEBHOOK_ADDR":               "", // set but empty: webhooks off
		"WEBHOOK_SECRET":             "<unset>",
	})
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.TemporalAddress != "temporal:7233" || c.ServiceNowTable != "problem_task" ||
		c.HyperproofPollInterval != 2*time.Minute || c.ServiceNowPollInterval != 1500*time.Millisecond ||
		!c.ServiceNowSyncWorkNotes || c.WebhookAddr != "" || c.WebhookSecret != "" {
		t.Fatalf("overrides not applied: %s", fieldsOf(c))
	}
	if v, _ := c.StatusMap.First("problem_task", statusmap.GroupInProgress); v != "154" {
		t.Errorf("status map file not applied: problem_task inProgress first = %q", v)
	}
	if !reflect.DeepEqual(c.StatusMap["sc_task"], statusmap.Default()["sc_task"]) {
		t.Errorf("sc_task lost its built-in entry: %#v", c.StatusMap["sc_task"])
	}
}

func TestLoadSandbox(t *testing.T) {
	tests := []struct {
		name          string
		env           map[string]string
		hpAddr, snAdr string
		secret        string // "" = expect a generated one
	}{
		{name: "nothing else set", env: map[string]string{"SANDBOX": "true"},
			hpAddr: "127.0.0.1:8091", snAdr: "127.0.0.1:8092"},
		{name: "own addresses and secret, real credentials replaced", env: map[string]string{
			"SANDBOX": "1", "SANDBOX_HYPERPROOF_ADDR": "localhost:9001", "SANDBOX_SERVICENOW_ADDR": "localhost:9002",
			"WEBHOOK_SECRET": webhookSecret, "HYPERPROOF_CLIENT_ID": "real", "HYPERPROOF_CLIENT_SECRET": clientSecret,
			"HYPERPROOF_API_URL": "https://api.hyperproof.app", "SERVICENOW_INSTANCE_URL": "https://acme.service-now.com",
			"SERVICENOW_PASSWORD": snPassword,
		}, hpAddr: "localhost:9001", snAdr: "localhost:9002", secret: webhookSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, nil, tt.env)
			c, err := Load()
			if err != nil {
				t.Fatal(err)
			}
			checks := []struct{ field, got, want string }{
				{"HyperproofAPIURL", c.HyperproofAPIURL, "http://" + tt.hpAddr},
				{"HyperproofTokenURL", c.HyperproofTokenURL, "http://" + tt.hpAddr + "/oauth/token"},
				{"HyperproofClientID", c.HyperproofClientID, seed.IntegrationClientID},
				{"HyperproofClientSecret", c.HyperproofClientSecret, seed.IntegrationClientSecret},
				{"ServiceNowInstanceURL", c.ServiceNowInstanceURL, "http://" + tt.snAdr},
				{"ServiceNowUsername", c.ServiceNowUsername, seed.SNIntegrationUser},
				{"ServiceNowPassword", c.ServiceNowPassword, seed.SNIntegrationPassword},
			}
			for _, ch := range checks {
				if ch.got != ch.want {
					t.Errorf("%s = %q, want %q", ch.field, ch.got, ch.want)
				}
			}
			if !c.Sandbox {
				t.Error("Sandbox = false")
			}
			if tt.secret != "" {
				if c.WebhookSecret != tt.secret {
					t.Errorf("WebhookSecret = %q, want the one given", c.WebhookSecret)
				}
				return
			}
			if b, err := hex.DecodeString(c.WebhookSecret); err != nil || len(b) < 16 {
				t.Errorf("generated WebhookSecret %q is not hex of at least 16 bytes", c.WebhookSecret)
			}
			c2, err := Load()
			if err != nil {
				t.Fatal(err)
			}
			if c2.WebhookSecret == c.WebhookSecret {
				t.Error("two loads generated the same WebhookSecret")
			}
		})
	}
}

func TestApplySandboxWithoutSandboxDoesNothing(t *testing.T) {
	c := Config{HyperproofAPIURL: "https://api.hyperproof.app"}
	c.ApplySandbox()
	if !reflect.DeepEqual(c, Config{HyperproofAPIURL: "https://api.hyperproof.app"}) {
		t.Fatalf("ApplySandbox changed a non-sandbox config: %s", fieldsOf(c))
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	badMap := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(badMap, []byte(`{"sc_task": {"inProgress": ["3"], "completed": ["3"]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	noMap := filepath.Join(dir, "missing.json")

	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"missing HYPERPROOF_CLIENT_ID", map[string]string{"HYPERPROOF_CLIENT_ID": "<unset>"},
			"config: HYPERPROOF_CLIENT_ID is required (or set SANDBOX=true)"},
		{"missing HYPERPROOF_CLIENT_SECRET", map[string]string{"HYPERPROOF_CLIENT_SECRET": "<unset>"},
			"config: HYPERPROOF_CLIENT_SECRET is required (or set SANDBOX=true)"},
		{"missing SERVICENOW_INSTANCE_URL", map[string]string{"SERVICENOW_INSTANCE_URL": "<unset>"},
			"config: SERVICENOW_INSTANCE_URL is required (or set SANDBOX=true)"},
		{"empty SERVICENOW_INSTANCE_URL", map[string]string{"SERVICENOW_INSTANCE_URL": ""},
			"config: SERVICENOW_INSTANCE_URL is required (or set SANDBOX=true)"},
		{"missing SERVICENOW_USERNAME", map[string]string{"SERVICENOW_USERNAME": "<unset>"},
			"config: SERVICENOW_USERNAME is required (or set SANDBOX=true)"},
		{"missing SERVICENOW_PASSWORD", map[string]string{"SERVICENOW_PASSWORD": "<unset>"},
			"config: SERVICENOW_PASSWORD is required (or set SANDBOX=true)"},
		{"missing WEBHOOK_SECRET", map[string]string{"WEBHOOK_SECRET": "<unset>"},
			"config: WEBHOOK_SECRET is required when WEBHOOK_ADDR is set (or set WEBHOOK_ADDR= to turn webhooks off, or SANDBOX=true)"},
		{"bad HYPERPROOF_POLL_INTERVAL", map[string]string{"HYPERPROOF_POLL_INTERVAL": "often"},
			`config: HYPERPROOF_POLL_INTERVAL: "often" is not a duration (write e.g. 15s or 1m)`},
		{"unitless SERVICENOW_POLL_INTERVAL", map[string]string{"SERVICENOW_POLL_INTERVAL": "60"},
			`config: SERVICENOW_POLL_INTERVAL: "60" is not a duration (write e.g. 15s or 1m)`},
		{"zero HYPERPROOF_POLL_INTERVAL", map[string]string{"HYPERPROOF_POLL_INTERVAL": "0s"},
			"config: HYPERPROOF_POLL_INTERVAL must be greater than 0, not 0s"},
		{"negative SERVICENOW_POLL_INTERVAL", map[string]string{"SERVICENOW_POLL_INTERVAL": "-5s"},
			"config: SERVICENOW_POLL_INTERVAL must be greater than 0, not -5s"},
		{"zero SERVICENOW_REQUESTS_PER_SECOND", map[string]string{"SERVICENOW_REQUESTS_PER_SECOND": "0"},
			"config: SERVICENOW_REQUESTS_PER_SECOND must be greater than 0, not 0"},
		{"bad SANDBOX_FAULTS", map[string]string{"SANDBOX_FAULTS": "servicenow:*:5xx=2"},
			`config: SANDBOX_FAULTS: faults: clause 1 "servicenow:*:5xx=2": 5xx: share 2 is not in [0,1]`},
		{"zero HYPERPROOF_MAX_PROOF_BYTES", map[string]string{"HYPERPROOF_MAX_PROOF_BYTES": "0"},
			"config: HYPERPROOF_MAX_PROOF_BYTES must be greater than 0, not 0"},
		{"bad SANDBOX", map[string]string{"SANDBOX": "yes"},
			`config: SANDBOX: "yes" is not a boolean (write true or false)`},
		{"bad SERVICENOW_SYNC_WORK_NOTES", map[string]string{"SERVICENOW_SYNC_WORK_NOTES": "on"},
			`config: SERVICENOW_SYNC_WORK_NOTES: "on" is not a boolean (write true or false)`},
		{"bad SERVICENOW_TABLE", map[string]string{"SERVICENOW_TABLE": "incident"},
			`config: SERVICENOW_TABLE "incident" must be one of incident_task, problem_task, sc_task`},
		{"empty SERVICENOW_TABLE", map[string]string{"SERVICENOW_TABLE": ""},
			`config: SERVICENOW_TABLE "" must be one of incident_task, problem_task, sc_task`},
		{"bad status map file", map[string]string{"STATUS_MAP_FILE": badMap},
			`config: STATUS_MAP_FILE: status map file ` + badMap + `: sc_task: value "3" is in both inProgress and completed`},
		{"missing status map file", map[string]string{"STATUS_MAP_FILE": noMap},
			`config: STATUS_MAP_FILE: status map file ` + noMap + `: no such file or directory`},
		{"relative HYPERPROOF_API_URL", map[string]string{"HYPERPROOF_API_URL": "api.hyperproof.app"},
			"config: HYPERPROOF_API_URL must be an absolute http:// or https:// URL"},
		{"ftp HYPERPROOF_TOKEN_URL", map[string]string{"HYPERPROOF_TOKEN_URL": "ftp://accounts.hyperproof.app/token"},
			"config: HYPERPROOF_TOKEN_URL must be an absolute http:// or https:// URL"},
		{"SERVICENOW_INSTANCE_URL without host", map[string]string{"SERVICENOW_INSTANCE_URL": "https:///path"},
			"config: SERVICENOW_INSTANCE_URL must name a host"},
		{"unparsable SERVICENOW_INSTANCE_URL", map[string]string{"SERVICENOW_INSTANCE_URL": "https://user:" + snPassword + "@acme.service-now.com:port/"},
			"config: SERVICENOW_INSTANCE_URL is not a valid URL"},
		{"bad WEBHOOK_ADDR", map[string]string{"WEBHOOK_ADDR": "8088"},
			`config: WEBHOOK_ADDR "8088" must be host:port`},
		{"empty TEMPORAL_ADDRESS", map[string]string{"TEMPORAL_ADDRESS": ""},
			"config: TEMPORAL_ADDRESS must not be empty"},
		{"empty TEMPORAL_TASK_QUEUE", map[string]string{"TEMPORAL_TASK_QUEUE": " "},
			"config: TEMPORAL_TASK_QUEUE must not be empty"},
		{"bad SANDBOX_SERVICENOW_ADDR", map[string]string{"SANDBOX": "true", "SANDBOX_SERVICENOW_ADDR": "localhost"},
			`config: SANDBOX_SERVICENOW_ADDR "localhost" must be host:port`},
		{"PAYLOAD_KEYS without id", map[string]string{"PAYLOAD_KEYS": payloadKey},
			"config: PAYLOAD_KEYS: key 1 is not written as id:base64-key"},
		{"PAYLOAD_KEYS short key", map[string]string{"PAYLOAD_KEYS": "k2:" + payloadKey + ",k1:" + shortKey},
			"config: PAYLOAD_KEYS: key 2 (k1): the key is 16 bytes, not 32; make one with: openssl rand -base64 32"},
		{"PAYLOAD_KEYS not base64", map[string]string{"PAYLOAD_KEYS": "k1:" + payloadKey + "!"},
			"config: PAYLOAD_KEYS: key 1 (k1): the key is not base64; make one with: openssl rand -base64 32"},
		{"PAYLOAD_KEYS twice the same id", map[string]string{"PAYLOAD_KEYS": "k1:" + payloadKey + ",k1:" + payloadKey},
			`config: PAYLOAD_KEYS: key 2: id "k1" is listed twice`},
		{"CODEC_ADDR without keys", map[string]string{"CODEC_ADDR": "127.0.0.1:8081"},
			"config: CODEC_ADDR is set but PAYLOAD_KEYS is empty (the codec server would have no key)"},
		{"bad CODEC_ADDR", map[string]string{"PAYLOAD_KEYS": "k1:" + payloadKey, "CODEC_ADDR": "8081"},
			`config: CODEC_ADDR "8081" must be host:port`},
		{"CODEC_CORS_ORIGIN without CODEC_ADDR", map[string]string{"CODEC_CORS_ORIGIN": "http://localhost:8080"},
			"config: CODEC_CORS_ORIGIN is set but CODEC_ADDR is empty (no codec server to answer the UI)"},
		{"CODEC_CORS_ORIGIN with a path", map[string]string{"PAYLOAD_KEYS": "k1:" + payloadKey, "CODEC_ADDR": "0.0.0.0:8081",
			"CODEC_CORS_ORIGIN": "http://localhost:8080,http://localhost:8080/namespaces"},
			`config: CODEC_CORS_ORIGIN "http://localhost:8080/namespaces" must be an origin such as http://localhost:8080 (scheme and host, no path)`},
		{"CODEC_CORS_ORIGIN star", map[string]string{"PAYLOAD_KEYS": "k1:" + payloadKey, "CODEC_ADDR": "0.0.0.0:8081", "CODEC_CORS_ORIGIN": "*"},
			`config: CODEC_CORS_ORIGIN "*" must be an origin such as http://localhost:8080 (scheme and host, no path)`},
		{"bad METRICS_ADDR", map[string]string{"METRICS_ADDR": "9464"},
			`config: METRICS_ADDR "9464" must be host:port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, requiredEnv, tt.env)
			c, err := Load()
			if err == nil {
				t.Fatalf("Load succeeded: %v", c)
			}
			msg := err.Error()
			if msg != tt.want {
				t.Errorf("error = %q\nwant    %q", msg, tt.want)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			for _, s := range []string{clientSecret, snPassword, webhookSecret, payloadKey, shortKey} {
				if strings.Contains(msg, s) {
					t.Errorf("error shows a secret: %q", msg)
				}
			}
		})
	}
}

func TestValidateWithoutStatusMap(t *testing.T) {
	setEnv(t, requiredEnv, nil)
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	c.StatusMap = nil
	if err := c.Validate(); err == nil || err.Error() != "config: STATUS_MAP_FILE: no status map loaded" {
		t.Fatalf("Validate() = %v", err)
	}
	c.StatusMap = statusmap.Map{"incident_task": statusmap.Default()["incident_task"]}
	if err := c.Validate(); err == nil || err.Error() != `config: SERVICENOW_TABLE "sc_task" has no entry in the status map` {
		t.Fatalf("Validate() = %v", err)
	}
}

func TestStringHidesSecrets(t *testing.T) {
	const urlPassword = "url-password-3b6e"
	setEnv(t, requiredEnv, map[string]string{
		"HYPERPROOF_API_URL": "https://proxy-user:" + urlPassword + "@api.hyperproof.app",
		"PAYLOAD_KEYS":       "k2:" + payloadKey + ",k1:" + payloadKeyOld,
	})
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	var jsonLog, textLog, marshalled bytes.Buffer
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("start", "config", c)
	slog.New(slog.NewTextHandler(&textLog, nil)).Info("start", "config", c)
	if err := json.NewEncoder(&marshalled).Encode(c); err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"String()":     c.String(),
		"%v":           fmt.Sprintf("%v", c),
		"%+v":          fmt.Sprintf("%+v", c),
		"%#v":          fmt.Sprintf("%#v", c),
		"%s of *c":     fmt.Sprintf("%s", &c),
		"slog JSON":    jsonLog.String(),
		"slog text":    textLog.String(),
		"json.Marshal": marshalled.String(),
	}
	for name, out := range outputs {
		secrets := []string{clientSecret, snPassword, webhookSecret, payloadKey, payloadKeyOld, urlPassword}
		if name == "json.Marshal" {
			secrets = secrets[:5] // json:"-" covers the secret fields; URLs are marshalled as they are
		}
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s shows a secret: %s", name, out)
			}
		}
	}
	s := c.String()
	for _, want := range []string{
		`HYPERPROOF_CLIENT_SECRET="[redacted]"`, `SERVICENOW_PASSWORD="[redacted]"`, `WEBHOOK_SECRET="[redacted]"`,
		`HYPERPROOF_CLIENT_ID="client-id"`, `SERVICENOW_USERNAME="hyperproof.integration"`,
		`TEMPORAL_ADDRESS="127.0.0.1:7233"`, `HYPERPROOF_API_URL="https://proxy-user:xxxxx@api.hyperproof.app"`, `STATUS_MAP_FILE="(built-in)"`, `SANDBOX="false"`,
		`PAYLOAD_KEYS="k2:[redacted],k1:[redacted]"`, `CODEC_ADDR=""`, `METRICS_ADDR="127.0.0.1:9464"`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("String() lacks %s: %s", want, s)
		}
	}
	if strings.Contains(s, "\n") {
		t.Errorf("String() is not one line: %q", s)
	}
}

func TestEncryptionAndMetricsSettings(t *testing.T) {
	setEnv(t, requiredEnv, map[string]string{
		"PAYLOAD_KEYS":      " k2:" + payloadKey + " , k1:" + payloadKeyOld,
		"CODEC_ADDR":        "0.0.0.0:8081",
		"CODEC_CORS_ORIGIN": "http://localhost:8080, https://temporal.example.com/",
		"METRICS_ADDR":      "", // set but empty: metrics off
	})
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Keyring().IDs(), ","); got != "k2,k1" {
		t.Errorf("key ids %q, want k2,k1 (the first encrypts)", got)
	}
	if got := strings.Join(c.CodecOrigins(), " "); got != "http://localhost:8080 https://temporal.example.com" {
		t.Errorf("origins %q", got)
	}
	if c.CodecAddr != "0.0.0.0:8081" || c.MetricsAddr != "" {
		t.Errorf("CODEC_ADDR %q, METRICS_ADDR %q", c.CodecAddr, c.MetricsAddr)
	}
	secrets := c.Secrets()
	for _, want := range []string{clientSecret, snPassword, webhookSecret, payloadKey, payloadKeyOld} {
		if !slices.Contains(secrets, want) {
			t.Errorf("Secrets() lacks %s", want)
		}
	}
	if slices.Contains(secrets, "") {
		t.Error("Secrets() holds an empty value")
	}

	// No PAYLOAD_KEYS: no encryption, an empty keyring, nothing to serve.
	setEnv(t, requiredEnv, nil)
	c, err = Load()
	if err != nil {
		t.Fatal(err)
	}
	if !c.Keyring().Empty() || c.CodecAddr != "" || c.CodecCORSOrigin != "" {
		t.Errorf("defaults: keys %v, CODEC_ADDR %q", c.Keyring().IDs(), c.CodecAddr)
	}
	// An invalid PAYLOAD_KEYS is still listed as a secret, key by key.
	c.PayloadKeys = "k1:" + shortKey
	if !slices.Contains(c.Secrets(), shortKey) {
		t.Error("the key of an invalid PAYLOAD_KEYS is not a secret")
	}
}
