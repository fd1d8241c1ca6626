//go:build integration

package e2e

import (
	"context"
	"crypto/rand"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestEncryptionAtRestOnS3 replicates a small file (one PUT) and a large one
// (multipart) with SSE-S3 and with SSE-KMS (MinIO's built-in KMS key), in eventual
// mode and in atomic mode (where the final object is a server-side copy of the stage),
// and asks MinIO how each final object is encrypted, then reads it back.
func TestEncryptionAtRestOnS3(t *testing.T) {
	kmsKey := os.Getenv("REPLICATOR_MINIO_KMS_KEY_ID")
	if kmsKey == "" {
		t.Fatal("REPLICATOR_MINIO_KMS_KEY_ID is unset: the local stack's MinIO has no KMS key (deploy/local/start.sh)")
	}
	large := make([]byte, 12<<20)
	_, _ = rand.Read(large)
	for _, c := range []struct {
		name, extra, want string
	}{
		{"sse-s3", "\n        sse: AES256", "AES256"},
		{"sse-kms", "\n        sse: aws:kms\n        sse_kms_key_id: " + kmsKey, "aws:kms"},
	} {
		for _, consistency := range []string{"eventual", "atomic"} {
			t.Run(c.name+"/"+consistency, func(t *testing.T) {
				w := newWorld(t, worldOptions{consistency: consistency, s3Extra: c.extra})
				w.startWorker()
				files := map[string]string{
					"invoices/small.pdf": w.writeFile("invoices/small.pdf", []byte("%PDF encrypted at rest")),
					"media/large.bin":    w.writeFile("media/large.bin", large),
				}
				for key, sum := range files {
					if res, code := w.replicateWait(key); code != 0 || res[0].Outcome != "ok" {
						t.Fatalf("%s: exit %d %+v", key, code, res)
					}
					head, err := s3Client(t).HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(s3Bucket), Key: aws.String(w.prefix + "/" + key)})
					must(t, err)
					if string(head.ServerSideEncryption) != c.want {
						t.Errorf("%s: MinIO reports encryption %q; want %q", key, head.ServerSideEncryption, c.want)
					}
					if c.want == "aws:kms" && !strings.Contains(aws.ToString(head.SSEKMSKeyId), kmsKey) {
						t.Errorf("%s: KMS key %q; want %s", key, aws.ToString(head.SSEKMSKeyId), kmsKey)
					}
					if got := readSHA(t, w.destination("s3"), key); got != sum {
						t.Errorf("%s read back: SHA-256 %s; want %s", key, got, sum)
					}
				}
			})
		}
	}
}
