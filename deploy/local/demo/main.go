// Command demo prepares the README's demo on the local stack: a source directory of
// sample files (invoices, images, a video), the buckets and container on MinIO,
// fake-gcs-server and Azurite, and a replicator.yaml that replicates the source to
// all three. It reads the stack's endpoints from the environment of
// deploy/local/env.sh.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	gcs "cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

const bucket = "demo"

func main() {
	dir := flag.String("dir", ".stack/demo", "folder for the source, the state and replicator.yaml")
	flag.Parse()
	if err := run(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for _, v := range []string{"REPLICATOR_S3_ENDPOINT", "STORAGE_EMULATOR_HOST", "AZURE_STORAGE_CONNECTION_STRING", "REPLICATOR_AZURE_ENDPOINT"} {
		if os.Getenv(v) == "" {
			return fmt.Errorf("$%s is not set: run `eval \"$(deploy/local/env.sh)\"` first", v)
		}
	}
	keys, err := writeSamples(filepath.Join(dir, "source"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o755); err != nil {
		return err
	}
	if err := createBuckets(context.Background()); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`# The README's demo: one directory replicated to MinIO, fake-gcs-server and Azurite.
state: file://%[1]s/state
policies:
  - name: demo
    source: file://%[1]s/source
    destinations:
      - name: aws-s3
        url: s3://%[2]s/replica?region=us-east-1&endpoint=%[3]s
      - name: gcp-gcs
        url: gs://%[2]s/replica
      - name: azure-blob
        url: azblob://devstoreaccount1/%[2]s/replica?endpoint=%[4]s
        credentials: {azure_connection_string_env: AZURE_STORAGE_CONNECTION_STRING}
    rules:
      - match: "customers/nl/**"     # data sovereignty: Dutch customers stay off GCS
        to: [aws-s3, azure-blob]
      - match: "**"
        to: [aws-s3, gcp-gcs, azure-blob]
    exclude: ["**/*.tmp"]
    mode: mirror
    consistency: eventual
    schedule: {every: 5m}
    safety: {max_delete: 100, max_delete_percent: 10}
    limits: {concurrency: 16}
`, dir, bucket, os.Getenv("REPLICATOR_S3_ENDPOINT"), os.Getenv("REPLICATOR_AZURE_ENDPOINT"))
	if err := os.WriteFile(filepath.Join(dir, "replicator.yaml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	list := filepath.Join(dir, "keys.txt")
	f, err := os.Create(list)
	if err != nil {
		return err
	}
	for _, k := range keys {
		fmt.Fprintln(f, k)
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Printf("demo: %d sample files in %s/source, config %s/replicator.yaml, key list %s\n", len(keys), dir, dir, list)
	return nil
}

// writeSamples creates the sample tree (the same bytes every time) and returns its keys.
func writeSamples(src string) ([]string, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	files := map[string]int{"video/launch.mp4": 48 << 20, "tmp/upload.tmp": 10}
	for i := range 40 {
		files[fmt.Sprintf("invoices/2026/%02d/invoice-%04d.pdf", i%12+1, i)] = 20<<10 + i*100
	}
	for i := range 10 {
		files[fmt.Sprintf("images/products/sku-%03d.jpg", i)] = 300 << 10
		files[fmt.Sprintf("customers/nl/klant-%02d/contract.pdf", i)] = 50 << 10
		files[fmt.Sprintf("customers/de/kunde-%02d/vertrag.pdf", i)] = 50 << 10
	}
	var keys []string
	for key, size := range files {
		p := filepath.Join(src, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if fi, err := os.Stat(p); err == nil && fi.Size() == int64(size) {
			keys = append(keys, key)
			continue // already there: keep its version, so a rerun shows skips
		}
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, err
		}
		keys = append(keys, key)
	}
	return keys, nil
}

func createBuckets(ctx context.Context) error {
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion("us-east-1"))
	if err != nil {
		return err
	}
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(os.Getenv("REPLICATOR_S3_ENDPOINT"))
		o.UsePathStyle = true
	})
	var owned *s3types.BucketAlreadyOwnedByYou
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("create MinIO bucket: %w", err)
	}
	gc, err := gcs.NewClient(ctx)
	if err != nil {
		return err
	}
	defer gc.Close()
	if _, err := gc.Bucket(bucket).Attrs(ctx); err != nil {
		if err := gc.Bucket(bucket).Create(ctx, "demo", nil); err != nil {
			return fmt.Errorf("create fake-gcs-server bucket: %w", err)
		}
	}
	az, err := azblob.NewClientFromConnectionString(os.Getenv("AZURE_STORAGE_CONNECTION_STRING"), nil)
	if err != nil {
		return err
	}
	if _, err := az.CreateContainer(ctx, bucket, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return fmt.Errorf("create Azurite container: %w", err)
	}
	return nil
}
