//go:build integration

package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"strings"
	"testing"

	gcs "cloud.google.com/go/storage"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// bucketWorld is a world whose policy replicates from a bucket (side "a" of
// userSide) to destinations of other clouds.
func bucketWorld(t *testing.T, srcKind, mode string, destKinds ...string) (*world, *userSide, map[string]*userSide) {
	w := newWorld(t, worldOptions{})
	src := newUserSide(t, w, srcKind, "src")
	dests := map[string]*userSide{}
	var yaml strings.Builder
	for _, k := range destKinds {
		d := newUserSide(t, w, k, "dst-"+k)
		dests[k] = d
		fmt.Fprintf(&yaml, "      - name: %s\n        url: %s\n", k, d.url)
		if d.creds != "" {
			fmt.Fprintf(&yaml, "        credentials: %s\n", d.creds)
		}
	}
	srcCreds := ""
	if src.creds != "" {
		srcCreds = "\n    source_credentials: " + src.creds
	}
	cfg := fmt.Sprintf(`state: file://%s/state
policies:
  - name: %s
    source: %s%s
    mode: %s
    retry: {max_attempts: 3, max_interval: 1s, heartbeat_timeout: 5s}
    safety: {max_delete: 100, max_delete_percent: 100}
    destinations:
%s`, w.dir, w.policy, src.url, srcCreds, mode, yaml.String())
	must(t, os.WriteFile(w.configPath, []byte(cfg), 0o644))
	return w, src, dests
}

// richObject is what a user stores in a bucket besides the bytes.
type richObject struct {
	body, contentType, cacheControl string
	metadata, tags                  map[string]string
}

// putRich writes an object with its headers, metadata and tags through the source
// cloud's own SDK.
func (u *userSide) putRich(key string, o richObject) {
	u.t.Helper()
	ctx := context.Background()
	switch u.kind {
	case "s3":
		tagging := ""
		for k, v := range o.tags {
			if tagging != "" {
				tagging += "&"
			}
			tagging += k + "=" + v
		}
		_, err := s3Client(u.t).PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(u.bucket), Key: aws.String(u.prefix + "/" + key),
			Body: strings.NewReader(o.body), ContentType: aws.String(o.contentType), CacheControl: aws.String(o.cacheControl),
			Metadata: o.metadata, Tagging: aws.String(tagging)})
		must(u.t, err)
	case "gcs":
		c, err := gcs.NewClient(ctx)
		must(u.t, err)
		defer c.Close()
		wr := c.Bucket(u.bucket).Object(u.prefix + "/" + key).NewWriter(ctx)
		wr.ContentType, wr.CacheControl, wr.Metadata = o.contentType, o.cacheControl, o.metadata
		_, _ = wr.Write([]byte(o.body))
		must(u.t, wr.Close())
	default:
		u.t.Fatalf("putRich on %s", u.kind)
	}
}

// checkRich reads the object back from its server and compares what the destination
// can hold: bytes, Content-Type, Cache-Control, user metadata, and tags where the
// destination keeps them.
func (u *userSide) checkRich(key string, o richObject, withTags bool) {
	u.t.Helper()
	a, err := u.store.Stat(context.Background(), key)
	if err != nil {
		u.t.Errorf("%s on %s: %v", key, u.kind, err)
		return
	}
	if got := u.contents()[key]; got != o.body {
		u.t.Errorf("%s on %s holds %q; want %q", key, u.kind, got, o.body)
	}
	if a.ContentType != o.contentType || a.CacheControl != o.cacheControl {
		u.t.Errorf("%s on %s: Content-Type %q, Cache-Control %q; want %q, %q", key, u.kind, a.ContentType, a.CacheControl, o.contentType, o.cacheControl)
	}
	for k, v := range o.metadata {
		if a.Metadata[strings.ToLower(k)] != v {
			u.t.Errorf("%s on %s: metadata %v; want %s=%s", key, u.kind, a.Metadata, k, v)
		}
	}
	if withTags && !maps.Equal(a.Tags, o.tags) {
		u.t.Errorf("%s on %s: tags %v; want %v", key, u.kind, a.Tags, o.tags)
	}
}

