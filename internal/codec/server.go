package codec

import (
	"crypto/subtle"
	"net/http"
	"slices"

	"go.temporal.io/sdk/converter"
)

// Handler serves the codec as Temporal's remote codec protocol (POST /encode and
// /decode of JSON payloads), which the Web UI calls from the operator's browser.
// token, when set, is required as a bearer token (the Web UI sends the operator's
// access token when told to); origins are the Web UI origins allowed to call it
// (CORS), e.g. http://127.0.0.1:8233.
func (c *Codec) Handler(token string, origins []string) http.Handler {
	codecHandler := converter.NewPayloadCodecHTTPHandler(c)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && slices.Contains(origins, o) {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", o)
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Set("Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization")
			h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
			h.Set("Vary", "Origin")
		}
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if token != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+token)) != 1 {
			http.Error(w, "the codec requires the bearer token of REPLICATOR_CODEC_TOKEN", http.StatusUnauthorized)
			return
		}
		codecHandler.ServeHTTP(w, r)
	})
}
