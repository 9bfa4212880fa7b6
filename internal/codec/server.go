package codec

import (
	"net/http"
	"slices"
	"strings"

	"go.temporal.io/sdk/converter"
)

// maxRequestBytes bounds one /encode or /decode request body. Temporal's
// own limit on a payload is 2 MiB by default; a request holds one event's
// payloads.
const maxRequestBytes = 32 << 20

// NewHTTPHandler serves the codec server protocol the Temporal UI and CLI
// speak: POST .../encode and POST .../decode with Payloads as JSON (any path
// prefix, so a per-namespace URL such as /default/decode works too). Browser
// requests from an origin in allowedOrigins get CORS headers (credentials
// and the Authorization and X-Namespace headers allowed), and their
// preflight is answered; other origins get none, so the browser refuses.
//
// Anyone who can reach the handler can decrypt what they post to it: serve
// it on an internal address only.
func NewHTTPHandler(c *Codec, allowedOrigins []string) http.Handler {
	inner := converter.NewPayloadCodecHTTPHandler(c)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" && slices.Contains(allowedOrigins, origin) {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Namespace")
			h.Set("Access-Control-Max-Age", "600")
			h.Add("Vary", "Origin")
		}
		path := r.URL.Path
		if !strings.HasSuffix(path, "/encode") && !strings.HasSuffix(path, "/decode") {
			http.NotFound(w, r)
			return
		}
		switch r.Method {
		case http.MethodOptions:
			w.WriteHeader(http.StatusNoContent)
			return
		case http.MethodPost:
		default:
			w.Header().Set("Allow", "POST, OPTIONS")
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBytes)
		inner.ServeHTTP(w, r)
	})
}

// ParseOrigins splits CODEC_CORS_ORIGIN ("http://localhost:8080,https://ui.example")
// into its origins, dropping blanks and a trailing slash.
func ParseOrigins(s string) []string {
	var out []string
	for _, o := range strings.Split(s, ",") {
		o = strings.TrimSuffix(strings.TrimSpace(o), "/")
		if o != "" {
			out = append(out, o)
		}
	}
	return out
}
