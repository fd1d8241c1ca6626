//go:build integration

// Package e2e tests the replicator end to end: the real worker and starter binaries
// against the Temporal dev server, MinIO, fake-gcs-server and Azurite, with evidence
// read back from the servers. Run through `make test` (deploy/local/test.sh).
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gcs "cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.temporal.io/sdk/client"

	"github.com/cloudrepl/replicator/internal/backends"
	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/temporalclient"
)

const (
	s3Bucket          = "e2e"
	s3VersionedBucket = "e2e-versioned"
	gcsBucket         = "e2e"
	azContainer       = "e2e"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// e2eVersion is stamped into the binaries the tests build, as deploy/local/run.sh
// stamps the output of git describe, so that --version is checked end to end.
const e2eVersion = "v0.0.0-e2e"

// TestMain removes the binaries the run built: each is 170 MiB, and a machine that
// runs the suites all day would otherwise fill its temporary directory.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binaries builds the worker and starter once per test run.
func binaries(t *testing.T) (worker, starter string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "replicator-e2e-bin")
		if buildErr != nil {
			return
		}
		for _, cmd := range []string{"worker", "starter"} {
			// The faultinject tag lets tests make a real driver refuse chosen requests
			// (REPLICATOR_FAULTS); without that variable the worker is the real one.
			out, err := exec.Command("go", "build", "-tags", "faultinject", "-ldflags", "-X github.com/cloudrepl/replicator/internal/version.Version="+e2eVersion,
				"-o", filepath.Join(binDir, cmd), "github.com/cloudrepl/replicator/"+cmd).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("build %s: %v\n%s", cmd, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "worker"), filepath.Join(binDir, "starter")
}

func requireEnv(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if os.Getenv(n) == "" {
			t.Fatalf("$%s is not set: run `make test`, or `. deploy/local/env.sh` with the stack started", n)
		}
	}
}

// world is one test's policy: a source directory, a state directory and three
// destinations under a fresh prefix.
type world struct {
	t          *testing.T
	policy     string
	dir        string
	src        string
	configPath string
	prefix     string
	extraEnv   []string
	// workerArgs are extra worker flags.
	workerArgs []string
	// bucket is the S3 destination's bucket.
	bucket string
}

// destinationsYAML are the three clouds, with per-test overrides.
type worldOptions struct {
	consistency string
	mode        string
	s3Bucket    string
	// azureConnEnv names the env var with Azure's connection string.
	azureConnEnv string
	// s3Profile, when set, is the AWS profile of the S3 destination.
	s3Profile string
	// azureDedicated gives Azure its own task queue.
	azureDedicated bool
	// gcsExtra and s3Extra are appended to the GCS and S3 destinations (tuning,
	// limits).
	gcsExtra string
	s3Extra  string
	extra    string
	// retry replaces the tests' short retry policy (three attempts), e.g. for faults
	// that last longer than three quick attempts.
	retry string
}

