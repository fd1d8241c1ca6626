package gcsstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"

	"github.com/cloudrepl/replicator/internal/store"
)

// This file speaks GCS's resumable upload protocol itself (JSON API,
// uploadType=resumable) for puts whose caller will retry (PutOptions.Resume set):
// the SDK's Writer cannot continue a session that another process started, which
// is what a retry after a worker crash needs. The protocol:
//
//   - POST .../upload/storage/v1/b/BUCKET/o?uploadType=resumable with the object's
//     resource (name, content type, metadata, class, KMS key; its CRC-32C when
//     known up front) and the preconditions opens a session; its URI, in the
//     Location header, is the ResumeState's UploadID.
//   - PUT URI with "Content-Range: bytes FIRST-LAST/*" stores a chunk (a multiple
//     of 256 KiB); the 308 answer's Range header says how much the server holds.
//   - The last PUT declares the total ("bytes FIRST-LAST/TOTAL", or "bytes
//     */TOTAL" without a body) and the whole object's CRC-32C (X-Goog-Hash), which
//     GCS checks before it creates the object: bytes kept from an earlier attempt
//     are thus checked along with the new ones.
//   - PUT URI with "Content-Range: bytes */*" and no body asks how much the
//     server holds (308 with Range, or none for nothing); 404 or 410 means the
//     session is gone.
//
// fake-gcs-server (v1.56.1) differs in two ways the driver works around on an
// emulator endpoint: it finalizes the object on that status query instead of
// answering it, and it appends every chunk whatever its stated offset. It does,
// however, answer every chunk with the CRC-32C of what it holds. So on an emulator
// the driver asks with an empty chunk, and finds the server's size by matching
// that CRC-32C against the stream's at each chunk boundary from the offset the
// last attempt recorded (ResumeState.Offset, a lower bound). Chunks are appended
// whole or not at all there (the server reads a chunk's body before appending).

// chunkAlign is the granularity of resumable chunks.
const chunkAlign = 256 << 10

// statusPermanentRedirect is GCS's "resume incomplete": more bytes are expected.
const statusPermanentRedirect = 308

// session is one resumable upload session.
type session struct {
	s   *gcsStore
	key string
	uri string
}

// sessionObject is the part of the object resource a finished session returns.
type sessionObject struct {
	Size       string `json:"size"`
	Generation string `json:"generation"`
	Updated    string `json:"updated"`
	CRC32C     string `json:"crc32c"`
}

// resumePoint is what the server holds of a resumed session.
type resumePoint struct {
	// persisted is the number of bytes the server holds: exact when known, else
	// a lower bound (on an emulator, until the CRC-32C has been matched).
	persisted int64
	known     bool
	// crc is the CRC-32C of the bytes the server holds (emulator only).
	crc uint32
}

// chunkSize is the resumable chunk size: the part size rounded up to 256 KiB.
func (s *gcsStore) chunkSize() int64 {
	return (s.partSize + chunkAlign - 1) / chunkAlign * chunkAlign
}

