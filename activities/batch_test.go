package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloudrepl/replicator/internal/wire"

	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/store/localstore"
)

// sourceDir opens a directory store over a fresh temp dir.
func sourceDir(t *testing.T) (string, store.Store) {
	t.Helper()
	dir := t.TempDir()
	s, err := localstore.New(context.Background(), store.Options{Name: "src", URL: &url.URL{Scheme: "file", Path: dir}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return dir, s
}

func TestReadSourceHashesOnceIntoMemory(t *testing.T) {
	dir, src := sourceDir(t)
	data := []byte("2026 invoice, 3 lines")
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	a := New(&config.File{}, nil, nil, nil)
	sv, got, release, err := a.readSource(context.Background(), &config.Policy{}, src, "a.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	sum := sha256.Sum256(data)
	if string(got) != string(data) || sv.SHA256 != hex.EncodeToString(sum[:]) || sv.Size != int64(len(data)) || !sv.Exists {
		t.Fatalf("readSource = %+v, %q", sv, got)
	}
	if _, got, release, err := a.readSource(context.Background(), &config.Policy{}, src, "missing.txt"); err != nil || got != nil {
		t.Fatalf("a missing source: %q, %v", got, err)
	} else {
		release()
	}
}

// rewritingStore rewrites the file while the first read of it is under way.
type rewritingStore struct {
	store.Store
	path string
}

func (s rewritingStore) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	r, err := s.Store.Open(ctx, key, offset)
	if err != nil {
		return nil, err
	}
	time.Sleep(10 * time.Millisecond) // a visibly later modification time
	if err := os.WriteFile(s.path, []byte("rewritten by the application meanwhile"), 0o644); err != nil {
		return nil, err
	}
	return r, nil
}

func TestReadSourceRefusesATornSnapshot(t *testing.T) {
	dir, src := sourceDir(t)
	path := filepath.Join(dir, "a.txt")
	if err := os.WriteFile(path, []byte("first version"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := New(&config.File{}, nil, nil, nil)
	_, _, release, err := a.readSource(context.Background(), &config.Policy{}, rewritingStore{src, path}, "a.txt")
	release()
	if ErrorClass(err) != wire.ErrSourceChanged {
		t.Fatalf("err = %v (class %q), want %s", err, ErrorClass(err), wire.ErrSourceChanged)
	}
	if isPermanent(err) {
		t.Fatal("a changed source is permanent: the chunk would not read it again")
	}
}