// noop asserts that a reconcile found every key in place on every destination.
func (w *world) noop(n int, dests ...string) {
	w.t.Helper()
	r, code := w.reconcile()
	if code != 0 || r.Result.Outcome != "ok" {
		w.t.Fatalf("reconcile: exit %d %+v", code, r.Result)
	}
	for _, d := range dests {
		p := r.dest(d)
		if p.Unchanged != n || p.Copy+p.Update+p.Adopt+p.Delete != 0 {
			w.t.Errorf("no-op reconcile from a bucket source planned work on %s: %+v", d, p)
		}
	}
}

// TestBucketSources replicates from MinIO to GCS and Azure (mirror) and from GCS to
// Azure (copy), carrying Content-Type, Cache-Control, user metadata and tags, and
// shows that a reconcile after the copy plans nothing: the versions a bucket lists
// and the ones it reports for one object agree.
func TestBucketSources(t *testing.T) {
	invoice := richObject{body: "%PDF-1.7 invoice", contentType: "application/pdf", cacheControl: "private, max-age=600",
		metadata: map[string]string{"customer": "acme", "region": "eu"}, tags: map[string]string{"class": "finance", "retention": "10y"}}
	image := richObject{body: "\x89PNG product image", contentType: "image/png", cacheControl: "public, max-age=86400",
		metadata: map[string]string{"sku": "A-100"}, tags: map[string]string{"class": "catalog"}}

	t.Run("minio-to-gcs-and-azure", func(t *testing.T) {
		w, src, dests := bucketWorld(t, "s3", "mirror", "gcs", "azure")
		w.startWorker()
		src.putRich("invoices/2026/inv-1.pdf", invoice)
		src.putRich("images/a-100.png", image)
		src.write("notes/plain.txt", "no headers at all")
		if r, code := w.reconcile(); code != 0 || r.Result.Outcome != "ok" || r.dest("gcs").Copy != 3 || r.dest("azure").Copy != 3 {
			t.Fatalf("first reconcile: exit %d %+v", code, r.Result)
		}
		for _, d := range dests {
			d.checkRich("invoices/2026/inv-1.pdf", invoice, true)
			d.checkRich("images/a-100.png", image, true)
		}
		w.noop(3, "gcs", "azure")

		changed := image
		changed.body, changed.tags = "\x89PNG new product image", map[string]string{"class": "catalog", "season": "winter"}
		src.putRich("images/a-100.png", changed)
		src.remove("notes/plain.txt")
		if r, code := w.reconcile(); code != 0 || r.dest("gcs").Update != 1 || r.dest("gcs").Delete != 1 {
			t.Fatalf("reconcile after a change and a delete: exit %d %+v", code, r.Result)
		}
		for _, d := range dests {
			d.checkRich("images/a-100.png", changed, true)
			if _, ok := d.contents()["notes/plain.txt"]; ok {
				t.Errorf("the delete did not reach %s", d.kind)
			}
		}
		w.noop(2, "gcs", "azure")
	})

	t.Run("gcs-to-azure", func(t *testing.T) {
		w, src, dests := bucketWorld(t, "gcs", "copy", "azure")
		w.startWorker()
		gcsInvoice := invoice
		gcsInvoice.tags = nil // GCS objects have no tags
		src.putRich("invoices/inv-2.pdf", gcsInvoice)
		src.putRich("images/a-100.png", richObject{body: image.body, contentType: image.contentType, cacheControl: image.cacheControl, metadata: image.metadata})
		if r, code := w.reconcile(); code != 0 || r.Result.Outcome != "ok" || r.dest("azure").Copy != 2 {
			t.Fatalf("first reconcile: exit %d %+v", code, r.Result)
		}
		dests["azure"].checkRich("invoices/inv-2.pdf", gcsInvoice, true)
		w.noop(2, "azure")
	})
}
