package codec

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"
)

func key(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }

func TestRoundTripAndRotation(t *testing.T) {
	old, err := Parse("2026-11=" + key(1))
	if err != nil {
		t.Fatal(err)
	}
	dc := old.DataConverter()
	p, err := dc.ToPayload(map[string]string{"key": "customers/nl/invoice-7.pdf"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(p.Data, []byte("invoice-7")) || string(p.Metadata["encoding"]) != Encoding || string(p.Metadata[KeyIDMeta]) != "2026-11" {
		t.Fatalf("encoded payload carries plaintext or lacks its key ID: %v", p)
	}
	// The key rotates: the new one encrypts, the old one still decrypts.
	rotated, err := Parse("2026-12=" + key(2) + ", 2026-11=" + key(1))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := rotated.DataConverter().FromPayload(p, &got); err != nil || got["key"] != "customers/nl/invoice-7.pdf" {
		t.Fatalf("decode with the rotated keys: %v %v", got, err)
	}
	p2, _ := rotated.DataConverter().ToPayload("x")
	if string(p2.Metadata[KeyIDMeta]) != "2026-12" {
		t.Errorf("new payloads use key %q; want the first, 2026-12", p2.Metadata[KeyIDMeta])
	}
	// The old key alone cannot read what the new one wrote, and says which key it lacks.
	if err := old.DataConverter().FromPayload(p2, new(string)); err == nil || !strings.Contains(err.Error(), `"2026-12"`) {
		t.Errorf("decode without the key: %v", err)
	}
	// A damaged payload is refused, not decoded into garbage.
	p.Data[len(p.Data)-1] ^= 1
	if err := rotated.DataConverter().FromPayload(p, &got); err == nil {
		t.Error("a damaged payload decoded")
	}
	// Payloads written before the codec was on pass through.
	plain, _ := converter.GetDefaultDataConverter().ToPayload("before")
	var s string
	if err := rotated.DataConverter().FromPayload(plain, &s); err != nil || s != "before" {
		t.Errorf("plain payload: %q %v", s, err)
	}
}

func TestParseRefusesBadKeys(t *testing.T) {
	for _, spec := range []string{"", "nokey", "k=" + base64.StdEncoding.EncodeToString([]byte("short")), "k=not base64!", "a=" + key(1) + ",a=" + key(2), "=" + key(1)} {
		if _, err := Parse(spec); err == nil {
			t.Errorf("Parse(%q) accepted", spec)
		} else if strings.Contains(err.Error(), key(1)) {
			t.Errorf("the refusal of %q prints the key: %v", spec, err)
		}
	}
	c, err := Parse("# keys of the replicator\n2026-12=" + key(3) + "  # current\n")
	if err != nil || c.ActiveKeyID() != "2026-12" {
		t.Errorf("file form: %v %v", c, err)
	}
}

func TestHandlerDecodesForTheWebUI(t *testing.T) {
	c, _ := Parse("k1=" + key(4))
	p, _ := c.DataConverter().ToPayload("secret/path.pdf")
	body, _ := protojson.Marshal(&commonpb.Payloads{Payloads: []*commonpb.Payload{p}})
	srv := httptest.NewServer(c.Handler("tok", []string{"http://127.0.0.1:8233"}))
	defer srv.Close()
	post := func(auth string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/decode", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", "http://127.0.0.1:8233")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		resp.Body.Close()
		return resp, b.String()
	}
	if resp, _ := post(""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("decode without the token: %d", resp.StatusCode)
	}
	resp, out := post("Bearer tok")
	if resp.StatusCode != http.StatusOK || !strings.Contains(out, base64.StdEncoding.EncodeToString([]byte(`"secret/path.pdf"`))) {
		t.Errorf("decode with the token: %d %s", resp.StatusCode, out)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "http://127.0.0.1:8233" {
		t.Errorf("CORS for the Web UI: %v", resp.Header)
	}
}
