package build

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// Readers follow the writer: each gets every byte, in order, however the
// writes and reads interleave, and a slow reader does not hold the writer
// up.
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
	readers := []io.ReadCloser{sp.reader(), sp.reader()}
	got := make([][]byte, len(readers))
	var wg sync.WaitGroup
	for i, r := range readers {
		wg.Go(func() {
			defer r.Close()
			buf := make([]byte, 1000+i*7000)
			for {
				n, err := r.Read(buf)
				got[i] = append(got[i], buf[:n]...)
				if err == io.EOF {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				if i == 1 {
					time.Sleep(time.Microsecond) // a slow reader
				}
			}
		})
	}
	for p := want; len(p) > 0; {
		n := min(len(p), 1+rng.IntN(200<<10))
		if _, err := sp.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	sp.close(nil)
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

	waiting := sp2(t)
	res := make(chan error, 1)
	go func() {
		_, err := waiting.Read(make([]byte, 10))
		res <- err
	}()
	time.Sleep(20 * time.Millisecond)
	waiting.Close()
	select {
	case err := <-res:
		if err == nil {
			t.Fatal("a closed reader read without error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a reader waiting for bytes did not return when closed")
	}
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
