//go:build integration

package s3store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/store/storetest"
)

// failAfter passes n bytes of r, then fails like a dropped source mount.
type failAfter struct {
	r io.Reader
	n int64
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("source went away")
	}
	if int64(len(p)) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= int64(n)
	return n, err
}

// TestResumeReusesStoredParts interrupts a multipart put, then resumes it: the parts
// the server lists for the upload are not sent again, and the object is whole.
func TestResumeReusesStoredParts(t *testing.T) {
	endpoint, _, _ := env(t)
	ensureBucket(t)
	c := &opCounter{counts: map[string]int{}}
	s := open(t, endpoint, testBucket, storetest.UniquePrefix(t), "", store.Tuning{PartSize: 5 << 20, Threshold: 5 << 20, Concurrency: 1}, c.install)
	ctx := context.Background()
	const size = 27 << 20 // 6 parts of 5 MiB
	sum := storetest.StreamSHA256(9, size)
	var rs store.ResumeState
	_, err := s.Put(ctx, "resumed.bin", &failAfter{r: storetest.Stream(9, size), n: 16 << 20}, store.PutOptions{
		SHA256: sum, Size: size, Resume: &store.ResumeState{}, OnResumeState: func(r store.ResumeState) { rs = r },
	})
	if err == nil || rs.UploadID == "" {
		t.Fatalf("interrupted put: err %v, resume state %+v", err, rs)
	}
	parts, err := s.client.ListParts(ctx, &s3.ListPartsInput{Bucket: &s.bucket, Key: stringPtr(s.full("resumed.bin")), UploadId: &rs.UploadID})
	if err != nil {
		t.Fatalf("the interrupted upload was not kept: %v", err)
	}
	if len(parts.Parts) != 3 {
		t.Fatalf("server lists %d parts, want the 3 whole parts read before the failure", len(parts.Parts))
	}
	before := c.get("UploadPart")

	obj, err := s.Put(ctx, "resumed.bin", storetest.Stream(9, size), store.PutOptions{SHA256: sum, Size: size, Resume: &rs})
	if err != nil {
		t.Fatalf("resumed put: %v", err)
	}
	if sent := c.get("UploadPart") - before; sent != 3 {
		t.Errorf("resumed put sent %d parts, want 3 (the 3 stored parts reused)", sent)
	}
	if c.get("CreateMultipartUpload") != 1 {
		t.Errorf("resume created a new upload")
	}
	if a, err := s.Stat(ctx, "resumed.bin"); err != nil || a.SHA256 != sum || a.Size != size || obj.Size != size {
		t.Fatalf("resumed object: %+v %v", a, err)
	}
	// A stale resume state (the upload is gone) starts over instead of failing.
	if _, err := s.Put(ctx, "again.bin", storetest.Stream(9, size), store.PutOptions{SHA256: sum, Size: size, Resume: &rs}); err != nil {
		t.Fatalf("put with a completed upload's state: %v", err)
	}
}

// TestAbortUploadsRemovesLeftovers aborts an upload a crashed writer left open.
func TestAbortUploadsRemovesLeftovers(t *testing.T) {
	endpoint, _, _ := env(t)
	ensureBucket(t)
	s := open(t, endpoint, testBucket, storetest.UniquePrefix(t), "", store.Tuning{PartSize: 5 << 20, Threshold: 5 << 20, Concurrency: 1})
	ctx := context.Background()
	const size = 12 << 20
	_, err := s.Put(ctx, ".replicator/staging/x", &failAfter{r: storetest.Stream(1, size), n: 6 << 20}, store.PutOptions{
		SHA256: storetest.StreamSHA256(1, size), Size: size, Resume: &store.ResumeState{}})
	if err == nil {
		t.Fatal("interrupted put succeeded")
	}
	list := func() int {
		out, err := s.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &s.bucket, Prefix: stringPtr(s.full(".replicator/staging/x"))}) // MinIO lists uploads of one exact key
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Uploads)
	}
	if list() != 1 {
		t.Fatal("no open upload to abort")
	}
	if err := s.AbortUploads(ctx, ".replicator/staging/x"); err != nil {
		t.Fatal(err)
	}
	if n := list(); n != 0 {
		t.Fatalf("%d uploads still open", n)
	}
}

