package backends

import (
	"context"
	"strings"
	"testing"

	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/store/storetest"
)

// Open serves every driver behind store.Checked: the contract's checks apply
// whatever the scheme, and the optional interfaces survive the wrapper.
func TestOpenChecksEveryDriver(t *testing.T) {
	ctx := context.Background()
	dir, err := Open(ctx, store.Options{Name: "dir"}, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	_, err = dir.Put(ctx, "a//b", strings.NewReader("x"), store.PutOptions{SHA256: storetest.SHA256Hex([]byte("x")), Size: 1})
	storetest.WantCode(t, "put of an invalid key", err, store.CodeInvalid)
	_, err = dir.Put(ctx, "k", strings.NewReader("x"), store.PutOptions{Size: 1})
	storetest.WantCode(t, "put without a SHA-256", err, store.CodeInvalid)
	if _, ok := dir.(store.UploadAborter); ok {
		t.Error("the directory store claims to abort uploads")
	}

	s3, err := Open(ctx, store.Options{Name: "s3"}, "s3://bucket/p?endpoint=http://127.0.0.1:1&region=us-east-1") // no request
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if _, ok := s3.(store.UploadAborter); !ok {
		t.Error("the S3 store lost AbortUploads behind the wrapper")
	}
	err = s3.Delete(ctx, "p\uffff", store.DeleteOptions{})
	storetest.WantCode(t, "delete of a key S3 cannot list back", err, store.CodeInvalid)

	t.Setenv("BACKENDS_TEST_AZ", "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey="+
		"QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB;BlobEndpoint=http://127.0.0.1:1/acct;")
	az, err := Open(ctx, store.Options{Name: "az", Credentials: store.Credentials{AzureConnectionStringEnv: "BACKENDS_TEST_AZ"}},
		"azblob://acct/container/p") // no request
	if err != nil {
		t.Fatal(err)
	}
	defer az.Close()
	_, err = az.Stat(ctx, `dir\file`)
	storetest.WantCode(t, "stat of a key Azure would rename", err, store.CodeInvalid)
}
