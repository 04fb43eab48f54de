package stream

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Readers follow the writer: each gets every byte, in order, however the
// writes and reads interleave; one gets bytes while the writing goes on,
// and one that reads nothing until the writing has ended does not hold the
// writer up.
func TestSpoolReadersFollowTheWriter(t *testing.T) {
	sp, err := newSpool(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 3<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	first := 1 + rng.IntN(200<<10)   // the size of the first write
	following := make(chan struct{}) // reader 0 has the first write's bytes
	written := make(chan struct{})   // the writer is done
	readers := []io.ReadCloser{sp.reader(), sp.reader()}
	got := make([][]byte, len(readers))
	var wg sync.WaitGroup
	for i, r := range readers {
		wg.Go(func() {
			defer r.Close()
			if i == 1 {
				<-written // a reader that is slower than the whole writing
			}
			buf := make([]byte, 1000+i*7000)
			for {
				n, err := r.Read(buf)
				got[i] = append(got[i], buf[:n]...)
				if i == 0 && len(got[i]) >= first && len(got[i])-n < first {
					close(following)
				}
				if err == io.EOF {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wrote := make(chan error, 1)
	go func() {
		defer close(written)
		for p, n := want, first; len(p) > 0; n = min(len(p), 1+rng.IntN(200<<10)) {
			if _, err := sp.Write(p[:n]); err != nil {
				wrote <- err
				return
			}
			if len(p) == len(want) {
				select {
				case <-following:
				case <-time.After(30 * time.Second):
					wrote <- errors.New("a reader got none of the bytes while the writing went on")
					return
				}
			}
			p = p[n:]
		}
		sp.close(nil)
		wrote <- nil
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the writer is held up by its readers")
	}
	wg.Wait()
	for i := range got {
		if !bytes.Equal(got[i], want) {
			t.Errorf("reader %d got %d bytes, not the %d written", i, len(got[i]), len(want))
		}
	}
	// The writer and every reader are done: the file is closed.
	if _, err := sp.f.Stat(); err == nil {
		t.Error("the spool's file is still open")
	}
}

// A spool ended with an error gives it to its readers at once, without the
// bytes left, and a reader closed while it waits returns.
func TestSpoolEndedWithError(t *testing.T) {
	sp, err := newSpool(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := sp.reader()
	if _, err := sp.Write([]byte("some bytes")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if n, err := r.Read(buf); n != 4 || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
	boom := errors.New("conversion failed")
	sp.close(boom)
	if _, err := r.Read(buf); !errors.Is(err, boom) {
		t.Fatalf("read after a failed write: %v, want %v", err, boom)
	}
	r.Close()

	synctest.Test(t, func(t *testing.T) {
		waiting := sp2(t)
		res := make(chan error, 1)
		go func() {
			_, err := waiting.Read(make([]byte, 10))
			res <- err
		}()
		synctest.Wait() // the reader waits for bytes
		waiting.Close()
		select {
		case err := <-res:
			if err == nil {
				t.Fatal("a closed reader read without error")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a reader waiting for bytes did not return when closed")
		}
	})
}

// sp2 is a reader of a spool that gets no bytes.
func sp2(t *testing.T) io.ReadCloser {
	sp, err := newSpool(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.close(nil) })
	return sp.reader()
}
