//go:build integration

package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TestWorkerKilledMidUploadResumes kills the worker with SIGKILL in the middle of a
// multipart upload to S3; a new worker finishes the same upload, and the parts stored
// before the kill (as ListParts shows them) are kept, not sent again.
func TestWorkerKilledMidUploadResumes(t *testing.T) {
	w := newWorld(t, worldOptions{extra: "    rules: [{match: \"**\", to: [s3]}]\n    limits: {bandwidth: 40MiB/s}\n"})
	key := "video/raw.mov"
	sum := w.writeFile(key, randomBytes(200<<20))
	first := w.startWorker()
	if _, code := w.starter("replicate", key); code != 0 {
		t.Fatal("trigger failed")
	}
	ctx := context.Background()
	c := s3Client(t)
	full := w.prefix + "/" + key
	uploadID := func() string {
		out, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(s3Bucket), Prefix: aws.String(full)})
		must(t, err)
		if len(out.Uploads) == 0 {
			return ""
		}
		if len(out.Uploads) > 1 {
			t.Fatalf("%d uploads of one key: a retry started over", len(out.Uploads))
		}
		return aws.ToString(out.Uploads[0].UploadId)
	}
	listParts := func(id string) ([]s3types.Part, error) {
		out, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String(s3Bucket), Key: aws.String(full), UploadId: aws.String(id)})
		if err != nil {
			return nil, err
		}
		return out.Parts, nil
	}
	var id string
	var before []s3types.Part
	deadline := time.Now().Add(2 * time.Minute)
	// Kill once 4 parts are stored and the upload's ID reached the server in a
	// heartbeat: the SDK sends a heartbeat's details up to 4 s late (0.8 times the
	// 5 s heartbeat timeout), and a state lost in the crash is no test of resuming.
	for len(before) < 4 || uploadsInHeartbeats(t, "replicate/"+w.policy+"/"+key) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the upload never got 4 parts stored with its ID in a heartbeat")
		}
		time.Sleep(100 * time.Millisecond)
		if id = uploadID(); id != "" {
			before, _ = listParts(id)
		}
	}
	first.kill()
	before, err := listParts(id) // the final word of the killed worker
	must(t, err)
	t.Logf("killed after %d parts of upload %s", len(before), id)

	w.startWorker()
	// Watch the upload while the new worker continues it.
	reusedSeen := false
	for {
		parts, err := listParts(id)
		var nsu *s3types.NoSuchUpload
		if errors.As(err, &nsu) || (err != nil && uploadID() == "") {
			break // completed
		}
		must(t, err)
		if len(parts) > len(before) {
			reusedSeen = true
			for i, p := range before {
				q := parts[i]
				if aws.ToInt32(q.PartNumber) != aws.ToInt32(p.PartNumber) || aws.ToString(q.ETag) != aws.ToString(p.ETag) || !aws.ToTime(q.LastModified).Equal(aws.ToTime(p.LastModified)) {
					t.Fatalf("part %d was uploaded again after the restart: before %+v, now %+v", aws.ToInt32(p.PartNumber), p, q)
				}
			}
		}
		if other := uploadID(); other != "" && other != id {
			t.Fatalf("the new worker started another upload %s", other)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !reusedSeen {
		t.Log("the resumed upload finished before it could be watched growing; checking the result only")
	}
	var res struct{ Outcome string }
	must(t, temporalClient(t).GetWorkflow(ctx, "replicate/"+w.policy+"/"+key, "").Get(ctx, &res))
	if res.Outcome != "ok" {
		t.Fatalf("outcome %s", res.Outcome)
	}
	if got := readSHA(t, w.destination("s3"), key); got != sum {
		t.Fatalf("object SHA-256 %s, want %s", got, sum)
	}
	if uploadID() != "" {
		t.Fatal("an upload is still open")
	}
}
