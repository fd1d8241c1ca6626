package s3store

import (
	"bytes"
	"context"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cloudrepl/replicator/internal/store"
)

// Copy copies srcKey to dstKey on the server.
//
// Unconditional copies up to the copy threshold are one CopyObject. Conditional copies
// always go through a multipart copy, whose CompleteMultipartUpload carries the
// precondition: MinIO (and other S3-compatible servers) silently ignore If-None-Match
// and If-Match on CopyObject, and a guard that is ignored would let an older version
// overwrite a newer one.
func (s *s3Store) Copy(ctx context.Context, dstKey, srcKey string, opts store.CopyOptions) (*store.Object, error) {
	src, err := s.head(ctx, s.full(srcKey))
	if err != nil {
		return nil, s.classify("copy", srcKey, false, err)
	}
	srcETag := quoteETag(aws.ToString(src.ETag))
	size := aws.ToInt64(src.ContentLength)
	pre := opts.Precondition
	conditional := pre.IfNoneMatch || pre.IfMatch != ""

	hdr := objectHeaders{contentType: aws.ToString(src.ContentType), metadata: src.Metadata, cacheControl: aws.ToString(src.CacheControl)}
	if aws.ToInt32(src.TagCount) > 0 {
		// A multipart copy does not carry the source's tags as CopyObject does.
		tags, err := s.tags(ctx, "copy", srcKey)
		if err != nil {
			return nil, err
		}
		hdr.tagging = store.EncodeTags(tags)
	}
	if opts.Attributes != nil {
		meta, err := encodeMetadata(store.MetadataOf(opts.Attributes))
		if err != nil {
			return nil, store.Errorf(store.CodeInvalid, "copy", s.name, dstKey, "rename the metadata entry", "%v", err)
		}
		hdr = objectHeaders{contentType: opts.Attributes.ContentType, metadata: meta, cacheControl: opts.Attributes.CacheControl, tagging: store.EncodeTags(opts.Attributes.Tags)}
		if hdr.contentType == "" {
			hdr.contentType = store.ContentTypeOf(dstKey)
		}
	}

	switch {
	case dstKey == srcKey && opts.Attributes == nil:
		// S3 refuses to copy an object onto itself unchanged; the result would be the
		// object as it is, so only the precondition needs an answer.
		if err := s.precheck(ctx, "copy", dstKey, pre); err != nil {
			return nil, err
		}
		return &store.Object{Key: dstKey, Size: size, ETag: srcETag, ModTime: aws.ToTime(src.LastModified)}, nil
	case size == 0 && conditional:
		// Nothing to copy but headers: a conditional PutObject is the commit.
		return s.putEmpty(ctx, dstKey, pre, hdr)
	case size > s.copyThreshold || conditional:
		return s.copyMultipart(ctx, dstKey, srcKey, srcETag, size, pre, hdr)
	}

	in := &s3.CopyObjectInput{
		Bucket:            &s.bucket,
		Key:               aws.String(s.full(dstKey)),
		CopySource:        aws.String(copySource(s.bucket, s.full(srcKey))),
		CopySourceIfMatch: aws.String(srcETag),
		MetadataDirective: types.MetadataDirectiveCopy,
	}
	if opts.Attributes != nil {
		in.MetadataDirective = types.MetadataDirectiveReplace
		in.ContentType = &hdr.contentType
		in.Metadata = hdr.metadata
		in.CacheControl = optional(hdr.cacheControl)
		in.TaggingDirective = types.TaggingDirectiveReplace
		in.Tagging = optional(hdr.tagging)
	}
	s.applyStorageOptions(dstKey, &in.StorageClass, &in.ServerSideEncryption, &in.SSEKMSKeyId)
	out, err := s.client.CopyObject(ctx, in)
	if err != nil {
		return nil, s.classify("copy", dstKey, false, err)
	}
	obj := &store.Object{Key: dstKey, Size: size, ModTime: serverTime(out.ResultMetadata)}
	if r := out.CopyObjectResult; r != nil {
		obj.ETag = quoteETag(aws.ToString(r.ETag))
		if r.LastModified != nil {
			obj.ModTime = *r.LastModified
		}
	}
	return obj, nil
}

// putEmpty writes an empty object with hdr under the precondition pre.
func (s *s3Store) putEmpty(ctx context.Context, key string, pre store.Precondition, hdr objectHeaders) (*store.Object, error) {
	in := &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           aws.String(s.full(key)),
		Body:          bytes.NewReader(nil),
		ContentLength: aws.Int64(0),
		ContentType:   &hdr.contentType,
		Metadata:      hdr.metadata,
		CacheControl:  optional(hdr.cacheControl),
		Tagging:       optional(hdr.tagging),
	}
	s.applyStorageOptions(key, &in.StorageClass, &in.ServerSideEncryption, &in.SSEKMSKeyId)
	in.IfNoneMatch, in.IfMatch = preconditionHeaders(pre)
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		return nil, s.classify("copy", key, pre.IfMatch != "", err)
	}
	return &store.Object{Key: key, ETag: quoteETag(aws.ToString(out.ETag)), ModTime: serverTime(out.ResultMetadata)}, nil
}

// copyMultipart copies the source in ranges of the copy part size (one part when the
// object is below it), Concurrency parts at a time, and commits under pre.
func (s *s3Store) copyMultipart(ctx context.Context, dstKey, srcKey, srcETag string, size int64, pre store.Precondition, hdr objectHeaders) (*store.Object, error) {
	ifMatch := pre.IfMatch != ""
	if err := s.precheck(ctx, "copy", dstKey, pre); err != nil {
		return nil, err
	}
	partSize := s.partSizeFor(size, s.copyPartSize)
	u, err := s.createUpload(ctx, dstKey, hdr, false)
	if err != nil {
		return nil, s.classify("copy", dstKey, false, err)
	}
	if err := u.copyParts(ctx, srcKey, srcETag, size, partSize, s.concurrency); err != nil {
		u.abort(ctx)
		return nil, s.classify("copy", dstKey, false, err)
	}
	out, err := u.complete(ctx, pre)
	if err != nil {
		u.abort(ctx)
		return nil, s.classify("copy", dstKey, ifMatch, err)
	}
	return &store.Object{Key: dstKey, Size: size, ETag: quoteETag(aws.ToString(out.ETag)), ModTime: serverTime(out.ResultMetadata)}, nil
}

// copyParts runs copyPart over the source's ranges with up to concurrency requests at
// once, stopping at the first error.
func (u *upload) copyParts(ctx context.Context, srcKey, srcETag string, size, partSize int64, concurrency int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	sem := make(chan struct{}, concurrency)
	for number, first := 1, int64(0); first < size; number, first = number+1, first+partSize {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		last := min(first+partSize, size) - 1
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := u.copyPart(ctx, number, srcKey, srcETag, first, last); err != nil {
				once.Do(func() { firstErr = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// copySource is the x-amz-copy-source value: bucket and key, URL-encoded. Every byte
// but unreserved ones and '/' is escaped, since servers differ on how they decode '+'
// and other reserved characters.
func copySource(bucket, fullKey string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.WriteString(bucket)
	b.WriteByte('/')
	for i := 0; i < len(fullKey); i++ {
		c := fullKey[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("-_.~/", c) >= 0:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}
