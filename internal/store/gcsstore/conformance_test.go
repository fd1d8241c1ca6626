//go:build integration

package gcsstore

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"

	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/store/storetest"
)

// testBucket is the emulator bucket the conformance tests write under.
const testBucket = "replicator-conformance"

// smallTuning makes a 64 MiB object take many resumable chunks.
var smallTuning = store.Tuning{PartSize: 5 << 20, Threshold: 5 << 20, Concurrency: 4}

// emulator returns STORAGE_EMULATOR_HOST, failing the test when the stack's
// environment is missing.
func emulator(t *testing.T) string {
	t.Helper()
	host := os.Getenv("STORAGE_EMULATOR_HOST")
	if host == "" {
		t.Fatal("STORAGE_EMULATOR_HOST is not set: run `make test` or `. deploy/local/env.sh` with the stack started")
	}
	return host
}

// ensureBucket creates the test bucket once; an existing one is fine.
func ensureBucket(t *testing.T, name string) {
	t.Helper()
	emulator(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := storage.NewClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Bucket(name).Create(ctx, "test-project", nil)
	var ge *googleapi.Error
	if err != nil && !(errors.As(err, &ge) && ge.Code == http.StatusConflict) {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}

// open builds a store for rawURL with tuning, failing the test on error.
func open(t *testing.T, rawURL string, tuning store.Tuning) store.Store {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), store.Options{Name: "gcs-test", URL: u, Tuning: tuning})
	if err != nil {
		t.Fatalf("new store %s: %v", rawURL, err)
	}
	return s
}

func newAt(tuning store.Tuning) func(t *testing.T, prefix string) store.Store {
	return func(t *testing.T, prefix string) store.Store {
		ensureBucket(t, testBucket)
		return open(t, "gs://"+testBucket+"/"+prefix, tuning)
	}
}

func TestConformance(t *testing.T) {
	ensureBucket(t, testBucket)
	storetest.Run(t, storetest.Harness{
		NewAt:         newAt(smallTuning),
		PartSize:      smallTuning.PartSize,
		CopyLargeSize: 12 << 20,
		MissingLocation: func(t *testing.T) store.Store {
			return open(t, "gs://replicator-no-such-bucket/x", smallTuning)
		},
		// fake-gcs-server has no authentication: classify_test.go covers 401 and 403.
		BadCredentials: nil,
		Unreachable: func(t *testing.T) store.Store {
			return open(t, "gs://"+testBucket+"/x?endpoint=http://127.0.0.1:1", smallTuning)
		},
	})
}

func TestPut1GiBBoundedMemory(t *testing.T) {
	storetest.BoundedMemoryPut(t, newAt(store.Tuning{}), 1<<30, 200<<20)
}

// singleTuning streams everything beyond 5 MiB in one request.
var singleTuning = store.Tuning{Threshold: 5 << 20, SingleRequest: true}

// TestConformanceSingleRequest holds single-request uploads to the same contract,
// but for one deviation of fake-gcs-server: it stores a request body cut short, so a
// streamed put refused after its bytes went out leaves that object behind (real GCS
// never finalizes a cut request; README, "Tuning").
func TestConformanceSingleRequest(t *testing.T) {
	ensureBucket(t, testBucket)
	storetest.Run(t, storetest.Harness{
		NewAt:         newAt(singleTuning),
		PartSize:      5 << 20,
		CopyLargeSize: 12 << 20,
		MissingLocation: func(t *testing.T) store.Store {
			return open(t, "gs://replicator-no-such-bucket/x", singleTuning)
		},
		Unreachable: func(t *testing.T) store.Store {
			return open(t, "gs://"+testBucket+"/x?endpoint=http://127.0.0.1:1", singleTuning)
		},
		StoresCutRequests: true,
	})
}

func TestPut1GiBBoundedMemorySingleRequest(t *testing.T) {
	storetest.BoundedMemoryPut(t, newAt(store.Tuning{SingleRequest: true}), 1<<30, 200<<20)
}

// TestConformanceResumable holds the driver's own resumable sessions (puts with
// PutOptions.Resume set, as every activity attempt but the last makes them) to the
// contract.
func TestConformanceResumable(t *testing.T) {
	ensureBucket(t, testBucket)
	storetest.Run(t, storetest.Harness{
		NewAt:         newAt(smallTuning),
		PartSize:      smallTuning.PartSize,
		CopyLargeSize: 12 << 20,
		MissingLocation: func(t *testing.T) store.Store {
			return open(t, "gs://replicator-no-such-bucket/x", smallTuning)
		},
		Unreachable: func(t *testing.T) store.Store {
			return open(t, "gs://"+testBucket+"/x?endpoint=http://127.0.0.1:1", smallTuning)
		},
		ResumablePuts: true,
	})
}
