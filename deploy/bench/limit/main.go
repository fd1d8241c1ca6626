// Command limit is the "what the servers can take" baseline of `make bench` (DESIGN
// section 9, case 5): it uploads every file under a directory to S3, GCS and Azure at
// once with each SDK's own uploader and tuned settings, and nothing else: no hashing,
// no metadata, no preconditions, no state. The replicator's time divided into this
// one is the fraction of the servers' capacity it reaches.
//
// It reads the same environment as the replicator's clients (deploy/local/env.sh) and
// prints one JSON line: the wall time and the bytes written per destination.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	gcs "cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"google.golang.org/api/option"
)

// settings are the tuned knobs, the same for every destination so the rows compare.
type settings struct {
	files    int   // files in flight per destination
	partSize int64 // multipart part / block / chunk size
	parts    int   // parts in flight per file
	gcsChunk int   // GCS resumable chunk size; 0 sends each object in one request
}

// uploader writes one local file to one destination.
type uploader interface {
	upload(ctx context.Context, key, path string, size int64) error
}

func main() {
	src := flag.String("src", "", "directory whose files are uploaded (required)")
	prefix := flag.String("prefix", "", "key prefix on every destination (required, fresh per run)")
	targets := flag.String("destinations", "s3,gcs,azure", "comma-separated destinations: s3, gcs, azure")
	s3Bucket := flag.String("s3-bucket", "replicator-demo", "S3 bucket")
	gcsBucket := flag.String("gcs-bucket", "replicator-demo", "GCS bucket")
	azContainer := flag.String("azure-container", "replicator-demo", "Azure container")
	var set settings
	flag.IntVar(&set.files, "files", 16, "files in flight per destination")
	flag.Int64Var(&set.partSize, "part-size", 16<<20, "part, block and chunk size in bytes")
	flag.IntVar(&set.parts, "parts", 8, "parts in flight per large file")
	// fake-gcs-server rehashes the whole object on every resumable chunk, so one
	// streamed request is what it takes fastest.
	flag.IntVar(&set.gcsChunk, "gcs-chunk-size", 0, "GCS resumable chunk size in bytes; 0 streams each object in one request")
	flag.Parse()
	if *src == "" || *prefix == "" {
		fmt.Fprintln(os.Stderr, "limit: --src and --prefix are required")
		os.Exit(2)
	}
	if err := run(*src, *prefix, strings.Split(*targets, ","), map[string]string{"s3": *s3Bucket, "gcs": *gcsBucket, "azure": *azContainer}, set); err != nil {
		fmt.Fprintln(os.Stderr, "limit:", err)
		os.Exit(1)
	}
}

type file struct {
	key, path string
	size      int64
}

func run(src, prefix string, targets []string, buckets map[string]string, set settings) error {
	ctx := context.Background()
	var files []file
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		files = append(files, file{key: prefix + "/" + filepath.ToSlash(rel), path: p, size: fi.Size()})
		return nil
	})
	if err != nil {
		return fmt.Errorf("walk %s: %w", src, err)
	}
	ups := map[string]uploader{}
	for _, t := range targets {
		var u uploader
		switch t {
		case "s3":
			u, err = newS3(ctx, buckets[t], set)
		case "gcs":
			u, err = newGCS(ctx, buckets[t], set)
		case "azure":
			u, err = newAzure(buckets[t], set)
		default:
			err = fmt.Errorf("unknown destination %q (want s3, gcs or azure)", t)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", t, err)
		}
		ups[t] = u
	}

	start := time.Now()
	written := map[string]int64{}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for name, u := range ups {
		wg.Go(func() {
			sem := make(chan struct{}, set.files)
			var fwg sync.WaitGroup
			for _, f := range files {
				sem <- struct{}{}
				fwg.Go(func() {
					defer func() { <-sem }()
					err := u.upload(ctx, f.key, f.path, f.size)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						errs = append(errs, fmt.Errorf("%s %s: %w", name, f.key, err))
						return
					}
					written[name] += f.size
				})
			}
			fwg.Wait()
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"seconds": time.Since(start).Seconds(), "bytes": written})
}

type s3Uploader struct {
	bucket string
	tm     *transfermanager.Client
}

func newS3(ctx context.Context, bucket string, set settings) (*s3Uploader, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, err
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if ep := os.Getenv("REPLICATOR_S3_ENDPOINT"); ep != "" {
			o.BaseEndpoint = aws.String(ep)
			o.UsePathStyle = true
		}
	})
	return &s3Uploader{bucket: bucket, tm: transfermanager.New(client, func(o *transfermanager.Options) {
		o.PartSizeBytes, o.MultipartUploadThreshold, o.Concurrency = set.partSize, set.partSize, set.parts
		// No checksum beyond what S3 requires: the limit does no work the servers do not ask for.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	})}, nil
}

func (u *s3Uploader) upload(ctx context.Context, key, path string, _ int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = u.tm.UploadObject(ctx, &transfermanager.UploadObjectInput{Bucket: &u.bucket, Key: &key, Body: f})
	return err
}

type gcsUploader struct {
	bucket *gcs.BucketHandle
	chunk  int
}

func newGCS(ctx context.Context, bucket string, set settings) (*gcsUploader, error) {
	var opts []option.ClientOption
	if os.Getenv("STORAGE_EMULATOR_HOST") != "" {
		opts = append(opts, option.WithoutAuthentication())
	}
	c, err := gcs.NewClient(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return &gcsUploader{bucket: c.Bucket(bucket), chunk: set.gcsChunk}, nil
}

func (u *gcsUploader) upload(ctx context.Context, key, path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := u.bucket.Object(key).NewWriter(ctx)
	w.ChunkSize = u.chunk
	if size < int64(u.chunk) {
		w.ChunkSize = 0 // what fits in a chunk goes in one request
	}
	if _, err := io.Copy(w, f); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

type azUploader struct {
	container string
	client    *azblob.Client
	set       settings
}

func newAzure(container string, set settings) (*azUploader, error) {
	c, err := azblob.NewClientFromConnectionString(os.Getenv("AZURE_STORAGE_CONNECTION_STRING"), nil)
	if err != nil {
		return nil, err
	}
	return &azUploader{container: container, client: c, set: set}, nil
}

func (u *azUploader) upload(ctx context.Context, key, path string, _ int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = u.client.UploadFile(ctx, u.container, key, f, &blockblob.UploadFileOptions{BlockSize: u.set.partSize, Concurrency: uint16(u.set.parts)})
	return err
}
