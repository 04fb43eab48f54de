package cache

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"strings"
	"time"
)

// The index file: a magic, a format version, a string table, the entries
// (every string as an index into the table), and a CRC-32C of all that.
//
//	"STRATAIX" u16(version)
//	uvarint(nstrings) { uvarint(len) bytes }
//	uvarint(nimages) { ref digest platform tagDigest flags pushed indexed
//	                   uvarint(nlayers) { digest diffID uvarint(size) }
//	                   uvarint(nsteps)  { token sources } }
//	u32(crc32c)
const (
	fileMagic   = "STRATAIX"
	fileVersion = 1
	flagInline  = 1
	flagDeleted = 2
	// Bounds that keep a corrupt or hostile file from asking for huge allocations.
	maxStrings = 1 << 26
	maxImages  = 1 << 24
	maxLayers  = 1 << 12
	maxString  = 1 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errFormat marks an index file that is corrupt or written by an
// incompatible version; callers rebuild it.
var errFormat = errors.New("index file format")

// ErrNewerFormat marks an index written by a newer strata: readers leave
// it alone rather than overwrite it.
var ErrNewerFormat = fmt.Errorf("%w, newer than this strata", errFormat)

// Encode writes the index (tombstones included) in the file format.
func (x *Index) Encode(w io.Writer) error {
	imgs := x.all()
	strs := make(map[string]uint64, len(imgs)*8)
	table := make([]string, 0, len(imgs)*8)
	id := func(s string) uint64 {
		if v, ok := strs[s]; ok {
			return v
		}
		v := uint64(len(table))
		strs[s] = v
		table = append(table, s)
		return v
	}
	body := make([]byte, 0, len(imgs)*64)
	body = binary.AppendUvarint(body, uint64(len(imgs)))
	for _, m := range imgs {
		body = binary.AppendUvarint(body, id(m.Ref))
		body = binary.AppendUvarint(body, id(m.Digest))
		body = binary.AppendUvarint(body, id(m.Platform))
		body = binary.AppendUvarint(body, id(m.TagDigest))
		var flags byte
		if m.InlineCache {
			flags |= flagInline
		}
		if m.Deleted {
			flags |= flagDeleted
		}
		body = append(body, flags)
		body = binary.AppendVarint(body, unixNano(m.Pushed))
		body = binary.AppendVarint(body, unixNano(m.Indexed))
		body = binary.AppendUvarint(body, uint64(len(m.Layers)))
		for _, l := range m.Layers {
			body = binary.AppendUvarint(body, id(l.Digest))
			body = binary.AppendUvarint(body, id(l.DiffID))
			body = binary.AppendUvarint(body, uint64(max(l.Size, 0)))
		}
		body = binary.AppendUvarint(body, uint64(len(m.Steps)))
		for _, s := range m.Steps {
			body = binary.AppendUvarint(body, id(s.Token))
			body = binary.AppendUvarint(body, id(s.Sources))
		}
	}
	size := 16
	for _, s := range table {
		size += len(s) + 3
	}
	head := make([]byte, 0, size)
	head = append(head, fileMagic...)
	head = binary.BigEndian.AppendUint16(head, fileVersion)
	head = binary.AppendUvarint(head, uint64(len(table)))
	for _, s := range table {
		head = binary.AppendUvarint(head, uint64(len(s)))
		head = append(head, s...)
	}
	crc := crc32.Update(crc32.Checksum(head, crcTable), crcTable, body)
	bw := bufio.NewWriter(w)
	bw.Write(head)
	bw.Write(body)
	bw.Write(binary.BigEndian.AppendUint32(nil, crc))
	return bw.Flush()
}

// zeroTime encodes the zero time.Time, which is not the Unix epoch.
const zeroTime = math.MinInt64

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return zeroTime
	}
	return t.UnixNano()
}

func fromUnixNano(v int64) time.Time {
	if v == zeroTime {
		return time.Time{}
	}
	return time.Unix(0, v).UTC()
}

