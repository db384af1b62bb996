package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// ErrSuperseded is returned by a Watcher's Apply when the file changed after
// it was read (e.g. a share change persisted meanwhile): the stale config is
// dropped, neither applied nor counted as a failure, and the newer file is
// reloaded on its own event.
var ErrSuperseded = errors.New("config file changed since it was read")

// ErrEmptyFile is reported by a Watcher's reload of an empty file (one being
// rewritten in place, seen between truncate and write): the config in force
// stays, and the completed write reloads it.
var ErrEmptyFile = errors.New("config file is empty; keeping the config in force")

// Watcher reloads a config file when it changes. A new config that loads and
// validates is handed to Apply; one that does not is reported and the last
// good config stays in force. Watcher is safe for concurrent use.
type Watcher struct {
	// Path is the config file. Required.
	Path string
	// Apply swaps a valid config in; an error rejects it (the caller keeps
	// the previous config). Required.
	Apply func(*Config) error
	// Result, if not nil, is told the outcome of every reload attempt
	// (nil for success), for logs and metrics.
	Result func(error)
	// Debounce is the quiet time after a file event before reloading, since
	// editors write in several steps. Zero means 100ms.
	Debounce time.Duration

	mu   sync.Mutex
	last []byte // bytes of the last file that was applied or rejected
}

// Prime records data as the file content already in force, so an event that
// leaves the file unchanged does not trigger a reload.
func (w *Watcher) Prime(data []byte) {
	w.mu.Lock()
	w.last = bytes.Clone(data)
	w.mu.Unlock()
}

// Reload reads the file now and applies it if it changed since the last
// attempt (or always, when force is set), reporting the outcome.
func (w *Watcher) Reload(force bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	data, err := os.ReadFile(w.Path)
	if err != nil {
		err = fmt.Errorf("reload %s: %w", w.Path, err)
		w.report(err)
		return err
	}
	if !force && w.last != nil && bytes.Equal(data, w.last) {
		return nil
	}
	if len(bytes.TrimSpace(data)) == 0 {
		// A file being rewritten in place (truncated, then written) is empty
		// for a moment, and an empty file is a valid config with no routes:
		// applying it would send every request to legacy untouched. The
		// write's own event reloads the file once it is complete.
		err = fmt.Errorf("reload %s: %w", w.Path, ErrEmptyFile)
		w.report(err)
		return err
	}
	w.last = data
	c, err := Parse(data, os.Environ())
	if err == nil {
		c.file = w.Path
		c.raw = data
		err = w.Apply(c)
	}
	if errors.Is(err, ErrSuperseded) {
		return nil // the file changed again since it was read; its own event reloads it
	}
	if err != nil {
		err = fmt.Errorf("reload %s: %w", w.Path, err)
	}
	w.report(err)
	return err
}

func (w *Watcher) report(err error) {
	if w.Result != nil {
		w.Result(err)
	}
}

// Run watches the file's directory (so editors' rename-over writes and
// Kubernetes ConfigMap symlink swaps are seen) until ctx is done. It first
// reloads the file if it differs from the last one applied, so no change is
// lost between the caller's load and the watch's start.
func (w *Watcher) Run(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch config: %w", err)
	}
	defer fw.Close()
	abs, err := filepath.Abs(w.Path)
	if err != nil {
		return fmt.Errorf("watch config: %w", err)
	}
	if err := fw.Add(filepath.Dir(abs)); err != nil {
		return fmt.Errorf("watch config: %w", err)
	}
	// A change written after the caller's load but before the watch began
	// sends no event we can see: compare the file once now (a no-op when it
	// is what Prime recorded).
	_ = w.Reload(false) // reported through Result
	debounce := w.Debounce
	if debounce <= 0 {
		debounce = 100 * time.Millisecond
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			_ = ev // any change in the directory may be ours (symlink swaps); the content check filters the rest
			timer.Reset(debounce)
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			w.report(fmt.Errorf("watch config: %w", err))
		case <-timer.C:
			_ = w.Reload(false) // reported through Result
		}
	}
}
