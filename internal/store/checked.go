package store

import (
	"context"
	"errors"
	"io"
	"iter"
	"time"
)

// Checked returns d with the parts of the Store contract that do not depend on the
// backend applied once, in front of the driver, the way gocloud.dev/blob's portable
// type fronts its drivers (backends.Open applies it to every driver):
//
//   - every key of Stat, Open, Put, Copy, Delete (and AbortUploads) passes
//     ValidateKey with the driver's prefix length and the driver's own name rule
//     (KeyRules), so a key is refused with CodeInvalid before any request;
//   - Put requires PutOptions.SHA256;
//   - List skips the replicator's subtree unless asked, stops with CodeInvalid at a
//     key out of byte order (Ordered), and marks an entry whose key fails ValidateKey
//     as Rejected instead of failing the listing;
//   - every error is an *Error with a code: a driver's unclassified error becomes
//     one, classified by Network when it is a network or context error.
//
// The result implements UploadAborter exactly when d does. Checked(Checked(d)) does
// not check twice.
func Checked(d Store) Store {
	if c, ok := d.(interface{ checkedDriver() Store }); ok {
		d = c.checkedDriver()
	}
	c := &checked{d: d}
	if r, ok := d.(KeyRules); ok {
		c.rules = r
		c.prefixLen = r.KeyPrefixLen()
	}
	if a, ok := d.(UploadAborter); ok {
		return &checkedAborter{checked: c, a: a}
	}
	return c
}

// checked is the wrapper Checked returns for drivers without UploadAborter.
type checked struct {
	d         Store
	rules     KeyRules
	prefixLen int
}

func (c *checked) checkedDriver() Store { return c.d }

// CheckKey applies the checks Checked applies to the keys of s's driver: ValidateKey
// with its prefix length, then its KeyRules. Callers that build keys (a planner
// mapping source keys to a destination) use it to refuse a key before any transfer.
func CheckKey(s Store, key string) error {
	if c, ok := s.(interface{ checkedDriver() Store }); ok {
		s = c.checkedDriver()
	}
	prefixLen := 0
	r, ok := s.(KeyRules)
	if ok {
		prefixLen = r.KeyPrefixLen()
	}
	if err := ValidateKey(key, prefixLen); err != nil {
		return err
	}
	if ok {
		return r.CheckName(key)
	}
	return nil
}

func (c *checked) checkKey(op, key string) error {
	err := ValidateKey(key, c.prefixLen)
	if err == nil && c.rules != nil {
		err = c.rules.CheckName(key)
	}
	if err != nil {
		var se *Error
		if errors.As(err, &se) {
			return se
		}
		return &Error{Code: CodeInvalid, Op: op, Store: c.d.Name(), Key: key, Err: err,
			Hint: "rename the file or exclude it in the policy: the key cannot be stored under this name"}
	}
	return nil
}

// wrap makes err an *Error with a code, keeping one a driver returned.
func (c *checked) wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return err
	}
	code, hint, ok := Network{Endpoint: c.d.Name()}.Classify(err)
	if !ok {
		code, hint = CodeTransient, ""
	}
	return &Error{Code: code, Op: op, Store: c.d.Name(), Key: key, Hint: hint, Err: err}
}

// Name returns the store's name.
func (c *checked) Name() string { return c.d.Name() }

// Check passes to the driver.
func (c *checked) Check(ctx context.Context) error { return c.wrap("check", "", c.d.Check(ctx)) }

// Close passes to the driver.
func (c *checked) Close() error { return c.wrap("close", "", c.d.Close()) }

// Stat checks key, then asks the driver.
func (c *checked) Stat(ctx context.Context, key string) (*Attributes, error) {
	if err := c.checkKey("stat", key); err != nil {
		return nil, err
	}
	a, err := c.d.Stat(ctx, key)
	if err != nil {
		return nil, c.wrap("stat", key, err)
	}
	return a, nil
}

