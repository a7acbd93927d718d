// Package message holds a message body while it is relayed: line endings
// normalised to CRLF (RFC 5321 §2.3.8), kept in memory up to a threshold
// and in a temporary file beyond it, readable again for every MX tried;
// and its header section (RFC 5322 §2.2), parsed once (Header).
package message

import (
	"bytes"
	"io"
	"os"
	"sync"
)

// Spool is one message body. Write it once, then read it any number of
// times, concurrently, until Close.
type Spool struct {
	dir      string
	limit    int64
	mem      *bytes.Buffer // nil once spilled or closed
	file     *os.File
	size     int64
	eightBit bool
}

// NewSpool returns a spool that keeps up to memLimit bytes in memory and
// spills to a temporary file in dir ("" for the system's) beyond.
func NewSpool(dir string, memLimit int64) *Spool {
	mem := memBufs.Get().(*bytes.Buffer)
	mem.Reset()
	return &Spool{dir: dir, limit: memLimit, mem: mem}
}

// memBufs recycles the memory of bodies up to maxPooled bytes, so that a
// steady flow of small messages does not grow a new buffer each time.
var memBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooled = 64 << 10

// release gives the memory back for reuse.
func (s *Spool) release() {
	if s.mem != nil && s.mem.Cap() <= maxPooled {
		memBufs.Put(s.mem)
	}
	s.mem = nil
}

// Write appends p.
func (s *Spool) Write(p []byte) (int, error) {
	for i := 0; i < len(p) && !s.eightBit; i++ {
		s.eightBit = p[i] >= 0x80
	}
	if s.file == nil && s.size+int64(len(p)) > s.limit {
		f, err := os.CreateTemp(s.dir, "caliop-spool-*")
		if err != nil {
			return 0, err
		}
		// The name is not needed once open: nothing is left behind
		// whatever happens to the process.
		os.Remove(f.Name())
		if _, err := f.Write(s.mem.Bytes()); err != nil {
			f.Close()
			return 0, err
		}
		s.file = f
		s.release()
	}
	var n int
	var err error
	if s.file != nil {
		n, err = s.file.Write(p)
	} else {
		n, err = s.mem.Write(p)
	}
	s.size += int64(n)
	return n, err
}

// Reader returns a new reader from the start of the body.
func (s *Spool) Reader() io.Reader {
	if s.file != nil {
		return io.NewSectionReader(s.file, 0, s.size)
	}
	return bytes.NewReader(s.mem.Bytes())
}

// Size is the number of bytes written.
func (s *Spool) Size() int64 { return s.size }

// EightBit reports whether any byte had the high bit set.
func (s *Spool) EightBit() bool { return s.eightBit }

// OnDisk reports whether the body spilled to a file.
func (s *Spool) OnDisk() bool { return s.file != nil }

// Close releases the memory or the file. Readers must not be used after.
func (s *Spool) Close() error {
	s.release()
	if s.file == nil {
		return nil
	}
	err := s.file.Close()
	s.file = nil
	return err
}
