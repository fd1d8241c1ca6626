package inbound

import (
	"net/http"
	"testing"
)

// FuzzParsers feeds any body to the three event parsers: none panics, and what one
// accepts names a bucket and a key for every change (a change without them could
// never be matched to a policy and would be dropped silently).
func FuzzParsers(f *testing.F) {
	f.Add([]byte(`{"Records":[{"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"a+b%2Fc.txt","sequencer":"0A1"}}}]}`))
	f.Add([]byte(`{"detail-type":"Object Created","id":"1","detail":{"bucket":{"name":"b"},"object":{"key":"k"}}}`))
	f.Add([]byte(`{"message":{"messageId":"7","attributes":{"bucketId":"b","objectId":"o","eventType":"OBJECT_FINALIZE","objectGeneration":"12"},"data":"e30="}}`))
	f.Add([]byte(`[{"id":"1","eventType":"Microsoft.Storage.BlobCreated","subject":"/blobServices/default/containers/c/blobs/k","data":{"url":"https://acct.blob.core.windows.net/c/k"}}]`))
	f.Add([]byte(`[{"id":"v","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","data":{"validationCode":"abc"}}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for name, parse := range map[string]func([]byte, http.Header) ([]change, []byte, error){"s3": parseS3, "gcs": parseGCS, "azure": parseAzure} {
			changes, _, err := parse(body, http.Header{})
			if err != nil {
				continue
			}
			for _, c := range changes {
				if c.bucket == "" || c.key == "" || c.scheme == "" {
					t.Fatalf("%s accepted a change without a location: %+v from %q", name, c, body)
				}
			}
		}
	})
}