// Open checks key and offset, then asks the driver; read errors get codes too.
func (c *checked) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	if err := c.checkKey("open", key); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, Errorf(CodeInvalid, "open", c.d.Name(), key, "", "negative offset %d", offset)
	}
	r, err := c.d.Open(ctx, key, offset)
	if err != nil {
		return nil, c.wrap("open", key, err)
	}
	return &checkedReader{rc: r, c: c, key: key}, nil
}

// checkedReader gives read errors the codes of the store's other errors.
type checkedReader struct {
	rc  io.ReadCloser
	c   *checked
	key string
}

func (r *checkedReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF {
		err = r.c.wrap("open", r.key, err)
	}
	return n, err
}

func (r *checkedReader) Close() error { return r.c.wrap("open", r.key, r.rc.Close()) }

// Put checks key and the declared SHA-256, then streams through the driver.
func (c *checked) Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (*Object, error) {
	if err := c.checkKey("put", key); err != nil {
		return nil, err
	}
	if err := ValidateSHA256(opts.SHA256); err != nil {
		return nil, &Error{Code: CodeInvalid, Op: "put", Store: c.d.Name(), Key: key, Err: err,
			Hint: "every put declares the SHA-256 of its bytes"}
	}
	if opts.Precondition.IfNoneMatch && opts.Precondition.IfMatch != "" {
		return nil, Errorf(CodeInvalid, "put", c.d.Name(), key, "", "precondition sets both if-none-match and if-match")
	}
	obj, err := c.d.Put(ctx, key, r, opts)
	if err != nil {
		return nil, c.wrap("put", key, err)
	}
	return obj, nil
}

// Copy checks both keys, then asks the driver.
func (c *checked) Copy(ctx context.Context, dstKey, srcKey string, opts CopyOptions) (*Object, error) {
	if err := c.checkKey("copy", srcKey); err != nil {
		return nil, err
	}
	if err := c.checkKey("copy", dstKey); err != nil {
		return nil, err
	}
	if opts.Precondition.IfNoneMatch && opts.Precondition.IfMatch != "" {
		return nil, Errorf(CodeInvalid, "copy", c.d.Name(), dstKey, "", "precondition sets both if-none-match and if-match")
	}
	obj, err := c.d.Copy(ctx, dstKey, srcKey, opts)
	if err != nil {
		return nil, c.wrap("copy", dstKey, err)
	}
	return obj, nil
}

// Delete checks key, then asks the driver.
func (c *checked) Delete(ctx context.Context, key string, opts DeleteOptions) error {
	if err := c.checkKey("delete", key); err != nil {
		return err
	}
	return c.wrap("delete", key, c.d.Delete(ctx, key, opts))
}

// List orders and filters the driver's listing (Ordered) and marks entries whose key
// no store could hold as Rejected, so that one odd name does not fail a listing.
func (c *checked) List(ctx context.Context, opts ListOptions) iter.Seq2[Object, error] {
	seq := func(yield func(Object, error) bool) {
		for obj, err := range c.d.List(ctx, opts) {
			if err != nil {
				yield(Object{}, c.wrap("list", opts.Prefix, err))
				return
			}
			if obj.Rejected == "" && !obj.Unreadable {
				if err := ValidateKey(obj.Key, c.prefixLen); err != nil {
					obj.Rejected = err.Error()
				}
			}
			if !yield(obj, nil) {
				return
			}
		}
	}
	return Ordered(c.d.Name(), opts.IncludeInternal, seq)
}

// checkedAborter is the wrapper of drivers that implement UploadAborter.
type checkedAborter struct {
	*checked
	a UploadAborter
}

// AbortUploads checks key, then asks the driver.
func (c *checkedAborter) AbortUploads(ctx context.Context, key string) error {
	if err := c.checkKey("abort", key); err != nil {
		return err
	}
	return c.wrap("abort", key, c.a.AbortUploads(ctx, key))
}

// AbortStaleUploads asks the driver: it takes no key to check.
func (c *checkedAborter) AbortStaleUploads(ctx context.Context, cutoff time.Time) (int, error) {
	n, err := c.a.AbortStaleUploads(ctx, cutoff)
	return n, c.wrap("abort stale uploads", "", err)
}
