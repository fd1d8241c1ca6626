//go:build integration

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cloudrepl/replicator/internal/store"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
)

// TestAtomicCommitFailureRollsBack makes each destination in turn deny the commit onto
// the final key (as a bucket policy or a retention lock on the final prefix would),
// after every destination accepted the stage, and checks the all-or-nothing promise
// by reading every destination back: in ReplicateFile and in an atomic batch, for a
// new key and for an existing one, no final key changes anywhere, previous versions
// stay intact, no stage or undo copy is left, the outcome is compensated and the
// failing destination has a dead letter.
func TestAtomicCommitFailureRollsBack(t *testing.T) {
	for _, failing := range []string{"s3", "gcs", "azure"} {
		t.Run(failing, func(t *testing.T) {
			w := newWorld(t, worldOptions{consistency: "atomic"})
			v1 := replicateFirstVersions(t, w)
			// Commits (server-side copies, the staged path) and puts (the direct path of
			// batches whose destinations share a queue) onto user keys are denied.
			w.startWorker("REPLICATOR_FAULTS=commit@" + failing + ",put@" + failing)

			checkCommitRefusalRollsBack(t, w, failing, v1)
		})
	}
}

// TestAtomicCommitRefusedByMinIOPolicy is the same check with a real server refusal:
// the S3 destination's credentials are MinIO temporary credentials whose session
// policy denies writes under the final keys' folders, while the replicator's own
// folder (stages, undo copies) stays writable, as a bucket policy or a retention lock
// on the final prefix would leave it.
func TestAtomicCommitRefusedByMinIOPolicy(t *testing.T) {
	w := newWorld(t, worldOptions{consistency: "atomic", s3Profile: "good"})
	writeAWSProfiles(t, w)
	v1 := replicateFirstVersions(t, w)

	var denied []string
	for _, folder := range []string{"existing", "new"} {
		denied = append(denied, fmt.Sprintf("%q", "arn:aws:s3:::"+s3Bucket+"/"+w.prefix+"/"+folder+"/*"))
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*"],"Resource":["arn:aws:s3:::*"]},` +
		`{"Effect":"Deny","Action":["s3:PutObject"],"Resource":[` + strings.Join(denied, ",") + `]}]}`
	creds := assumeRole(t, policy)
	profiles := filepath.Join(w.dir, "aws-credentials")
	f, err := os.OpenFile(profiles, os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = fmt.Fprintf(f, "[denied]\naws_access_key_id = %s\naws_secret_access_key = %s\naws_session_token = %s\n", *creds.AccessKeyId, *creds.SecretAccessKey, *creds.SessionToken)
	must(t, err)
	must(t, f.Close())
	// The refusal is the server's: with these credentials MinIO takes a stage and
	// refuses a final key.
	cfgAWS, err := awsconfig.LoadDefaultConfig(t.Context(), awsconfig.WithRegion("us-east-1"),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(*creds.AccessKeyId, *creds.SecretAccessKey, *creds.SessionToken)))
	must(t, err)
	limited := s3.NewFromConfig(cfgAWS, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(os.Getenv("REPLICATOR_S3_ENDPOINT"))
		o.UsePathStyle = true
	})
	for key, allowed := range map[string]bool{w.prefix + "/.replicator/staging/probe": true, w.prefix + "/new/probe": false} {
		_, err := limited.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(s3Bucket), Key: aws.String(key), Body: strings.NewReader("probe")})
		if (err == nil) != allowed {
			t.Fatalf("put %s with the limited credentials: %v (allowed: %v)", key, err, allowed)
		}
		if allowed {
			_, err = s3Client(t).DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: aws.String(s3Bucket), Key: aws.String(key)})
			must(t, err)
		}
	}
	cfg, err := os.ReadFile(w.configPath)
	must(t, err)
	must(t, os.WriteFile(w.configPath, bytes.Replace(cfg, []byte("aws_profile: good"), []byte("aws_profile: denied"), 1), 0o644))
	w.startWorker()
	checkCommitRefusalRollsBack(t, w, "s3", v1)
}

// replicateFirstVersions replicates version 1 of the two existing keys everywhere
// with a healthy worker, stops it, and returns their SHA-256 by key.
func replicateFirstVersions(t *testing.T, w *world) map[string]string {
	t.Helper()
	healthy := w.startWorker()
	v1 := map[string]string{
		"existing/file.txt":  w.writeFile("existing/file.txt", []byte("version 1 of the file replicated everywhere")),
		"existing/batch.txt": w.writeFile("existing/batch.txt", []byte("version 1 of the batch file")),
	}
	if res, code := w.replicateWait("existing/file.txt", "existing/batch.txt"); code != 0 {
		t.Fatalf("first replication: exit %d %+v", code, res)
	}
	healthy.stop(t)
	return v1
}