// putResumable streams head and the rest of v through a resumable session,
// continuing the one opts.Resume names when it belongs to this put. The stream is
// read and hashed from its start; the bytes the server holds are skipped, not sent.
// Nothing is finalized before v has verified the whole stream.
func (s *gcsStore) putResumable(ctx context.Context, key string, head []byte, v *store.Verifier, opts store.PutOptions) (*storage.ObjectAttrs, error) {
	chunk := s.chunkSize()
	state := store.ResumeState{PartSize: chunk, Key: key, SHA256: opts.SHA256}
	var (
		sess *session
		rp   resumePoint
	)
	if rs := opts.Resume; rs.Matches(key, opts.SHA256, chunk) {
		sess = &session{s: s, key: key, uri: rs.UploadID}
		var err error
		rp, err = sess.query(ctx, rs.Offset)
		if err != nil {
			return nil, err
		}
		if rp.persisted < 0 {
			sess = nil // gone or finished since: start over
		} else {
			state.Offset = rs.Offset
		}
	}
	if sess == nil {
		var err error
		if sess, err = s.openSession(ctx, key, v, opts); err != nil {
			return nil, err
		}
		rp = resumePoint{known: true}
	}
	state.UploadID = sess.uri
	report := func(offset int64) {
		if opts.OnResumeState != nil {
			state.Offset = offset
			opts.OnResumeState(state)
		}
	}
	report(state.Offset)

	// keep tells whether a failure leaves the session for the next attempt: only
	// when the caller will retry and the failure may pass.
	fail := func(err error) (*storage.ObjectAttrs, error) {
		if !store.CodeOf(s.fail("put", key, err)).Retryable() {
			sess.cancel(ctx)
		}
		return nil, err
	}

	body := io.MultiReader(bytes.NewReader(head), v)
	buf := make([]byte, chunk)
	var crc uint32
	var off int64 // stream offset of buf's first byte
	for {
		n, rerr := io.ReadFull(body, buf)
		ended := errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF)
		if rerr != nil && !ended {
			return fail(s.readError(v, opts.Size, rerr))
		}
		data := buf[:n]
		before := crc
		crc = crc32.Update(crc, crc32cTable, data)
		end := off + int64(n)
		if !rp.known && off >= rp.persisted && before == rp.crc {
			rp.persisted, rp.known = off, true
		}
		if !rp.known && ended && crc == rp.crc {
			rp.persisted, rp.known = end, true
		}
		if ended {
			if err := v.Verify(); err != nil {
				sess.cancel(ctx)
				return nil, local(store.CodeMismatch, err)
			}
			if !rp.known {
				// The server holds bytes that are no prefix of this stream (the
				// source changed between attempts): this session cannot finish.
				sess.cancel(ctx)
				if opts.OnResumeState != nil {
					opts.OnResumeState(store.ResumeState{}) // the next attempt starts anew
				}
				return nil, local(store.CodeTransient, fmt.Errorf("resumable session holds bytes this stream does not start with; the next attempt starts a new session"))
			}
			a, err := sess.finish(ctx, data, off, rp.persisted, end, crc)
			if err != nil {
				return fail(err)
			}
			if opts.Progress != nil {
				opts.Progress(end)
			}
			return a, nil
		}
		if rp.known && rp.persisted < end {
			held, err := sess.send(ctx, data, off, rp.persisted)
			if err != nil {
				return fail(err)
			}
			rp.persisted = held
			report(held)
		}
		if rp.known && opts.Progress != nil {
			opts.Progress(end)
		}
		off = end
	}
}

// openSession starts a resumable session for key with the object's attributes
// and the put's precondition. A resumed session keeps the precondition it was
// opened with: the same write's, which can only be stricter than a later
// attempt's (the destination changed in between), so it fails safe with 412.
func (s *gcsStore) openSession(ctx context.Context, key string, v *store.Verifier, opts store.PutOptions) (*session, error) {
	resource := map[string]any{
		"name":        s.objectName(key),
		"contentType": opts.ContentType,
		"metadata":    store.WithTags(store.EncodeMetadata(opts.SHA256, opts.Size, opts.SourceVersion, opts.Metadata), opts.Tags),
	}
	if opts.CacheControl != "" {
		resource["cacheControl"] = opts.CacheControl
	}
	if opts.ContentType == "" {
		resource["contentType"] = store.ContentTypeOf(key)
	}
	if c := s.classFor(key); c != "" {
		resource["storageClass"] = c
	}
	if s.kmsKey != "" {
		resource["kmsKeyName"] = s.kmsKey
	}
	if c, ok := v.CRC32C(); ok {
		// Known before the bytes move (a Fingerprinted source): checked by the
		// server (fake-gcs-server too) when the object is created.
		resource["crc32c"] = crc32cString(c)
	}
	js, err := json.Marshal(resource)
	if err != nil {
		return nil, local(store.CodeInvalid, fmt.Errorf("encoding the object resource: %w", err))
	}
	q := url.Values{"uploadType": {"resumable"}, "name": {s.objectName(key)}}
	c, ok, err := conditions(opts.Precondition)
	if err != nil {
		return nil, err
	}
	if ok {
		q.Set("ifGenerationMatch", strconv.FormatInt(c.GenerationMatch, 10)) // 0: does not exist
	}
	u := s.uploadBase + "b/" + url.PathEscape(s.hints.bucket) + "/o?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(js))
	if err != nil {
		return nil, local(store.CodeInvalid, err)
	}
	req.Header.Set("Content-Type", "application/json; charset=UTF-8")
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	if err := googleapi.CheckResponse(resp); err != nil {
		return nil, err
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return nil, fmt.Errorf("GCS opened a resumable session without a Location header")
	}
	return &session{s: s, key: key, uri: loc}, nil
}