// TestAbortStaleUploadsSweepsTheLocation aborts unfinished uploads under the store's
// location started before the cutoff, of keys nobody names (a stage that never
// completed, a final key whose transfer was given up), and keeps newer ones.
func TestAbortStaleUploadsSweepsTheLocation(t *testing.T) {
	endpoint, _, _ := env(t)
	ensureBucket(t)
	s := open(t, endpoint, testBucket, storetest.UniquePrefix(t), "", store.Tuning{PartSize: 5 << 20, Threshold: 5 << 20, Concurrency: 1})
	ctx := context.Background()
	const size = 12 << 20
	for _, key := range []string{".replicator/staging/never-finished", "photos/given-up.jpg"} {
		_, err := s.Put(ctx, key, &failAfter{r: storetest.Stream(1, size), n: 6 << 20}, store.PutOptions{
			SHA256: storetest.StreamSHA256(1, size), Size: size, Resume: &store.ResumeState{}})
		if err == nil {
			t.Fatalf("interrupted put of %s succeeded", key)
		}
	}
	open := func() int {
		n := 0
		for _, key := range []string{".replicator/staging/never-finished", "photos/given-up.jpg"} {
			out, err := s.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &s.bucket, Prefix: stringPtr(s.full(key))})
			if err != nil {
				t.Fatal(err)
			}
			n += len(out.Uploads)
		}
		return n
	}
	if n := open(); n != 2 {
		t.Fatalf("%d open uploads, want 2", n)
	}
	if n, err := s.AbortStaleUploads(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("uploads younger than the cutoff: %d aborted (%v), want none", n, err)
	}
	if n, err := s.AbortStaleUploads(ctx, time.Now().Add(time.Minute)); err != nil || n != 2 {
		t.Fatalf("uploads older than the cutoff: %d aborted (%v), want 2", n, err)
	}
	if n := open(); n != 0 {
		t.Fatalf("%d uploads still open", n)
	}
}

func stringPtr(s string) *string { return &s }

// TestPartChecksumIsChecked sends a part whose declared CRC32C is not its bytes' and
// expects the server to refuse it as damaged in transit: the part checksum replaces
// Content-MD5 only because the server checks it as well.
func TestPartChecksumIsChecked(t *testing.T) {
	endpoint, _, _ := env(t)
	ensureBucket(t)
	s := open(t, endpoint, testBucket, storetest.UniquePrefix(t), "", testTuning)
	ctx := context.Background()
	u, err := s.createUpload(ctx, "damaged.bin", objectHeaders{contentType: "application/octet-stream"}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer u.abort(ctx)
	part := make([]byte, 5<<20)
	_, err = s.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: &s.bucket, Key: &u.key, UploadId: &u.id, PartNumber: aws.Int32(1),
		Body: bytes.NewReader(part), ContentLength: aws.Int64(int64(len(part))),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c, ChecksumCRC32C: aws.String(crc32cOf([]byte("other bytes"))),
	}, unsignedPayload)
	if err == nil {
		t.Fatal("the server stored a part whose CRC32C does not match")
	}
	if got := store.CodeOf(s.classify("put", "damaged.bin", false, err)); got != store.CodeTransient {
		t.Errorf("a damaged part classifies as %v (%v), want transient (a retry resends it)", got, err)
	}
	if err := u.putPart(ctx, 1, part); err != nil {
		t.Fatalf("the same part with its own CRC32C: %v", err)
	}
	parts, err := s.client.ListParts(ctx, &s3.ListPartsInput{Bucket: &s.bucket, Key: &u.key, UploadId: &u.id})
	if err != nil {
		t.Fatal(err)
	}
	if parts.ChecksumAlgorithm != types.ChecksumAlgorithmCrc32c || len(parts.Parts) != 1 || aws.ToString(parts.Parts[0].ChecksumCRC32C) != crc32cOf(part) {
		t.Errorf("ListParts does not show the upload's CRC32C (algorithm %q, parts %+v): a resumed upload could not name it", parts.ChecksumAlgorithm, parts.Parts)
	}
}
