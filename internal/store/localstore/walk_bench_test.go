package localstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cloudrepl/replicator/internal/store"
)

// BenchmarkListTree lists a share of 20,000 files in directories of 100, three
// levels deep, as the scale benchmark lays them out: the cost of a reconcile's
// source walk per file.
func BenchmarkListTree(b *testing.B) {
	dir := b.TempDir()
	const files = 20000
	for i := range files {
		p := filepath.Join(dir, "tree", fmt.Sprintf("%03d/%03d/f%07d.dat", i/100/100, i/100%100, i))
		if i%100 == 0 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	s := mustNew(b, "bench", "file://"+dir)
	b.ResetTimer()
	for b.Loop() {
		n := 0
		for _, err := range s.List(context.Background(), store.ListOptions{}) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != files {
			b.Fatalf("listed %d files, want %d", n, files)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*files), "ns/file")
}