// rangeHeader matches the Range header of a 308: "bytes=0-LAST".
var rangeHeader = regexp.MustCompile(`^bytes=0-(\d+)$`)

// query asks what the server holds of the session. persisted is -1 when the
// session is gone (expired, cancelled) or already finished. offset is what the
// last attempt saw confirmed: on an emulator, which cannot say its size, it is the
// lower bound from which the stream's CRC-32C is matched with the server's.
func (ss *session) query(ctx context.Context, offset int64) (resumePoint, error) {
	cr := "bytes */*"
	if ss.s.emulated {
		// An empty chunk: fake-gcs-server appends nothing and answers with the
		// CRC-32C of what it holds, where a status query would finalize the object.
		cr = fmt.Sprintf("bytes %d-%d/*", offset, offset)
	}
	resp, err := ss.put(ctx, nil, cr, "")
	if err != nil {
		return resumePoint{}, err
	}
	defer drain(resp)
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return resumePoint{persisted: -1}, nil
	case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated:
		// Finished by an attempt whose answer was lost. Its object is the put's
		// only if its bytes are this stream's, which is not known here: write anew.
		return resumePoint{persisted: -1}, nil
	case resp.StatusCode != statusPermanentRedirect:
		return resumePoint{}, googleapi.CheckResponse(resp)
	}
	if ss.s.emulated {
		var o sessionObject
		if err := json.NewDecoder(resp.Body).Decode(&o); err != nil {
			return resumePoint{}, fmt.Errorf("decoding the emulator's session state: %w", err)
		}
		c, err := parseCRC32C(o.CRC32C)
		if err != nil {
			return resumePoint{}, fmt.Errorf("the emulator's session state has no usable crc32c: %w", err)
		}
		return resumePoint{persisted: offset, crc: c}, nil
	}
	held, err := heldBytes(resp)
	if err != nil {
		return resumePoint{}, err
	}
	return resumePoint{persisted: held, known: true}, nil
}

// heldBytes reads the size the server holds from a 308's Range header (none: 0).
func heldBytes(resp *http.Response) (int64, error) {
	r := resp.Header.Get("Range")
	if r == "" {
		return 0, nil
	}
	m := rangeHeader.FindStringSubmatch(r)
	if m == nil {
		return 0, fmt.Errorf("GCS answered with an unexpected Range %q", r)
	}
	last, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("GCS answered with an unexpected Range %q", r)
	}
	return last + 1, nil
}

// send stores data, which starts at stream offset off, from offset held on (the
// server holds everything before it), and returns what the server then holds. A
// server that keeps less than sent gets the rest again.
func (ss *session) send(ctx context.Context, data []byte, off, held int64) (int64, error) {
	end := off + int64(len(data))
	for held < end {
		part := data[held-off:]
		resp, err := ss.put(ctx, part, fmt.Sprintf("bytes %d-%d/*", held, end-1), "")
		if err != nil {
			return held, err
		}
		if resp.StatusCode != statusPermanentRedirect {
			err := ss.unexpected(resp)
			drain(resp)
			return held, err
		}
		now := end // fake-gcs-server echoes the range sent, and appended all of it
		if !ss.s.emulated {
			if now, err = heldBytes(resp); err != nil {
				drain(resp)
				return held, err
			}
		}
		drain(resp)
		if now <= held || now > end {
			return held, local(store.CodeTransient, fmt.Errorf("GCS holds %d bytes of the session after bytes %d-%d were sent", now, held, end-1))
		}
		held = now
	}
	return held, nil
}

