package s3store

import (
	"testing"

	"github.com/cloudrepl/replicator/internal/store"
)

// FuzzS3Name: a name checkS3Name accepts holds nothing S3's XML listings cannot carry
// and, on an S3-compatible server, no segment longer than MinIO keeps.
func FuzzS3Name(f *testing.F) {
	for _, seed := range []string{"a/b.txt", "\ufffe", string(make([]byte, 300)), "x/" + string(make([]byte, 256))} {
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, name string, compatible bool) {
		if store.ValidateKey(name, 0) != nil {
			return
		}
		if err := checkS3Name(name, compatible); err != nil {
			return
		}
		if store.XMLUnsafeRune(name) >= 0 {
			t.Fatalf("accepted %q with a rune S3 listings cannot carry", name)
		}
		if compatible && len(store.LongestSegment(name)) > maxCompatSegment {
			t.Fatalf("accepted %q with a segment MinIO cannot keep", name)
		}
	})
}
