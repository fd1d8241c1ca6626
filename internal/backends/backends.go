// Package backends opens the store driver a location URL names, and keeps opened
// stores for reuse, so that every activity of a worker shares one client (and its
// connection pool) per location.
package backends

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"

	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/store/azstore"
	"github.com/cloudrepl/replicator/internal/store/gcsstore"
	"github.com/cloudrepl/replicator/internal/store/localstore"
	"github.com/cloudrepl/replicator/internal/store/s3store"
)

// Open parses rawURL, opens the driver of its scheme and fronts it with
// store.Checked, which applies the contract's key rules, listing order and error
// classes once for every driver.
func Open(ctx context.Context, opts store.Options, rawURL string) (store.Store, error) {
	d, err := openDriver(ctx, opts, rawURL)
	if err != nil {
		return nil, err
	}
	return store.Checked(d), nil
}

// openDriver opens the bare driver of rawURL's scheme.
func openDriver(ctx context.Context, opts store.Options, rawURL string) (store.Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, store.ConfigError(opts, "write a URL such as s3://bucket/prefix", "bad location URL: %v", err)
	}
	opts.URL = u
	switch u.Scheme {
	case "file":
		return localstore.New(ctx, opts)
	case "s3":
		return s3store.New(ctx, opts)
	case "gs":
		return gcsstore.New(ctx, opts)
	case "azblob":
		return azstore.New(ctx, opts)
	}
	return nil, store.ConfigError(opts, "supported: file://, s3://, gs://, azblob://", "unsupported scheme %q in %s", u.Scheme, u.Redacted())
}

// Spec identifies one location with everything needed to open it.
type Spec struct {
	// Name of the store in messages.
	Name string
	// URL of the location.
	URL string
	// Options other than Name and URL.
	Options store.Options
}

// Cache opens each distinct location once and hands out the same Store after.
type Cache struct {
	// WrapTransport, when set, gives each opened store's HTTP transport a wrapper
	// (the worker counts requests per store with it).
	WrapTransport func(storeName string) func(http.RoundTripper) http.RoundTripper
	// WrapDriver, when set, wraps each bare driver before store.Checked fronts it:
	// the fault-injection tests make a real driver refuse chosen requests this way.
	WrapDriver func(spec Spec, d store.Store) store.Store

	mu     sync.Mutex
	stores map[string]store.Store
}

// NewCache returns an empty cache.
func NewCache() *Cache { return &Cache{stores: map[string]store.Store{}} }

// Get returns the store for spec, opening it on first use.
func (c *Cache) Get(ctx context.Context, spec Spec) (store.Store, error) {
	id := fmt.Sprintf("%s\x00%s\x00%+v\x00%s\x00%s\x00%s\x00%+v", spec.Name, spec.URL, spec.Options.Credentials, spec.Options.StorageClass, spec.Options.SSE, spec.Options.SSEKMSKeyID, spec.Options.Tuning)
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.stores[id]; ok {
		return s, nil
	}
	opts := spec.Options
	opts.Name = spec.Name
	if c.WrapTransport != nil {
		opts.WrapTransport = c.WrapTransport(spec.Name)
	}
	d, err := openDriver(ctx, opts, spec.URL)
	if err != nil {
		return nil, err
	}
	if c.WrapDriver != nil {
		d = c.WrapDriver(spec, d)
	}
	s := store.Checked(d)
	c.stores[id] = s
	return s, nil
}

// Close closes every store opened through the cache.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first error
	for id, s := range c.stores {
		if err := s.Close(); err != nil && first == nil {
			first = err
		}
		delete(c.stores, id)
	}
	return first
}
