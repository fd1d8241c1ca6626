//go:build integration

package azstore

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"

	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/store/storetest"
)

// TestStagesStayInDefaultTier writes stages (one Put Blob, a block list) with the
// Cool tier configured, commits them by copy and puts user keys directly: stages
// must take the account's default tier (an Archive stage could not be copied), user
// keys the configured one.
func TestStagesStayInDefaultTier(t *testing.T) {
	endpoint, account := testEnv(t)
	u := storeURL(endpoint, account, testContainer, storetest.UniquePrefix(t))
	st, err := New(context.Background(), store.Options{Name: "azurite", URL: mustURL(t, u), StorageClass: "Cool",
		Credentials: store.Credentials{AzureConnectionStringEnv: connEnv}, Tuning: smallTuning})
	if err != nil {
		t.Fatal(err)
	}
	s := st.(*blobStore)
	ctx := context.Background()
	tierOf := func(key string) string {
		t.Helper()
		p, err := s.client.NewBlobClient(s.blobName(key)).GetProperties(ctx, nil)
		if err != nil {
			t.Fatalf("properties of %s: %v", key, err)
		}
		// Azurite reports the tier a copy was given as inferred; the tier is what counts.
		return deref(p.AccessTier)
	}
	for i, size := range []int64{1 << 20, 12 << 20} {
		stage := ".replicator/staging/" + string(rune('a'+i))
		if _, err := s.Put(ctx, stage, storetest.Stream(3, size), store.PutOptions{SHA256: storetest.StreamSHA256(3, size), Size: size}); err != nil {
			t.Fatal(err)
		}
		if got := tierOf(stage); got != string(blob.AccessTierHot) {
			t.Errorf("stage of %d bytes is in tier %q, want the account's default (Hot on Azurite)", size, got)
		}
		a, err := s.Stat(ctx, stage)
		if err != nil {
			t.Fatal(err)
		}
		final := "final-" + string(rune('a'+i))
		if _, err := s.Copy(ctx, final, stage, store.CopyOptions{Attributes: a}); err != nil {
			t.Fatal(err)
		}
		if got := tierOf(final); got != string(blob.AccessTierCool) {
			t.Errorf("committed blob of %d bytes is in tier %q, want Cool", size, got)
		}
		direct := "direct-" + string(rune('a'+i))
		if _, err := s.Put(ctx, direct, storetest.Stream(4, size), store.PutOptions{SHA256: storetest.StreamSHA256(4, size), Size: size}); err != nil {
			t.Fatal(err)
		}
		if got := tierOf(direct); got != string(blob.AccessTierCool) {
			t.Errorf("direct put of %d bytes is in tier %q, want Cool", size, got)
		}
	}
}
