//go:build integration

package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// TestEncryptedHistories runs a worker and the starter with the payload codec: the
// run's history holds none of what the workflows carry in the clear (the file's
// SHA-256, its metadata, the error of a refused key), the starter still shows the
// results, and the worker's codec endpoint decodes a payload of that history for an
// operator with the token, and refuses one without it.
func TestEncryptedHistories(t *testing.T) {
	w := newWorld(t, worldOptions{})
	var k [32]byte
	_, _ = rand.Read(k[:])
	w.extraEnv = append(w.extraEnv, "REPLICATOR_CODEC_KEYS=test-key="+base64.StdEncoding.EncodeToString(k[:]), "REPLICATOR_CODEC_TOKEN=operator-token")
	w.workerArgs = []string{"--codec-addr", "127.0.0.1:0"}
	p := w.startWorker()
	sum := w.writeFile("docs/confidential.pdf", []byte("%PDF the content of a confidential document"))
	res, code := w.replicateWait("docs/confidential.pdf")
	if code != 0 || res[0].Outcome != "ok" || res[0].SHA256 != sum {
		t.Fatalf("replicate with the codec: exit %d %+v; want ok with SHA-256 %s (the starter decodes the result)", code, res, sum)
	}
	id := "replicate/" + w.policy + "/docs/confidential.pdf"
	raw := rawHistory(t, id)
	for what, s := range map[string]string{"the SHA-256": sum, "the source path": w.src} {
		for _, form := range encodings([]byte(s)) {
			if bytes.Contains(raw, form) {
				t.Errorf("the history holds %s in the clear (%q)", what, form)
			}
		}
	}

	// The codec endpoint, as the Web UI calls it.
	p.waitFor(t, "serving the payload codec")
	var addr string
	for _, line := range strings.Split(p.out.String(), "\n") {
		if i := strings.Index(line, " addr="); i >= 0 && strings.Contains(line, "serving the payload codec") {
			addr = strings.Fields(line[i+len(" addr="):])[0]
		}
	}
	h := history(t, id)
	input := h.Events[0].GetWorkflowExecutionStartedEventAttributes().GetInput()
	if input == nil || string(input.Payloads[0].Metadata["encoding"]) != "binary/encrypted" {
		t.Fatalf("the workflow's input is not encrypted: %v", input)
	}
	body, err := protojson.Marshal(input)
	must(t, err)
	decode := func(token string) (int, *commonpb.Payloads) {
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/decode", bytes.NewReader(body))
		must(t, err)
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		c := &http.Client{Timeout: 10 * time.Second}
		resp, err := c.Do(req)
		must(t, err)
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, nil
		}
		var out struct {
			Payloads []struct {
				Metadata map[string][]byte `json:"metadata"`
				Data     []byte            `json:"data"`
			} `json:"payloads"`
		}
		must(t, json.NewDecoder(resp.Body).Decode(&out))
		ps := &commonpb.Payloads{}
		for _, p := range out.Payloads {
			ps.Payloads = append(ps.Payloads, &commonpb.Payload{Metadata: p.Metadata, Data: p.Data})
		}
		return resp.StatusCode, ps
	}
	if code, _ := decode(""); code != http.StatusUnauthorized {
		t.Errorf("decode without the operator's token: %d; want 401", code)
	}
	code2, decoded := decode("operator-token")
	if code2 != http.StatusOK || len(decoded.Payloads) != 1 || !bytes.Contains(decoded.Payloads[0].Data, []byte("docs/confidential.pdf")) {
		t.Fatalf("decode with the token: %d %v; want the input with its key in the clear", code2, decoded)
	}
}
