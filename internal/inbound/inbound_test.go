package inbound

import (
	"context"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cloudrepl/replicator/internal/config"
)

const secret = "inbound-test-secret"

type triggered struct {
	mu   sync.Mutex
	keys []string
}

func (t *triggered) trigger(_ context.Context, policy, key string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.keys = append(t.keys, policy+":"+key)
	return nil
}

func newHandler(t *testing.T) (*Handler, *triggered) {
	t.Helper()
	cfg, err := config.Parse(strings.NewReader(`state: file:///state
policies:
  - {name: from-s3, source: "s3://photos/in", destinations: [{name: d, url: "file:///d1"}], exclude: ["**/*.tmp"]}
  - {name: from-gcs, source: "gs://docs", destinations: [{name: d, url: "file:///d2"}]}
  - {name: from-azure, source: "azblob://acct/invoices/eu", destinations: [{name: d, url: "file:///d3"}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	tr := &triggered{}
	return New(cfg, secret, tr.trigger, slog.New(slog.DiscardHandler)), tr
}

func post(h http.Handler, path, body string, auth string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// minioRecord is an S3 event notification as MinIO's webhook target sends it.
func minioRecord(key, sequencer string) string {
	return `{"EventName":"s3:ObjectCreated:Put","Key":"photos/` + key + `","Records":[{"eventVersion":"2.0","eventSource":"minio:s3","awsRegion":"",
"eventTime":"2026-12-03T10:00:00.000Z","eventName":"s3:ObjectCreated:Put","userIdentity":{"principalId":"replicator"},
"s3":{"s3SchemaVersion":"1.0","configurationId":"Config","bucket":{"name":"photos","ownerIdentity":{"principalId":"replicator"},"arn":"arn:aws:s3:::photos"},
"object":{"key":"` + key + `","size":5,"eTag":"5d41402abc4b2a76b9719d911017c592","contentType":"image/jpeg","sequencer":"` + sequencer + `"}}}]}`
}

func TestS3NotificationsTriggerTheirPolicyInOrderOnce(t *testing.T) {
	h, tr := newHandler(t)
	if w := post(h, "/events/s3", minioRecord("in%2Fsummer+2026%21.jpg", "17A0000000000002"), "Bearer "+secret); w.Code != http.StatusNoContent {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	post(h, "/events/s3", minioRecord("in%2Fsummer+2026%21.jpg", "17A0000000000002"), secret) // replayed (MinIO's bare token)
	post(h, "/events/s3", minioRecord("in%2Fsummer+2026%21.jpg", "17A0000000000001"), secret) // older: stale
	post(h, "/events/s3", minioRecord("out%2Fother.jpg", "17A0000000000003"), secret)         // not under the source
	post(h, "/events/s3", minioRecord("in%2Fscratch.tmp", "17A0000000000004"), secret)        // excluded
	eb := `{"version":"0","id":"17793124-05d4-b198-2fde-7ededc63b103","detail-type":"Object Created","source":"aws.s3","account":"111122223333",
"time":"2026-12-03T10:00:01Z","region":"eu-west-1","resources":["arn:aws:s3:::photos"],"detail":{"version":"0","bucket":{"name":"photos"},
"object":{"key":"in/eventbridge.jpg","size":5,"etag":"b1946ac92492d2347c6235b4d2611184","sequencer":"00617F08299329D189"},"request-id":"N4N7GDK58NMKJ12R","reason":"PutObject"}}`
	if w := post(h, "/events/s3", eb, "Bearer "+secret); w.Code != http.StatusNoContent {
		t.Fatalf("EventBridge: status %d: %s", w.Code, w.Body)
	}
	if want := []string{"from-s3:summer 2026!.jpg", "from-s3:eventbridge.jpg"}; !slices.Equal(tr.keys, want) {
		t.Errorf("triggered %v, want %v", tr.keys, want)
	}
}

func TestGCSPushMessages(t *testing.T) {
	h, tr := newHandler(t)
	msg := func(id, object, generation string) string {
		data := base64.StdEncoding.EncodeToString([]byte(`{"kind":"storage#object","name":"` + object + `","bucket":"docs","generation":"` + generation + `"}`))
		return `{"message":{"attributes":{"bucketId":"docs","eventTime":"2026-12-03T10:00:00Z","eventType":"OBJECT_FINALIZE","notificationConfig":"projects/_/buckets/docs/notificationConfigs/1",
"objectGeneration":"` + generation + `","objectId":"` + object + `","payloadFormat":"JSON_API_V1"},"data":"` + data + `","messageId":"` + id + `","publishTime":"2026-12-03T10:00:00.5Z"},
"subscription":"projects/p/subscriptions/replicator"}`
	}
	r := httptest.NewRequest(http.MethodPost, "/events/gcs?token="+secret, strings.NewReader(msg("101", "reports/q4.pdf", "1733220000000002")))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusNoContent {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	post(h, "/events/gcs", msg("101", "reports/q4.pdf", "1733220000000002"), "Bearer "+secret) // replayed
	post(h, "/events/gcs", msg("102", "reports/q4.pdf", "999"), "Bearer "+secret)              // an older generation
	post(h, "/events/gcs", msg("103", "reports/q4.pdf", "1733220000000003"), "Bearer "+secret)
	if want := []string{"from-gcs:reports/q4.pdf", "from-gcs:reports/q4.pdf"}; !slices.Equal(tr.keys, want) {
		t.Errorf("triggered %v, want %v", tr.keys, want)
	}
}

func TestEventGridValidationAndBlobEvents(t *testing.T) {
	h, tr := newHandler(t)
	validation := `[{"id":"2d1781af-3a4c-4d7c-bd0c-e34b19da4e66","topic":"/subscriptions/xx/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
"subject":"","data":{"validationCode":"512d38b6-c7b8-40c8-89fe-f46f9e9622b6","validationUrl":"https://rp-eastus2.eventgrid.azure.net:553/eventsubscriptions/s/validate?id=1"},
"eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","eventTime":"2026-12-03T10:00:00Z","metadataVersion":"1","dataVersion":"1"}]`
	w := post(h, "/events/azure", validation, "Bearer "+secret)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"validationResponse":"512d38b6-c7b8-40c8-89fe-f46f9e9622b6"`) {
		t.Fatalf("validation: %d %s", w.Code, w.Body)
	}
	blob := func(id, url, seq string) string {
		return `[{"topic":"/subscriptions/xx/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct","subject":"/blobServices/default/containers/invoices/blobs/eu/2026/inv-1.pdf",
"eventType":"Microsoft.Storage.BlobCreated","eventTime":"2026-12-03T10:00:00Z","id":"` + id + `","data":{"api":"PutBlob","clientRequestId":"c","requestId":"r",
"eTag":"0x8D4BCC2E4835CD0","contentType":"application/pdf","contentLength":524288,"blobType":"BlockBlob","url":"` + url + `","sequencer":"` + seq + `",
"storageDiagnostics":{"batchId":"b"}},"dataVersion":"","metadataVersion":"1"}]`
	}
	post(h, "/events/azure", blob("e1", "https://acct.blob.core.windows.net/invoices/eu/2026/inv-1.pdf", "00000000000004420000000000028963"), "Bearer "+secret)
	post(h, "/events/azure", blob("e1", "https://acct.blob.core.windows.net/invoices/eu/2026/inv-1.pdf", "00000000000004420000000000028963"), "Bearer "+secret)
	post(h, "/events/azure", blob("e2", "http://127.0.0.1:10000/acct/invoices/eu/azurite.pdf", "1"), "Bearer "+secret)
	if want := []string{"from-azure:2026/inv-1.pdf", "from-azure:azurite.pdf"}; !slices.Equal(tr.keys, want) {
		t.Errorf("triggered %v, want %v", tr.keys, want)
	}
}

func TestBadRequestsChangeNothing(t *testing.T) {
	h, tr := newHandler(t)
	for _, c := range []struct {
		name, path, body, auth string
		status                 int
	}{
		{"no secret", "/events/s3", minioRecord("in%2Fa.jpg", "1"), "", http.StatusUnauthorized},
		{"wrong secret", "/events/s3", minioRecord("in%2Fa.jpg", "1"), "Bearer not-it", http.StatusUnauthorized},
		{"not JSON", "/events/s3", "<xml/>", "Bearer " + secret, http.StatusBadRequest},
		{"tampered record", "/events/s3", `{"Records":[{"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":""},"object":{"key":"x"}}}]}`, "Bearer " + secret, http.StatusBadRequest},
		{"a GCS message without attributes", "/events/gcs", `{"message":{"messageId":"1","data":""}}`, "Bearer " + secret, http.StatusBadRequest},
		{"an Event Grid blob event without a URL", "/events/azure", `[{"id":"x","eventType":"Microsoft.Storage.BlobCreated","data":{}}]`, "Bearer " + secret, http.StatusBadRequest},
		{"oversized", "/events/s3", `{"Records":[],"pad":"` + strings.Repeat("x", MaxBody) + `"}`, "Bearer " + secret, http.StatusRequestEntityTooLarge},
		{"unknown path", "/events/ftp", "{}", "Bearer " + secret, http.StatusNotFound},
	} {
		if w := post(h, c.path, c.body, c.auth); w.Code != c.status {
			t.Errorf("%s: status %d (%s), want %d", c.name, w.Code, strings.TrimSpace(w.Body.String()), c.status)
		}
	}
	if len(tr.keys) != 0 {
		t.Errorf("bad requests triggered %v", tr.keys)
	}
}
