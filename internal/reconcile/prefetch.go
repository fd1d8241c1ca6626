package reconcile

import (
	"context"
	"iter"
)

// Prefetch reads seq ahead in its own goroutine, up to depth items, so that the
// merge's streams fetch their pages at the same time instead of one after another
// (the merge itself consumes them in lock-step). Stopping the iteration stops the
// reader.
func Prefetch[T any](seq iter.Seq2[T, error], depth int) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		type item struct {
			v   T
			err error
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ch := make(chan item, depth)
		go func() {
			defer close(ch)
			for v, err := range seq {
				select {
				case ch <- item{v, err}:
				case <-ctx.Done():
					return
				}
				if err != nil {
					return
				}
			}
		}()
		for it := range ch {
			if !yield(it.v, it.err) || it.err != nil {
				return
			}
		}
	}
}
