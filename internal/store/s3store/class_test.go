//go:build integration

package s3store

import (
	"context"
	"net/url"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/store/storetest"
)

// TestStagesStayStandard writes stages (single and multipart) with a storage class
// configured, commits them by server-side copy and puts a user key directly: the
// stages must be in the standard class, which a copy can read even where the
// configured class is an archive one, and every user key in the configured class.
// MinIO accepts REDUCED_REDUNDANCY and reports it; it stands in for GLACIER, which
// it refuses.
func TestStagesStayStandard(t *testing.T) {
	endpoint, _, _ := env(t)
	ensureBucket(t)
	const class = "REDUCED_REDUNDANCY"
	u := &url.URL{Scheme: "s3", Host: testBucket, Path: "/" + storetest.UniquePrefix(t), RawQuery: url.Values{"endpoint": {endpoint}}.Encode()}
	s, err := newStore(context.Background(), store.Options{Name: "minio-test", URL: u, StorageClass: class, Tuning: testTuning})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	classOf := func(key string) types.StorageClass {
		t.Helper()
		out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: stringPtr(s.full(key))})
		if err != nil {
			t.Fatalf("head %s: %v", key, err)
		}
		if out.StorageClass == "" {
			return types.StorageClassStandard // S3 omits the header for STANDARD
		}
		return out.StorageClass
	}
	for _, size := range []int64{1 << 20, 12 << 20} { // one PutObject, a multipart upload
		stage := ".replicator/staging/" + randomSuffix()
		final := "final-" + randomSuffix()
		if _, err := s.Put(ctx, stage, storetest.Stream(3, size), store.PutOptions{SHA256: storetest.StreamSHA256(3, size), Size: size}); err != nil {
			t.Fatal(err)
		}
		if got := classOf(stage); got != types.StorageClassStandard {
			t.Errorf("stage of %d bytes is in class %q, want STANDARD", size, got)
		}
		a, err := s.Stat(ctx, stage)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Copy(ctx, final, stage, store.CopyOptions{Attributes: a, Precondition: store.Precondition{IfNoneMatch: true}}); err != nil {
			t.Fatalf("commit of a %d-byte stage: %v", size, err)
		}
		if got := classOf(final); got != class {
			t.Errorf("committed object of %d bytes is in class %q, want %s", size, got, class)
		}
		direct := "direct-" + randomSuffix()
		if _, err := s.Put(ctx, direct, storetest.Stream(4, size), store.PutOptions{SHA256: storetest.StreamSHA256(4, size), Size: size}); err != nil {
			t.Fatal(err)
		}
		if got := classOf(direct); got != class {
			t.Errorf("direct put of %d bytes is in class %q, want %s", size, got, class)
		}
	}
}
