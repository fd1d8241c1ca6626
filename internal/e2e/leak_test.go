//go:build integration

package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoCredentialOrContentInHistories plants unique credentials (the S3 secret of
// this test run, a refused AWS key pair and a refused Azure account key, each used
// by a real destination, the metrics token and the events secret) and unique file
// contents, runs replications that succeed and fail, and searches the raw histories
// and everything the worker and the starter printed for any of them.
func TestNoCredentialOrContentInHistories(t *testing.T) {
	w := newWorld(t, worldOptions{consistency: "atomic", s3Profile: "planted", azureConnEnv: "PLANTED_AZURE_CONN"})
	var tok [12]byte
	_, _ = rand.Read(tok[:])
	awsKeyID := "AKIDPLANTED" + strings.ToUpper(hex.EncodeToString(tok[:4]))
	awsSecret := "planted-aws-secret-" + hex.EncodeToString(tok[:])
	azKey := base64.StdEncoding.EncodeToString(append([]byte("planted-azure-key-"), tok[:]...))
	creds := filepath.Join(w.dir, "aws-credentials")
	must(t, os.WriteFile(creds, []byte(fmt.Sprintf("[planted]\naws_access_key_id = %s\naws_secret_access_key = %s\n", awsKeyID, awsSecret)), 0o600))
	azConn := fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=%s;BlobEndpoint=%s;", azKey, os.Getenv("REPLICATOR_AZURE_ENDPOINT"))
	metricsToken := "planted-metrics-token-" + hex.EncodeToString(tok[4:])
	eventsSecret := "planted-events-secret-" + hex.EncodeToString(tok[2:])
	w.extraEnv = append(w.extraEnv, "AWS_SHARED_CREDENTIALS_FILE="+creds, "AWS_CONFIG_FILE="+filepath.Join(w.dir, "aws-config"), "PLANTED_AZURE_CONN="+azConn,
		"REPLICATOR_METRICS_TOKEN="+metricsToken, "REPLICATOR_EVENTS_SECRET="+eventsSecret)
	w.workerArgs = []string{"--events-addr", "127.0.0.1:0"}

	secrets := map[string]string{
		"planted AWS key ID":        awsKeyID,
		"planted AWS secret":        awsSecret,
		"planted Azure account key": azKey,
		"the stack's S3 secret":     os.Getenv("AWS_SECRET_ACCESS_KEY"),
		"Azurite's account key":     connField(os.Getenv("AZURE_STORAGE_CONNECTION_STRING"), "AccountKey"),
		"planted metrics token":     metricsToken,
		"planted events secret":     eventsSecret,
	}
	// Everything the worker and the starter print goes here, to be searched too.
	var logs bytes.Buffer
	contents := map[string][]byte{}
	for i, size := range []int{200, 64 << 10, 20 << 20} {
		marker := fmt.Sprintf("CONTENT-MARKER-%d-%s", i, hex.EncodeToString(tok[:]))
		data := bytes.Repeat([]byte(marker+"\n"), size/(len(marker)+1)+1)
		key := fmt.Sprintf("secret/file-%d.txt", i)
		w.writeFile(key, data)
		contents[key] = []byte(marker)
	}
	wk := w.startWorker()
	var ids []string
	for key := range contents {
		out, stderr, _ := w.starterErr("replicate", "--wait", "--json", key)
		logs.WriteString(out + stderr)
		var res []fileResult
		must(t, json.Unmarshal([]byte(out), &res))
		if len(res) != 1 || res[0].Outcome != "compensated" {
			t.Fatalf("%s: %+v; want compensated (S3 and Azure refuse the planted credentials)", key, res)
		}
		ids = append(ids, "replicate/"+w.policy+"/"+key)
	}
	for _, args := range [][]string{{"failed", "list"}, {"status"}, {"policy", "validate", "--check"}} {
		out, stderr, _ := w.starterErr(args...)
		logs.WriteString(out + stderr)
	}
	// The same files replicated with working credentials, in eventual mode, and as a
	// batch. Workers share the task queue, so the first one stops first.
	wk.stop(t)
	logs.WriteString(wk.out.String())
	w2 := newWorld(t, worldOptions{})
	for key, marker := range contents {
		w2.writeFile(key, bytes.Repeat(append(marker, '\n'), 1000))
	}
	w2.startWorker()
	for key := range contents {
		if res, code := w2.replicateWait(key); code != 0 {
			t.Fatalf("%s: exit %d %+v", key, code, res)
		}
		ids = append(ids, "replicate/"+w2.policy+"/"+key)
	}
	list := filepath.Join(w2.dir, "keys.txt")
	must(t, os.WriteFile(list, []byte("secret/file-0.txt\nsecret/file-1.txt\n"), 0o644))
	if _, code := w2.starter("batch", list, "--wait", "--id", "leak"); code != 0 {
		t.Fatal("batch failed")
	}
	ids = append(ids, "batch/"+w2.policy+"/leak")

	if logs.Len() < 1000 {
		t.Fatalf("the logs searched are suspiciously small (%d bytes)", logs.Len())
	}
	for what, s := range secrets {
		if bytes.Contains(logs.Bytes(), []byte(s)) {
			t.Errorf("the worker's or the starter's output contains %s", what)
		}
	}
	for _, id := range ids {
		raw := rawHistory(t, id)
		if len(raw) < 1000 {
			t.Fatalf("history of %s is suspiciously small (%d bytes)", id, len(raw))
		}
		for what, s := range secrets {
			if s == "" {
				t.Fatalf("%s is empty: the test would prove nothing", what)
			}
			if bytes.Contains(raw, []byte(s)) {
				t.Errorf("history of %s contains %s", id, what)
			}
		}
		for key, marker := range contents {
			for _, form := range encodings(marker) {
				if bytes.Contains(raw, form) {
					t.Errorf("history of %s contains the content of %s (%q)", id, key, form)
				}
			}
		}
	}
}

// encodings are the forms in which bytes could appear in a history: as they are, and
// base64 at each of the three alignments (how JSON carries []byte).
func encodings(b []byte) [][]byte {
	out := [][]byte{b}
	for shift := range 3 {
		enc := base64.StdEncoding.EncodeToString(append(make([]byte, shift), b...))
		// Drop the characters touched by the padding bytes and the tail.
		start := (shift*8 + 5) / 6
		out = append(out, []byte(enc[start+1:len(enc)-4]))
	}
	return out
}

func connField(conn, name string) string {
	for _, part := range strings.Split(conn, ";") {
		if v, ok := strings.CutPrefix(part, name+"="); ok {
			return v
		}
	}
	return ""
}

// TestEncodingsFindBase64 checks the search itself: a marker inside base64-encoded
// data is found whatever its alignment.
func TestEncodingsFindBase64(t *testing.T) {
	marker := []byte("CONTENT-MARKER-0-abcdef0123456789")
	for pre := range 5 {
		data := append(append(bytes.Repeat([]byte{'x'}, pre), marker...), "tail"...)
		enc := []byte(base64.StdEncoding.EncodeToString(data))
		found := false
		for _, form := range encodings(marker) {
			found = found || bytes.Contains(enc, form)
		}
		if !found {
			t.Errorf("marker after %d bytes not found in %s", pre, enc)
		}
	}
}
