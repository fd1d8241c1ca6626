//go:build integration

package gcsstore

import (
	"os"
	"strconv"
	"testing"

	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/store/storetest"
)

func TestTmpBench(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv("GCS_BENCH_PART_MIB"))
	storetest.BoundedMemoryPut(t, newAt(store.Tuning{PartSize: int64(mb) << 20}), 1<<30, 200<<20)
}
