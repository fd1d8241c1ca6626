package storetest

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"github.com/cloudrepl/replicator/internal/store"
)

const childEnv = "STORETEST_BOUNDED_PUT"

// BoundedMemoryPut puts size bytes of a generated stream through newAt in a child
// process (this test binary, re-run on the calling test alone) and fails unless the
// child's peak RSS, from its rusage, stays below maxRSS. The parent then checks the
// object's size and SHA-256 on the server. Call it as the whole body of a test.
func BoundedMemoryPut(t *testing.T, newAt func(t *testing.T, prefix string) store.Store, size, maxRSS int64) {
	const seed, key = 1 << 30, "bounded/large.bin"
	if prefix := os.Getenv(childEnv); prefix != "" {
		s := newAt(t, prefix)
		defer s.Close()
		sum, err := strconv.ParseUint(os.Getenv(childEnv+"_SIZE"), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Put(ctx(t), key, Stream(seed, int64(sum)), store.PutOptions{SHA256: os.Getenv(childEnv + "_SHA256"), Size: int64(sum)})
		if err != nil {
			t.Fatalf("child put: %v", err)
		}
		return
	}
	sum := StreamSHA256(seed, size)
	prefix := UniquePrefix(t)
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+prefix, fmt.Sprintf("%s_SIZE=%d", childEnv, size), childEnv+"_SHA256="+sum)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child put failed: %v\n%s", err, out)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	peak := ru.Maxrss * 1024 // Linux reports KiB
	t.Logf("put of %d MiB: child peak RSS %d MiB, user %.1fs, sys %.1fs", size>>20, peak>>20,
		float64(ru.Utime.Sec)+float64(ru.Utime.Usec)/1e6, float64(ru.Stime.Sec)+float64(ru.Stime.Usec)/1e6)
	if peak >= maxRSS {
		t.Errorf("child peak RSS %d MiB, want below %d MiB", peak>>20, maxRSS>>20)
	}
	s := newAt(t, prefix)
	defer s.Close()
	a, err := s.Stat(ctx(t), key)
	if err != nil || a.Size != size || a.SHA256 != sum {
		t.Fatalf("after the child's put: stat = %+v, %v; want size %d sha %s", a, err, size, sum)
	}
	if err := s.Delete(ctx(t), key, store.DeleteOptions{}); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}