// Decode reads an index in the file format. A corrupt file or another
// version is an error; for a newer version it wraps ErrNewerFormat.
func Decode(data []byte) (*Index, error) {
	if len(data) < len(fileMagic)+2+4 || string(data[:len(fileMagic)]) != fileMagic {
		return nil, fmt.Errorf("%w: not a strata index", errFormat)
	}
	if v := binary.BigEndian.Uint16(data[len(fileMagic):]); v > fileVersion {
		return nil, fmt.Errorf("%w: version %d, this strata reads version %d", ErrNewerFormat, v, fileVersion)
	} else if v != fileVersion {
		return nil, fmt.Errorf("%w: version %d, this strata reads version %d", errFormat, v, fileVersion)
	}
	payload, sum := data[:len(data)-4], binary.BigEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(payload, crcTable) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch (truncated or damaged)", errFormat)
	}
	body := payload[len(fileMagic)+2:]
	// One copy of the whole file as a string; every string of the table
	// is a slice of it, so loading allocates per image, not per string.
	all := string(body)
	d := &decoder{r: bytes.NewReader(body)}
	// Every string and image takes at least one byte, which bounds what a
	// damaged count can make us allocate.
	n := d.count(min(maxStrings, d.r.Len()))
	table := make([]string, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		l := d.count(maxString)
		if l > d.r.Len() {
			d.fail("truncated")
			break
		}
		at := len(body) - d.r.Len()
		table = append(table, all[at:at+l])
		_, _ = d.r.Seek(int64(l), io.SeekCurrent)
	}
	str := func() string {
		v := d.count(len(table))
		if d.err != nil || v >= len(table) {
			d.fail("string index out of range")
			return ""
		}
		return table[v]
	}
	nimg := d.count(min(maxImages, d.r.Len()))
	x := NewIndex()
	x.images = make([]*Image, 0, nimg)
	images := make([]Image, nimg)
	var layers arena[Layer]
	var steps arena[Step]
	for i := 0; i < nimg && d.err == nil; i++ {
		m := &images[i]
		m.Ref, m.Digest, m.Platform, m.TagDigest = str(), str(), str(), str()
		flags := d.byte()
		m.InlineCache, m.Deleted = flags&flagInline != 0, flags&flagDeleted != 0
		m.Pushed, m.Indexed = fromUnixNano(d.varint()), fromUnixNano(d.varint())
		if nl := d.count(min(maxLayers, d.r.Len())); nl > 0 {
			m.Layers = layers.take(nl)
			for j := range m.Layers {
				m.Layers[j] = Layer{Digest: str(), DiffID: str(), Size: int64(d.count(1 << 62))}
			}
		}
		if ns := d.count(min(maxLayers, d.r.Len())); ns > 0 {
			m.Steps = steps.take(ns)
			for j := range m.Steps {
				tok := str()
				m.Steps[j] = Step{Token: tok, Text: tokenText(tok), Sources: str()}
			}
		}
		if !m.Deleted && len(m.Layers) != len(m.Steps) {
			d.fail(fmt.Sprintf("%s has %d layers and %d steps", m.Ref, len(m.Layers), len(m.Steps)))
		}
		x.byID[m.ID()] = len(x.images)
		x.images = append(x.images, m)
	}
	if d.err == nil && d.r.Len() != 0 {
		d.fail("trailing data")
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: %v", errFormat, d.err)
	}
	return x, nil
}

// arena hands out slices of large shared chunks, to load many small
// slices with few allocations.
type arena[T any] struct{ free []T }

func (a *arena[T]) take(n int) []T {
	if n > len(a.free) {
		a.free = make([]T, max(n, 1<<14))
	}
	s := a.free[:n:n]
	a.free = a.free[n:]
	return s
}

// tokenText is the instruction text at the end of a token.
func tokenText(tok string) string {
	if i := strings.LastIndex(tok, tokenSep); i >= 0 {
		return tok[i+len(tokenSep):]
	}
	return tok
}

type decoder struct {
	r   *bytes.Reader
	err error
}

func (d *decoder) fail(msg string) {
	if d.err == nil {
		d.err = errors.New(msg)
	}
}

func (d *decoder) count(limit int) int {
	if d.err != nil {
		return 0
	}
	v, err := binary.ReadUvarint(d.r)
	if err != nil {
		d.fail("truncated")
		return 0
	}
	if v > uint64(limit) {
		d.fail("count out of range")
		return 0
	}
	return int(v)
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, err := binary.ReadVarint(d.r)
	if err != nil {
		d.fail("truncated")
	}
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	b, err := d.r.ReadByte()
	if err != nil {
		d.fail("truncated")
	}
	return b
}

// The shared index is kept in a registry as a small image (see package
// store); this is what every reader of it, the frontend included, relies on.
const (
	// IndexPath is the index file in the image's one layer.
	IndexPath = "index.strata"
	// IndexLabel marks the image that holds a shared index; the crawler skips it.
	IndexLabel = "dev.strata.cache.index"
)
