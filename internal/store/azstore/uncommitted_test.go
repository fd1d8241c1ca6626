//go:build integration

package azstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/cloudrepl/replicator/internal/store"
)

// TestCreateOnlyPutOverUncommittedBlocks: a staged upload that failed (its source
// shrank mid-way, as the fault suite found) leaves uncommitted blocks under the
// key, and Azurite then refuses a create-only Put Blob there with
// BlobAlreadyExists although no blob exists. The create-only put of the next
// version must succeed, and a create-only put over a committed blob must still
// fail as a precondition.
func TestCreateOnlyPutOverUncommittedBlocks(t *testing.T) {
	endpoint, account := testEnv(t)
	prefix := fmt.Sprintf("uncommitted-%d", time.Now().UnixNano())
	s := open(t, storeURL(endpoint, account, testContainer, prefix), connEnv, smallTuning)
	defer s.Close()
	ctx := context.Background()
	c, err := container.NewClientFromConnectionString(os.Getenv(connEnv), testContainer, nil)
	must(t, err)
	up, err := newUpload(smallTuning.PartSize)
	must(t, err)
	leftover := bytes.Repeat([]byte("the first version, abandoned "), 1000)
	sum := md5.Sum(leftover)
	_, err = c.NewBlockBlobClient(prefix+"/scan.tif").StageBlock(ctx, up.blockID(0, sum), streaming.NopCloser(bytes.NewReader(leftover)), nil)
	must(t, err)

	data := []byte("the second version, small")
	sha := sha256.Sum256(data)
	put := func() (*store.Object, error) {
		return s.Put(ctx, "scan.tif", bytes.NewReader(data), store.PutOptions{SHA256: hex.EncodeToString(sha[:]), Size: int64(len(data)),
			Precondition: store.Precondition{IfNoneMatch: true}})
	}
	if _, err := put(); err != nil {
		t.Fatalf("create-only put over uncommitted blocks: %v", err)
	}
	r, err := s.Open(ctx, "scan.tif", 0)
	must(t, err)
	got, err := io.ReadAll(r)
	r.Close()
	must(t, err)
	if !bytes.Equal(got, data) {
		t.Fatalf("read back %q, want %q", got, data)
	}
	if _, err := put(); store.CodeOf(err) != store.CodePrecondition {
		t.Fatalf("a create-only put over a committed blob: %v; want a precondition failure", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
