package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRequestKind(t *testing.T) {
	for raw, want := range map[string]string{
		"GET http://minio/bucket?list-type=2&prefix=a":                               "list",
		"GET http://minio/bucket/key?uploads":                                        "list",
		"HEAD http://minio/bucket/key":                                               "object",
		"GET http://minio/bucket/key":                                                "object",
		"GET http://gcs/storage/v1/b/bucket/o?prefix=a":                              "list",
		"GET http://gcs/storage/v1/b/bucket/o/key%2Fa":                               "object",
		"GET http://azurite/devstoreaccount1/c?restype=container&comp=list&prefix=a": "list",
		"PUT http://azurite/devstoreaccount1/c/blob?comp=block&blockid=x":            "object",
		"GET http://azurite/devstoreaccount1/c/blob":                                 "object",
	} {
		var method, u string
		for i := range raw {
			if raw[i] == ' ' {
				method, u = raw[:i], raw[i+1:]
				break
			}
		}
		r, err := http.NewRequest(method, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := RequestKind(r); got != want {
			t.Errorf("%s: %s, want %s", raw, got, want)
		}
	}
}

// TestSentBytes sends requests through the counting transport to a real HTTP
// server and checks that their body bytes, and only those, are counted per store.
func TestSentBytes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodGet && (n != 0 || len(r.TransferEncoding) != 0) {
			http.Error(w, "a GET got a body", http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	m := New(prometheus.NewRegistry())
	c := &http.Client{Transport: m.CountRequests("s3")(http.DefaultTransport)}
	for _, body := range []string{strings.Repeat("x", 1000), "", strings.Repeat("y", 24)} {
		req, err := http.NewRequest(http.MethodPut, srv.URL+"/k", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := c.Get(srv.URL + "/k")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the counting transport changed a GET: %s", resp.Status)
	}
	if got := testutil.ToFloat64(m.SentBytes.WithLabelValues("s3")); got != 1024 {
		t.Errorf("sent bytes %v, want 1024", got)
	}
	if got := testutil.ToFloat64(m.SentBytes.WithLabelValues("gcs")); got != 0 {
		t.Errorf("another store counted %v bytes", got)
	}
}
