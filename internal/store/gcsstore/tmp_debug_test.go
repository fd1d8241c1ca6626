//go:build integration

package gcsstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/store/storetest"
)

func TestTmpDebug(t *testing.T) {
	ctx := context.Background()
	m := open(t, "gs://replicator-no-such-bucket/x", smallTuning)
	t.Log(m.Check(ctx))
	_, err := m.Put(ctx, "k", strings.NewReader("x"), store.PutOptions{SHA256: storetest.SHA256Hex([]byte("x")), Size: 1})
	t.Log(err)
	_, err = m.Put(ctx, "k", storetest.Stream(1, 6<<20), store.PutOptions{SHA256: storetest.StreamSHA256(1, 6<<20), Size: 6 << 20})
	t.Log(err)
	_, err = m.Stat(ctx, "k")
	t.Log(err)
	_, err = m.Open(ctx, "k", 0)
	t.Log(err)
	t.Log(m.Delete(ctx, "k"))
	_, err = m.Copy(ctx, "k", "j", store.CopyOptions{})
	t.Log(err)
	for _, err := range m.List(ctx, store.ListOptions{}) {
		t.Log(err)
	}
	u := open(t, "gs://"+testBucket+"/x?endpoint=http://127.0.0.1:1", smallTuning)
	start := time.Now()
	_, err = u.Stat(ctx, "k")
	t.Log(time.Since(start), err)
	start = time.Now()
	_, err = u.Put(ctx, "k", strings.NewReader("x"), store.PutOptions{SHA256: storetest.SHA256Hex([]byte("x")), Size: 1, Precondition: store.Precondition{IfNoneMatch: true}})
	t.Log(time.Since(start), err)
	start = time.Now()
	_, err = u.Put(ctx, "k", storetest.Stream(1, 6<<20), store.PutOptions{SHA256: storetest.StreamSHA256(1, 6<<20), Size: 6 << 20, Precondition: store.Precondition{IfNoneMatch: true}})
	t.Log(time.Since(start), err)
	s := newAt(smallTuning)(t, storetest.UniquePrefix(t))
	_, err = s.Copy(ctx, "k", "j", store.CopyOptions{})
	t.Log(err)
	_, err = s.Open(ctx, "k", 0)
	t.Log(err)
	storetest.Put(t, s, "a", []byte("abc"), store.PutOptions{})
	_, err = s.Open(ctx, "a", 10)
	t.Log(err)
	a, err := s.Stat(ctx, "a")
	t.Logf("%+v %v", a, err)
}