// assumeRole asks MinIO's STS for temporary credentials of the root user narrowed by
// a session policy.
func assumeRole(t *testing.T, policy string) *ststypes.Credentials {
	t.Helper()
	cfg, err := awsconfig.LoadDefaultConfig(t.Context(), awsconfig.WithRegion("us-east-1"))
	must(t, err)
	client := sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = aws.String(os.Getenv("REPLICATOR_S3_ENDPOINT")) })
	out, err := client.AssumeRole(t.Context(), &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::000000000000:role/ignored-by-minio"), RoleSessionName: aws.String("e2e"),
		Policy: aws.String(policy), DurationSeconds: aws.Int32(3600)})
	must(t, err)
	return out.Credentials
}

// checkCommitRefusalRollsBack changes an existing key and writes a new one, in
// ReplicateFile and in an atomic batch, on a worker where failing refuses writes onto
// final keys, and reads every destination back: nothing changed anywhere, no stage or
// undo copy left, outcomes compensated, dead letters for the failing destination.
func checkCommitRefusalRollsBack(t *testing.T, w *world, failing string, v1 map[string]string) {
	t.Helper()
	// ReplicateFile: an existing key changed, and a new key.
	w.writeFile("existing/file.txt", []byte("version 2, which must reach all three or none"))
	w.writeFile("new/file.txt", []byte("a new key, which must appear on all three or none"))
	res, code := w.replicateWait("existing/file.txt", "new/file.txt")
	if code != 1 {
		t.Fatalf("replicate: exit %d, want 1: %+v", code, res)
	}
	if failing == "gcs" {
		recordHistory(t, "replicate/"+w.policy+"/existing/file.txt", "replicate_file_atomic_rolled_back")
	}
	for _, r := range res {
		if r.Outcome != "compensated" {
			t.Errorf("%s: outcome %s, want compensated", r.Key, r.Outcome)
		}
		for _, d := range r.Destinations {
			want := "rolled back"
			if d.Destination == failing {
				want = "failed"
			}
			if d.Outcome != want {
				t.Errorf("%s on %s: %s, want %s (%s)", r.Key, d.Destination, d.Outcome, want, d.Error)
			}
		}
	}

	// An atomic batch: the same for a changed existing key and a new key.
	w.writeFile("existing/batch.txt", []byte("version 2 of the batch file"))
	w.writeFile("new/batch.txt", []byte("a new key in a batch"))
	list := filepath.Join(w.dir, "keys.txt")
	must(t, os.WriteFile(list, []byte("existing/batch.txt\nnew/batch.txt\n"), 0o644))
	out, code := w.starter("batch", list, "--wait", "--json", "--id", "undo")
	if code != 1 {
		t.Fatalf("batch: exit %d, want 1: %s", code, out)
	}
	if failing == "gcs" {
		recordHistory(t, "batch/"+w.policy+"/undo", "replicate_batch_atomic_direct_rolled_back")
	}
	var batch struct {
		Summary struct {
			Destinations []struct {
				Destination    string
				Copied, Failed int
			}
		}
	}
	must(t, json.Unmarshal([]byte(out), &batch))
	for _, d := range batch.Summary.Destinations {
		if d.Copied != 0 || d.Failed != 2 {
			t.Errorf("batch on %s: %d copied, %d failed; want 0 and 2", d.Destination, d.Copied, d.Failed)
		}
	}

	for _, d := range []string{"s3", "gcs", "azure"} {
		s := w.destination(d)
		for k, sum := range v1 {
			if got := readSHA(t, s, k); got != sum {
				t.Errorf("%s: %s changed (%s), want version 1 intact", d, k, got)
			}
		}
		for _, k := range []string{"new/file.txt", "new/batch.txt"} {
			if _, err := s.Stat(t.Context(), k); !store.IsNotFound(err) {
				t.Errorf("%s holds %s after its commit failed elsewhere: %v", d, k, err)
			}
		}
		for _, k := range listAll(t, s) {
			if strings.HasPrefix(k, ".replicator/staging/") || strings.HasPrefix(k, ".replicator/undo/") {
				t.Errorf("%s: %s left behind", d, k)
			}
		}
	}
	var failedOn []string
	for _, dl := range deadLetters(t, w) {
		if dl.Destination == failing && dl.Class == "Permission" {
			failedOn = append(failedOn, dl.Key)
		}
	}
	slices.Sort(failedOn)
	if want := []string{"existing/batch.txt", "existing/file.txt", "new/batch.txt", "new/file.txt"}; !slices.Equal(failedOn, want) {
		t.Errorf("dead letters on %s: %v, want %v", failing, failedOn, want)
	}
}
