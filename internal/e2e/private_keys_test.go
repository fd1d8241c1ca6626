//go:build integration

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
)

// TestPrivateKeys runs a policy with private_keys: true. Without the ID secret the
// starter refuses it, naming what to set. With the secret and the codec, the key
// replicates to all three servers (read back), two triggers of the key meet in one
// workflow, and nothing Temporal keeps in the clear reveals the key: not the workflow
// ID, not a search attribute, not a byte of the history.
func TestPrivateKeys(t *testing.T) {
	w := newWorld(t, worldOptions{extra: "    private_keys: true\n"})
	var k [32]byte
	_, _ = rand.Read(k[:])
	codecEnv := "REPLICATOR_CODEC_KEYS=test-key=" + base64.StdEncoding.EncodeToString(k[:])
	key := "employees/jane-doe/salary-2026.pdf"
	sum := w.writeFile(key, []byte("%PDF salary statement"))

	w.extraEnv = append(w.extraEnv, codecEnv)
	_, stderr, code := w.starterErr("replicate", "--policy", w.policy, key)
	if code != 2 || !strings.Contains(stderr, "REPLICATOR_ID_KEY") {
		t.Fatalf("replicate without the ID secret: exit %d, %q; want 2 naming REPLICATOR_ID_KEY", code, stderr)
	}

	w.extraEnv = append(w.extraEnv, "REPLICATOR_ID_KEY=e2e-id-secret-of-at-least-thirty-two-bytes")
	w.startWorker()
	res, code := w.replicateWait(key)
	if code != 0 || len(res) != 1 || res[0].Outcome != "ok" || res[0].SHA256 != sum {
		t.Fatalf("replicate a private key: exit %d %+v", code, res)
	}
	for _, dest := range []string{"s3", "gcs", "azure"} {
		if got := readSHA(t, w.destination(dest), key); got != sum {
			t.Errorf("%s holds SHA-256 %s, want %s", dest, got, sum)
		}
	}
	if res, code := w.replicateWait(key); code != 0 || res[0].Outcome != "skipped" {
		t.Fatalf("the second trigger: exit %d %+v; want skipped (unchanged)", code, res)
	}

	c := temporalClient(t)
	ctx := context.Background()
	// Visibility lags the runs a little: list until both runs show.
	var ids []string
	for deadline := time.Now().Add(30 * time.Second); ; {
		ids = nil
		var token []byte
		for {
			page, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
				Query:         fmt.Sprintf("ReplicationPolicy = '%s'", w.policy),
				NextPageToken: token,
			})
			must(t, err)
			for _, e := range page.Executions {
				ids = append(ids, e.Execution.WorkflowId)
				for name, v := range e.SearchAttributes.GetIndexedFields() {
					if name == "ReplicationKey" || bytes.Contains(v.Data, []byte("jane-doe")) {
						t.Errorf("%s carries search attribute %s = %s", e.Execution.WorkflowId, name, v.Data)
					}
				}
			}
			if token = page.NextPageToken; len(token) == 0 {
				break
			}
		}
		if len(ids) >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(ids) != 2 || ids[0] != ids[1] {
		t.Fatalf("runs of the policy: %v; want two runs of one workflow (the triggers meet)", ids)
	}
	if strings.Contains(ids[0], "jane") || !strings.HasPrefix(ids[0], "replicate/"+w.policy+"/~") {
		t.Errorf("workflow ID %q", ids[0])
	}
	raw := rawHistory(t, ids[0])
	for _, part := range []string{key, "jane-doe", "salary-2026"} {
		for _, form := range encodings([]byte(part)) {
			if bytes.Contains(raw, form) {
				t.Errorf("the history holds %q in the clear (%q)", part, form)
			}
		}
	}
}
