package azstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/cloudrepl/replicator/internal/store"
)

// Check lists at most one blob under the root: it proves the container exists, the
// credentials are accepted and listing (which reconcile needs) is allowed.
func (s *blobStore) Check(ctx context.Context) error {
	lo := &container.ListBlobsFlatOptions{MaxResults: to.Ptr[int32](1)}
	if prefix := s.listPrefix(""); prefix != "" {
		lo.Prefix = &prefix
	}
	pager := s.client.NewListBlobsFlatPager(lo)
	if _, err := pager.NextPage(ctx); err != nil {
		return s.fail("check", "", err)
	}
	return nil
}

// Stat reads the blob's properties and metadata.
func (s *blobStore) Stat(ctx context.Context, key string) (*store.Attributes, error) {
	const op = "stat"
	p, err := s.client.NewBlobClient(s.blobName(key)).GetProperties(ctx, nil)
	if err != nil {
		return nil, s.fail(op, key, err)
	}
	a := &store.Attributes{
		Object:       store.Object{Key: key, Size: deref(p.ContentLength), ETag: etagToken(p.ETag), ModTime: deref(p.LastModified)},
		ContentType:  deref(p.ContentType),
		CacheControl: deref(p.CacheControl),
	}
	store.DecodeMetadata(fromAzureMetadata(p.Metadata), a)
	if deref(p.TagCount) > 0 {
		// Index tags cost a request of their own: asked only of blobs that have some.
		t, err := s.client.NewBlobClient(s.blobName(key)).GetTags(ctx, nil)
		if err != nil {
			if e := s.fail(op, key, err); store.CodeOf(e) != store.CodePermission {
				return nil, e
			}
			return a, nil // an identity without the tags permission sees no tags
		}
		a.Tags = make(map[string]string, len(t.BlobTagSet))
		for _, tag := range t.BlobTagSet {
			a.Tags[deref(tag.Key)] = deref(tag.Value)
		}
	}
	if st := deref(p.CopyStatus); st != "" && st != blob.CopyStatusTypeSuccess {
		// A copy still pending, failed or aborted: the bytes are not (yet) those the
		// recorded SHA-256 describes, so the blob must not pass for a replica.
		a.SHA256 = ""
	}
	return a, nil
}

// Open streams the blob from offset. Reads that fail midway are resumed by the SDK
// from where they stopped, pinned to the ETag first seen.
func (s *blobStore) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	const op = "open"
	bc := s.client.NewBlobClient(s.blobName(key))
	resp, err := bc.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: offset}})
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		// Azure refuses a range that starts at the end; reading from there is empty.
		p, perr := bc.GetProperties(ctx, nil)
		if perr != nil {
			return nil, s.fail(op, key, perr)
		}
		if deref(p.ContentLength) == offset {
			return io.NopCloser(strings.NewReader("")), nil
		}
		return nil, store.Errorf(store.CodeInvalid, op, s.name, key, "", "offset %d is beyond the object's %d bytes", offset, deref(p.ContentLength))
	}
	if err != nil {
		return nil, s.fail(op, key, err)
	}
	body := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: 3})
	return &readCloser{rc: body, fail: func(err error) error { return s.fail("read", key, err) }}, nil
}

// readCloser classifies the errors of a download's body like those of the calls.
type readCloser struct {
	rc   io.ReadCloser
	fail func(error) error
}

func (r *readCloser) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF {
		err = r.fail(err)
	}
	return n, err
}

func (r *readCloser) Close() error { return r.rc.Close() }

// Delete removes the blob and its snapshots; a missing blob is not an error. With
// opts.IfMatch the request carries If-Match, which Azure (and Azurite) check
// atomically: a blob with another ETag answers 412 ConditionNotMet.
func (s *blobStore) Delete(ctx context.Context, key string, opts store.DeleteOptions) error {
	const op = "delete"
	do := &blob.DeleteOptions{DeleteSnapshots: to.Ptr(blob.DeleteSnapshotsOptionTypeInclude)}
	if opts.IfMatch != "" {
		do.AccessConditions = conditions(store.Precondition{IfMatch: opts.IfMatch})
	}
	bc := s.client.NewBlobClient(s.blobName(key))
	_, err := bc.Delete(ctx, do)
	if err == nil || bloberror.HasCode(err, bloberror.BlobNotFound) {
		return nil
	}
	e := s.fail(op, key, err)
	if opts.IfMatch != "" && store.IsPrecondition(e) {
		// A conditional delete of a blob that is already gone has reached its goal.
		if _, perr := bc.GetProperties(ctx, nil); bloberror.HasCode(perr, bloberror.BlobNotFound) {
			return nil
		}
	}
	return e
}