func newWorld(t *testing.T, o worldOptions) *world {
	t.Helper()
	requireEnv(t, "TEMPORAL_ADDRESS", "REPLICATOR_S3_ENDPOINT", "STORAGE_EMULATOR_HOST", "AZURE_STORAGE_CONNECTION_STRING", "REPLICATOR_AZURE_ENDPOINT")
	ensureBuckets(t)
	if o.consistency == "" {
		o.consistency = "eventual"
	}
	if o.mode == "" {
		o.mode = "copy"
	}
	if o.retry == "" {
		o.retry = "{max_attempts: 3, max_interval: 1s, heartbeat_timeout: 5s}"
	}
	if o.s3Bucket == "" {
		o.s3Bucket = s3Bucket
	}
	if o.azureConnEnv == "" {
		o.azureConnEnv = "AZURE_STORAGE_CONNECTION_STRING"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	w := &world{t: t, dir: t.TempDir(), prefix: strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")) + "-" + hex.EncodeToString(b[:])}
	w.policy = "p-" + hex.EncodeToString(b[:])
	w.bucket = o.s3Bucket
	w.src = filepath.Join(w.dir, "source")
	must(t, os.MkdirAll(w.src, 0o755))
	must(t, os.MkdirAll(filepath.Join(w.dir, "state"), 0o755))
	s3creds := ""
	if o.s3Profile != "" {
		s3creds = fmt.Sprintf("\n        credentials: {aws_profile: %s}", o.s3Profile)
	}
	dedicated := ""
	if o.azureDedicated {
		dedicated = "\n        dedicated_queue: true\n        limits: {concurrency: 2, bandwidth: 100MiB/s}"
	}
	cfg := fmt.Sprintf(`state: file://%s/state
policies:
  - name: %s
    source: file://%s
    mode: %s
    consistency: %s
    retry: %s
    destinations:
      - name: s3
        url: s3://%s/%s?region=us-east-1&endpoint=%s%s%s
      - name: gcs
        url: gs://%s/%s%s
      - name: azure
        url: azblob://devstoreaccount1/%s/%s?endpoint=%s
        credentials: {azure_connection_string_env: %s}%s
%s`, w.dir, w.policy, w.src, o.mode, o.consistency, o.retry, o.s3Bucket, w.prefix, os.Getenv("REPLICATOR_S3_ENDPOINT"), s3creds, o.s3Extra,
		gcsBucket, w.prefix, o.gcsExtra, azContainer, w.prefix, os.Getenv("REPLICATOR_AZURE_ENDPOINT"), o.azureConnEnv, dedicated, o.extra)
	w.configPath = filepath.Join(w.dir, "replicator.yaml")
	must(t, os.WriteFile(w.configPath, []byte(cfg), 0o644))
	return w
}

// writeFile creates a source file and returns its SHA-256.
func (w *world) writeFile(key string, data []byte) string {
	p := filepath.Join(w.src, filepath.FromSlash(key))
	must(w.t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(w.t, os.WriteFile(p, data, 0o644))
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// proc is a running worker.
type proc struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
}

// startWorker runs the worker binary on the world's config.
func (w *world) startWorker(env ...string) *proc {
	w.t.Helper()
	bin, _ := binaries(w.t)
	cmd := exec.Command(bin, append([]string{"--config", w.configPath, "--metrics-addr", "127.0.0.1:0", "--stop-timeout", "5s"}, w.workerArgs...)...)
	cmd.Env = append(append(os.Environ(), w.extraEnv...), env...)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	must(w.t, cmd.Start())
	p := &proc{cmd: cmd, out: out, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	w.t.Cleanup(func() { p.stop(w.t) })
	return p
}

func (p *proc) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	if t.Failed() {
		t.Logf("worker output:\n%s", p.out.String())
	}
}

// waitFor waits until the worker's log holds text.
func (p *proc) waitFor(t *testing.T, text string) {
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.out.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("the worker never logged %q:\n%s", text, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metricsURL finds the address the worker serves /metrics on, from its log.
func (p *proc) metricsURL(t *testing.T) string {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(p.out.String(), "\n") {
			if strings.Contains(line, "serving /metrics") {
				if i := strings.Index(line, "addr="); i >= 0 {
					return "http://" + strings.Fields(line[i+5:])[0]
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the worker never said where it serves metrics:\n%s", p.out.String())
	return ""
}

func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// starter runs the starter binary and returns its stdout and exit code.
func (w *world) starter(args ...string) (string, int) {
	w.t.Helper()
	out, _, code := w.starterErr(args...)
	return out, code
}

// starterErr runs the starter binary and returns its stdout, stderr and exit code.
func (w *world) starterErr(args ...string) (string, string, int) {
	w.t.Helper()
	_, bin := binaries(w.t)
	cmd := exec.Command(bin, append([]string{"--config", w.configPath, "--policy", w.policy}, args...)...)
	cmd.Env = append(os.Environ(), w.extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		w.t.Fatalf("starter %v: %v", args, err)
	}
	if code != 0 {
		w.t.Logf("starter %v exited %d; stderr:\n%s", args, code, stderr.String())
	}
	return stdout.String(), stderr.String(), code
}

// fileResult is the JSON of one `starter replicate --wait --json` entry.
type fileResult struct {
	Key          string
	Outcome      string
	SHA256       string
	Version      string
	Passes       int
	Destinations []struct {
		Destination string
		Outcome     string
		Bytes       int64
		ErrorClass  string
		Error       string
	}
}

func (w *world) replicateWait(keys ...string) ([]fileResult, int) {
	w.t.Helper()
	out, code := w.starter(append([]string{"replicate", "--wait", "--json"}, keys...)...)
	var res []fileResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		w.t.Fatalf("starter output is not JSON: %v\n%s", err, out)
	}
	return res, code
}

func (r fileResult) outcome(dest string) string {
	for _, d := range r.Destinations {
		if d.Destination == dest {
			return d.Outcome
		}
	}
	return ""
}

// destination opens one of the world's destinations to read evidence from its server.
func (w *world) destination(name string) store.Store {
	w.t.Helper()
	var rawURL string
	opts := store.Options{Name: name}
	switch name {
	case "s3":
		rawURL = fmt.Sprintf("s3://%s/%s?region=us-east-1&endpoint=%s", w.bucket, w.prefix, os.Getenv("REPLICATOR_S3_ENDPOINT"))
	case "s3v":
		rawURL = fmt.Sprintf("s3://%s/%s?region=us-east-1&endpoint=%s", s3VersionedBucket, w.prefix, os.Getenv("REPLICATOR_S3_ENDPOINT"))
	case "gcs":
		rawURL = fmt.Sprintf("gs://%s/%s", gcsBucket, w.prefix)
	case "azure":
		rawURL = fmt.Sprintf("azblob://devstoreaccount1/%s/%s?endpoint=%s", azContainer, w.prefix, os.Getenv("REPLICATOR_AZURE_ENDPOINT"))
		opts.Credentials.AzureConnectionStringEnv = "AZURE_STORAGE_CONNECTION_STRING"
	}
	s, err := backends.Open(context.Background(), opts, rawURL)
	must(w.t, err)
	w.t.Cleanup(func() { s.Close() })
	return s
}

// readSHA reads an object back from its server and hashes what came back.
func readSHA(t *testing.T, s store.Store, key string) string {
	t.Helper()
	r, err := s.Open(context.Background(), key, 0)
	must(t, err)
	defer r.Close()
	h := sha256.New()
	_, err = io.Copy(h, r)
	must(t, err)
	return hex.EncodeToString(h.Sum(nil))
}

// listAll lists a store including the replicator's internal subtree.
func listAll(t *testing.T, s store.Store) []string {
	t.Helper()
	var keys []string
	for o, err := range s.List(context.Background(), store.ListOptions{IncludeInternal: true}) {
		must(t, err)
		keys = append(keys, o.Key)
	}
	return keys
}

var bucketsOnce sync.Once

// ensureBuckets creates the test buckets and container once.
func ensureBuckets(t *testing.T) {
	bucketsOnce.Do(func() { createBuckets(t) })
}

// createBuckets creates the test buckets and container where they are missing.
func createBuckets(t *testing.T) {
	ctx := context.Background()
	c := s3Client(t)
	for _, b := range []string{s3Bucket, s3VersionedBucket} {
		_, _ = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)})
	}
	_, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(s3VersionedBucket),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}})
	must(t, err)
	gc, err := gcs.NewClient(ctx)
	must(t, err)
	_ = gc.Bucket(gcsBucket).Create(ctx, "e2e", nil)
	gc.Close()
	az, err := azblob.NewClientFromConnectionString(os.Getenv("AZURE_STORAGE_CONNECTION_STRING"), nil)
	must(t, err)
	_, _ = az.CreateContainer(ctx, azContainer, nil)
}

func s3Client(t *testing.T) *s3.Client {
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion("us-east-1"))
	must(t, err)
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(os.Getenv("REPLICATOR_S3_ENDPOINT"))
		o.UsePathStyle = true
	})
}

func temporalClient(t *testing.T) client.Client {
	c, err := temporalclient.Dial(nil)
	must(t, err)
	t.Cleanup(c.Close)
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
