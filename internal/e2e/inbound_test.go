//go:build integration

package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TestMinIONotificationsReplicateByEventsAlone gives a policy a MinIO bucket as its
// source, with a bucket notification to MinIO's webhook target "replicator", whose
// endpoint is the worker's --events-addr. Objects put into and removed from the bucket
// reach and leave GCS and Azure with no reconcile and no starter: by events alone.
func TestMinIONotificationsReplicateByEventsAlone(t *testing.T) {
	requireEnv(t, "REPLICATOR_LOCAL_EVENTS_ADDR", "REPLICATOR_EVENTS_SECRET")
	w := newWorld(t, worldOptions{mode: "mirror"})
	var b [4]byte
	_, _ = rand.Read(b[:])
	bucket := "events-" + hex.EncodeToString(b[:])
	c := s3Client(t)
	_, err := c.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	must(t, err)
	_, err = c.PutBucketNotificationConfiguration(t.Context(), &s3.PutBucketNotificationConfigurationInput{Bucket: aws.String(bucket),
		NotificationConfiguration: &s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{{
			QueueArn: aws.String("arn:minio:sqs::REPLICATOR:webhook"),
			Events:   []s3types.Event{"s3:ObjectCreated:*", "s3:ObjectRemoved:*"},
			Filter: &s3types.NotificationConfigurationFilter{Key: &s3types.S3KeyFilter{FilterRules: []s3types.FilterRule{
				{Name: s3types.FilterRuleNamePrefix, Value: aws.String("in/")}}}},
		}}}})
	must(t, err)

	// The policy: the bucket's in/ folder to GCS and Azure.
	cfg, err := os.ReadFile(w.configPath)
	must(t, err)
	text := string(cfg)
	start := strings.Index(text, "    source: ")
	end := strings.Index(text[start:], "\n") + start
	text = text[:start] + fmt.Sprintf("    source: s3://%s/in?region=us-east-1&endpoint=%s", bucket, os.Getenv("REPLICATOR_S3_ENDPOINT")) + text[end:]
	s3Start := strings.Index(text, "      - name: s3\n")
	gcsStart := strings.Index(text, "      - name: gcs\n")
	text = text[:s3Start] + text[gcsStart:]
	must(t, os.WriteFile(w.configPath, []byte(text), 0o644))

	w.workerArgs = []string{"--events-addr", os.Getenv("REPLICATOR_LOCAL_EVENTS_ADDR")}
	wk := w.startWorker()
	wk.waitFor(t, "serving object-change notifications")

	put := func(key string, data []byte) string {
		_, err := c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("in/" + key), Body: bytes.NewReader(data)})
		must(t, err)
		return sha(data)
	}
	onBoth := func(key, sum string) func() string {
		return func() string {
			for _, d := range []string{"gcs", "azure"} {
				s := w.destination(d)
				_, err := s.Stat(t.Context(), key)
				switch {
				case sum == "" && err == nil:
					return fmt.Sprintf("%s still holds %s", d, key)
				case sum == "":
				case err != nil:
					return fmt.Sprintf("%s lacks %s: %v", d, key, err)
				case readSHA(t, s, key) != sum:
					return fmt.Sprintf("%s holds another version of %s", d, key)
				}
			}
			return ""
		}
	}
	// A second file keeps the source from going empty when the first is removed: the
	// guarded delete never lets an emptied source wipe the destinations.
	keep := put("keep.txt", []byte("stays at the source"))
	eventually(t, time.Minute, onBoth("keep.txt", keep))
	a := put("photos/a b+c.jpg", randomBytes(3000))
	eventually(t, time.Minute, onBoth("photos/a b+c.jpg", a))
	a2 := put("photos/a b+c.jpg", randomBytes(5000))
	eventually(t, time.Minute, onBoth("photos/a b+c.jpg", a2))
	_, err = c.DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("in/photos/a b+c.jpg")})
	must(t, err)
	eventually(t, time.Minute, onBoth("photos/a b+c.jpg", ""))
	// Outside the source's folder: no event (the filter), nothing replicated.
	_, err = c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("out/x.txt"), Body: strings.NewReader("x")})
	must(t, err)
	time.Sleep(2 * time.Second)
	for _, d := range []string{"gcs", "azure"} {
		if keys := listAll(t, w.destination(d)); len(keys) != 1 || keys[0] != "keep.txt" {
			t.Errorf("%s holds %v, want only keep.txt", d, keys)
		}
	}
}