func (s *blobStore) listPrefix(p string) string {
	if s.prefix == "" {
		return p
	}
	return s.prefix + "/" + p
}

// List pages through List Blobs lazily. Azure lists blob names in UTF-8 byte order;
// store.Checked checks it.
func (s *blobStore) List(ctx context.Context, opts store.ListOptions) iter.Seq2[store.Object, error] {
	return func(yield func(store.Object, error) bool) {
		prefix := s.listPrefix(opts.Prefix)
		size := int32(s.pageSize)
		if opts.PageSize > 0 {
			size = int32(min(opts.PageSize, maxListPageSize))
		}
		lo := &container.ListBlobsFlatOptions{MaxResults: &size}
		if prefix != "" {
			lo.Prefix = &prefix
		}
		strip := s.listPrefix("")
		pager := s.client.NewListBlobsFlatPager(lo)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				yield(store.Object{}, s.fail("list", "", err))
				return
			}
			if page.Segment == nil {
				continue
			}
			for _, it := range page.Segment.BlobItems {
				if it.Name == nil || it.Properties == nil {
					continue
				}
				obj := store.Object{
					Key:     strings.TrimPrefix(*it.Name, strip),
					Size:    deref(it.Properties.ContentLength),
					ETag:    etagToken(it.Properties.ETag),
					ModTime: deref(it.Properties.LastModified),
				}
				if !yield(obj, nil) {
					return
				}
			}
		}
	}
}

// Copy runs Copy Blob from srcKey to dstKey in the container and waits for it. With
// opts.Attributes, the new metadata goes with the copy and the content type is set
// right after it, conditioned on the copy's ETag (Copy Blob cannot set headers).
func (s *blobStore) Copy(ctx context.Context, dstKey, srcKey string, opts store.CopyOptions) (*store.Object, error) {
	const op = "copy"
	src := s.client.NewBlobClient(s.blobName(srcKey))
	dst := s.client.NewBlobClient(s.blobName(dstKey))
	var meta map[string]*string
	var tags map[string]string
	if opts.Attributes != nil {
		meta = toAzureMetadata(store.MetadataOf(opts.Attributes))
		tags = opts.Attributes.Tags
	} else {
		// Copy Blob carries metadata and headers, not index tags: read the source's.
		// An identity without the tags permission (Storage Blob Data Contributor
		// lacks it) still copies, without them: a trash or undo copy must not fail
		// for want of tags.
		t, err := src.GetTags(ctx, nil)
		if err != nil {
			if e := s.fail(op, srcKey, err); store.CodeOf(e) != store.CodePermission {
				return nil, e
			}
		}
		for _, tag := range t.BlobTagSet {
			if tags == nil {
				tags = map[string]string{}
			}
			tags[deref(tag.Key)] = deref(tag.Value)
		}
	}
	start, err := dst.StartCopyFromURL(ctx, src.URL(), &blob.StartCopyFromURLOptions{
		Metadata:         meta,
		BlobTags:         tags,
		Tier:             s.tierFor(dstKey),
		AccessConditions: conditions(opts.Precondition),
	})
	if err != nil {
		e := s.fail(op, dstKey, err)
		if se := (*store.Error)(nil); errors.As(e, &se) && se.Code == store.CodeNotFound {
			se.Key = srcKey // the missing object is the source...
			if opts.Precondition.IfMatch != "" {
				// ...unless it is the destination that If-Match expected.
				if _, serr := src.GetProperties(ctx, nil); serr == nil {
					se.Key, se.Code, se.Hint = dstKey, store.CodePrecondition, "the object is gone: re-read it and decide again"
				}
			}
		}
		return nil, e
	}
	p, err := s.waitCopy(ctx, dst, dstKey, deref(start.CopyID))
	if err != nil {
		return nil, err
	}
	obj := &store.Object{Key: dstKey, Size: deref(p.ContentLength), ETag: etagToken(p.ETag), ModTime: deref(p.LastModified)}
	if opts.Attributes == nil {
		return obj, nil
	}
	ifMatch := &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: p.ETag}}
	if ct, cc := contentType(dstKey, opts.Attributes.ContentType), opts.Attributes.CacheControl; ct != deref(p.ContentType) || cc != deref(p.CacheControl) {
		// Set Blob Properties replaces every header: carry the copied ones over.
		r, err := dst.SetHTTPHeaders(ctx, blob.HTTPHeaders{
			BlobContentType:        &ct,
			BlobContentMD5:         p.ContentMD5,
			BlobCacheControl:       optional(cc),
			BlobContentDisposition: p.ContentDisposition,
			BlobContentEncoding:    p.ContentEncoding,
			BlobContentLanguage:    p.ContentLanguage,
		}, &blob.SetHTTPHeadersOptions{AccessConditions: ifMatch})
		if err != nil {
			return nil, s.writeFailure(op, dstKey, fmt.Errorf("setting the content type and cache control after the copy: %w", err), true)
		}
		obj.ETag, obj.ModTime = etagToken(r.ETag), deref(r.LastModified)
		ifMatch.ModifiedAccessConditions.IfMatch = r.ETag
	}
	if len(meta) == 0 {
		// Copy Blob keeps the source's metadata when given none; clear it explicitly.
		r, err := dst.SetMetadata(ctx, map[string]*string{}, &blob.SetMetadataOptions{AccessConditions: ifMatch})
		if err != nil {
			return nil, s.writeFailure(op, dstKey, fmt.Errorf("clearing metadata after the copy: %w", err), true)
		}
		obj.ETag, obj.ModTime = etagToken(r.ETag), deref(r.LastModified)
	}
	return obj, nil
}

