package localstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudrepl/replicator/internal/store"
)

// A replica edited in place keeps its extended attribute; its recorded SHA-256,
// version and vector must not be believed any more (a restored or synced file that a
// user then edits would otherwise never be hashed again, and never replicate).
func TestEditedReplicaLosesItsRecord(t *testing.T) {
	dir := t.TempDir()
	s := mustNew(t, "local-test", "file://"+dir)
	ctx := context.Background()
	body := "first version"
	sum := sha256.Sum256([]byte(body))
	if _, err := s.Put(ctx, "f.txt", strings.NewReader(body), store.PutOptions{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(body)),
		SourceVersion: "1:x", Metadata: map[string]string{store.MetaVector: "a:1,b:0", "owner": "ops"}}); err != nil {
		t.Fatal(err)
	}
	a, err := s.Stat(ctx, "f.txt")
	if err != nil || a.SHA256 == "" || a.Metadata[store.MetaVector] != "a:1,b:0" {
		t.Fatalf("fresh replica: %+v, %v", a, err)
	}
	time.Sleep(10 * time.Millisecond)
	// Same size, other bytes, written in place: the attribute stays on the inode.
	if err := os.WriteFile(filepath.Join(dir, "f.txt"), []byte("other version"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err = s.Stat(ctx, "f.txt")
	if err != nil {
		t.Fatal(err)
	}
	if a.SHA256 != "" || a.SourceVersion != "" || a.SourceSize != -1 || a.Metadata[store.MetaVector] != "" {
		t.Errorf("edited file still claims the replica's record: %+v", a)
	}
	if a.Metadata["owner"] != "ops" {
		t.Errorf("user metadata dropped: %+v", a.Metadata)
	}
}