// finish sends the last bytes, data at stream offset off of which the server
// holds everything before held, declaring the total size and the whole object's
// CRC-32C, and returns the new object.
func (ss *session) finish(ctx context.Context, data []byte, off, held, total int64, crc uint32) (*storage.ObjectAttrs, error) {
	if held > total {
		return nil, local(store.CodeTransient, fmt.Errorf("the resumable session holds %d bytes, more than the object's %d", held, total))
	}
	part := data[held-off:]
	cr := fmt.Sprintf("bytes %d-%d/%d", held, total-1, total)
	if len(part) == 0 {
		cr = fmt.Sprintf("bytes */%d", total)
	}
	resp, err := ss.put(ctx, part, cr, "crc32c="+crc32cString(crc))
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return nil, ss.unexpected(resp)
	}
	var o sessionObject
	if err := json.NewDecoder(resp.Body).Decode(&o); err != nil {
		return nil, fmt.Errorf("decoding the new object: %w", err)
	}
	a := &storage.ObjectAttrs{}
	a.Size, _ = strconv.ParseInt(o.Size, 10, 64)
	a.Generation, _ = strconv.ParseInt(o.Generation, 10, 64)
	a.Updated, _ = time.Parse(time.RFC3339Nano, o.Updated)
	if got, err := parseCRC32C(o.CRC32C); err != nil || got != crc || a.Size != total {
		// A server that checked X-Goog-Hash never gets here; one that did not
		// (fake-gcs-server) created an object that is not the stream: remove it.
		ss.s.removeGeneration(ctx, ss.key, a.Generation)
		return nil, local(store.CodeMismatch, fmt.Errorf("the object GCS created has %d bytes and CRC-32C %q, the stream %d bytes and %s", a.Size, o.CRC32C, total, crc32cString(crc)))
	}
	return a, nil
}

// put sends one request of the session.
func (ss *session) put(ctx context.Context, data []byte, contentRange, hash string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, ss.uri, bytes.NewReader(data))
	if err != nil {
		return nil, local(store.CodeInvalid, fmt.Errorf("resumable session URI %q: %w", ss.uri, err))
	}
	req.ContentLength = int64(len(data))
	if len(data) == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Range", contentRange)
	if hash != "" {
		req.Header.Set("X-Goog-Hash", hash)
	}
	return ss.s.http.Do(req)
}

// unexpected turns an answer that is not the protocol's next step into an error.
// A 404 or 410 means the session is gone: the next attempt starts a new one.
func (ss *session) unexpected(resp *http.Response) error {
	err := googleapi.CheckResponse(resp)
	if err == nil {
		err = fmt.Errorf("GCS answered %s to a resumable upload request", resp.Status)
	}
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
		return local(store.CodeTransient, fmt.Errorf("the resumable session is gone: %w", err))
	}
	return err
}

// cancel ends the session, so that none of its bytes can become an object. It
// runs on a context of its own, since the put's may be why it is cancelled.
func (ss *session) cancel(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, ss.uri, nil)
	if err != nil {
		return
	}
	if resp, err := ss.s.http.Do(req); err == nil {
		drain(resp)
	}
}

// removeGeneration deletes exactly one generation of key, which the driver created
// and must not leave behind.
func (s *gcsStore) removeGeneration(ctx context.Context, key string, gen int64) {
	if gen <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_ = s.bucket.Object(s.objectName(key)).Generation(gen).Delete(ctx)
}

// drain reads what is left of a response and closes it, so that its connection
// can be reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
}

// crc32cString is a CRC-32C as GCS writes it: big-endian, base64.
func crc32cString(c uint32) string {
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, c))
}

// parseCRC32C reads a CRC-32C as GCS writes it.
func parseCRC32C(s string) (uint32, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 4 {
		return 0, fmt.Errorf("CRC-32C %q is not 4 bytes in base64", s)
	}
	return binary.BigEndian.Uint32(b), nil
}

// crc32cOf is the CRC-32C of data.
func crc32cOf(data []byte) uint32 { return crc32.Checksum(data, crc32cTable) }