// Polling of a pending copy: Azure copies within an account quickly but not always
// synchronously.
const (
	copyPollFirst = 100 * time.Millisecond
	copyPollMax   = 5 * time.Second
	cleanupTime   = 30 * time.Second
)

// waitCopy polls the destination until the copy copyID leaves the pending state. A
// copy that fails, or that ctx abandons, is aborted and its destination deleted.
func (s *blobStore) waitCopy(ctx context.Context, dst *blob.Client, dstKey, copyID string) (blob.GetPropertiesResponse, error) {
	const op = "copy"
	delay := copyPollFirst
	for {
		p, err := dst.GetProperties(ctx, nil)
		if err != nil {
			if ctx.Err() != nil {
				s.abandonCopy(dst, copyID, nil)
			}
			// A destination deleted under a running copy is a conflict, not a missing source.
			return p, s.writeFailure(op, dstKey, fmt.Errorf("waiting for the copy: %w", err), true)
		}
		if id := deref(p.CopyID); copyID != "" && id != "" && id != copyID {
			return p, store.Errorf(store.CodePrecondition, op, s.name, dstKey, "another writer replaced the destination during the copy: re-read it and decide again",
				"copy %s was superseded by copy %s", copyID, id)
		}
		switch st := deref(p.CopyStatus); st {
		case blob.CopyStatusTypeSuccess, "":
			return p, nil
		case blob.CopyStatusTypePending:
		default:
			s.abandonCopy(dst, "", p.ETag)
			return p, store.Errorf(store.CodeTransient, op, s.name, dstKey, "the service could not complete the copy; it is retried",
				"copy %s ended %s: %s", copyID, st, deref(p.CopyStatusDescription))
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			s.abandonCopy(dst, copyID, nil)
			return p, s.fail(op, dstKey, fmt.Errorf("waiting for the copy: %w", ctx.Err()))
		case <-t.C:
		}
		delay = min(2*delay, copyPollMax)
	}
}

// abandonCopy aborts a pending copy (when copyID is set) and deletes the
// destination, which Azure would otherwise keep with zero or partial bytes but the
// copied metadata. It runs on its own context: the caller's may be cancelled.
func (s *blobStore) abandonCopy(dst *blob.Client, copyID string, etag *azcore.ETag) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTime)
	defer cancel()
	if copyID != "" {
		if _, err := dst.AbortCopyFromURL(ctx, copyID, nil); err != nil && !bloberror.HasCode(err, bloberror.NoPendingCopyOperation) {
			return
		}
	}
	var ac *blob.AccessConditions
	if etag != nil {
		ac = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: etag}}
	}
	_, _ = dst.Delete(ctx, &blob.DeleteOptions{AccessConditions: ac})
}
