package store

import (
	"context"
	"errors"
	"io"
	"sync"
)

// PartFunc stores one part: number counts from 1, data is only valid during the call.
type PartFunc func(ctx context.Context, number int, data []byte) error

// UploadParts reads r in parts of partSize bytes and stores them with up to
// concurrency calls of put at once, so memory stays at (concurrency+1)*partSize
// whatever the stream's length. It returns the number of parts and stops at the
// first error. progress, if set, receives the bytes stored after each part, serially.
func UploadParts(ctx context.Context, r io.Reader, partSize int64, concurrency int, put PartFunc, progress func(int64)) (int, error) {
	if concurrency < 1 {
		concurrency = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type part struct {
		number int
		buf    []byte
		n      int
	}
	pool := make(chan []byte, concurrency+1)
	for range concurrency + 1 {
		pool <- nil
	}
	work := make(chan part)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		done     int64
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
		mu.Unlock()
	}
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				if err := put(ctx, p.number, p.buf[:p.n]); err != nil {
					fail(err)
				} else if progress != nil {
					mu.Lock()
					done += int64(p.n)
					progress(done)
					mu.Unlock()
				}
				pool <- p.buf
			}
		}()
	}

	parts := 0
	var readErr error
	for {
		var buf []byte
		select {
		case buf = <-pool:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		if buf == nil {
			buf = make([]byte, partSize)
		}
		n, err := io.ReadFull(r, buf)
		ended := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !ended {
			readErr = err // a part cut short by a failed read is never stored
			break
		}
		if n > 0 || parts == 0 {
			parts++
			select {
			case work <- part{number: parts, buf: buf, n: n}:
			case <-ctx.Done():
			}
		}
		if ended {
			break
		}
	}
	close(work)
	wg.Wait()
	if readErr != nil {
		return parts, readErr
	}
	if firstErr != nil {
		return parts, firstErr
	}
	return parts, ctx.Err()
}
