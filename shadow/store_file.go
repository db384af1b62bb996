package shadow

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// FileStore is the default Store: an in-memory Ring answering queries, plus
// an append-only JSONL file (one Record per line) so records outlive the
// process. The file is rotated to path+".1" when it passes MaxBytes, so disk
// use stays under about 2×MaxBytes. On open, the newest records of the file
// are loaded back into the ring. A file that does not exist yet is created
// with the first record, so a process that never records a diff leaves no
// file behind.
type FileStore struct {
	*Ring
	mu       sync.Mutex
	path     string
	maxBytes int64
	f        *os.File // nil until the first record, and after Close
	size     int64
	closed   bool
}

var _ Store = (*FileStore)(nil)

// OpenFileStore opens path for appending, or, when it does not exist yet,
// checks that its directory does (the file is created with the first
// record), with NewRing(ringSize) answering queries. maxBytes is the file's
// rotation size; maxBytes <= 0 means 64 MiB.
func OpenFileStore(path string, ringSize int, maxBytes int64) (*FileStore, error) {
	return OpenFileStoreRing(path, NewRing(ringSize), maxBytes)
}

// OpenFileStoreRing is OpenFileStore with a ring of the caller's (bounded
// as it likes, NewBoundedRing); ring must be empty and not used elsewhere.
// A record the ring refuses as too large is not written to the file either.
func OpenFileStoreRing(path string, ring *Ring, maxBytes int64) (*FileStore, error) {
	if maxBytes <= 0 {
		maxBytes = 64 << 20
	}
	s := &FileStore{Ring: ring, path: path, maxBytes: maxBytes}
	if err := s.replay(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if st, err := os.Stat(filepath.Dir(path)); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("open diff file: directory of %s: %w", path, orNotDir(err))
		}
		return s, nil
	}
	if err := s.openLocked(); err != nil {
		return nil, err
	}
	return s, nil
}

func orNotDir(err error) error {
	if err != nil {
		return err
	}
	return errors.New("not a directory")
}

func (s *FileStore) openLocked() error {
	f, err := os.OpenFile(s.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open diff file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open diff file: %w", err)
	}
	s.f, s.size = f, st.Size()
	return nil
}

// replay loads the previous file's records, then the current file's, into the
// ring (which keeps the newest). Bad lines (a torn last write) are skipped.
func (s *FileStore) replay() error {
	for _, p := range []string{s.path + ".1", s.path} {
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read diff file: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 64<<10), len(data)+1)
		for sc.Scan() {
			var r Record
			if json.Unmarshal(sc.Bytes(), &r) == nil && r.ID != "" {
				s.Ring.load(r, len(sc.Bytes()))
			}
		}
	}
	return nil
}

// Add stores r in the ring and appends it to the file.
func (s *FileStore) Add(ctx context.Context, r *Record) error {
	if err := s.Ring.Add(ctx, r); err != nil {
		return err
	}
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode diff record: %w", err)
	}
	line = append(line, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("diff file closed")
	}
	if s.f == nil {
		if err := s.openLocked(); err != nil {
			return err
		}
	}
	if s.size > 0 && s.size+int64(len(line)) > s.maxBytes {
		if err := s.rotateLocked(); err != nil {
			return err
		}
	}
	n, err := s.f.Write(line)
	s.size += int64(n)
	if err != nil {
		return fmt.Errorf("write diff file: %w", err)
	}
	return nil
}

func (s *FileStore) rotateLocked() error {
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("rotate diff file: %w", err)
	}
	s.f = nil
	if err := os.Rename(s.path, s.path+".1"); err != nil {
		return fmt.Errorf("rotate diff file: %w", err)
	}
	f, err := os.OpenFile(s.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("rotate diff file: %w", err)
	}
	s.f, s.size = f, 0
	return nil
}

// Close closes the file; the ring stays readable.
func (s *FileStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
