package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"go.yaml.in/yaml/v3"
)

// ErrNoFile is returned when a change should be persisted but the config did
// not come from a file.
var ErrNoFile = errors.New("config has no file to persist to")

// SetShares rewrites the native shares (basis points, by route name) in the
// YAML file at path, keeping its comments, layout and every other value, and
// replaces the file atomically (write to a temporary file in the same
// directory, fsync, rename), so a reader or a crash never sees half a file.
// A route given as native_percent keeps that form; one given as native_bp
// keeps that; one with neither gets native_percent. The new file must still
// load (with the current environment), or nothing is written.
func SetShares(path string, shares map[string]int) error {
	if path == "" {
		return ErrNoFile
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("persist shares: %w", err)
	}
	out, err := setSharesYAML(data, shares)
	if err != nil {
		return fmt.Errorf("persist shares: %w", err)
	}
	if _, err := Parse(out, os.Environ()); err != nil {
		return fmt.Errorf("persist shares: the rewritten config does not load: %w", err)
	}
	return writeAtomic(path, out)
}

func setSharesYAML(data []byte, shares map[string]int) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("config is not a YAML mapping")
	}
	routes := mapValue(doc.Content[0], "routes")
	if routes == nil || routes.Kind != yaml.SequenceNode {
		return nil, errors.New("config has no routes list")
	}
	found := map[string]bool{}
	for _, item := range routes.Content {
		if item.Kind != yaml.MappingNode {
			continue
		}
		name := mapValue(item, "name")
		if name == nil {
			continue
		}
		bp, ok := shares[name.Value]
		if !ok {
			continue
		}
		found[name.Value] = true
		pct := mapValue(item, "native_percent")
		bpn := mapValue(item, "native_bp")
		if pct != nil {
			setScalar(pct, strconv.FormatFloat(BPToPercent(bp), 'f', -1, 64))
		}
		if bpn != nil {
			setScalar(bpn, strconv.Itoa(bp))
		}
		if pct == nil && bpn == nil {
			item.Content = append(item.Content,
				&yaml.Node{Kind: yaml.ScalarNode, Value: "native_percent"},
				&yaml.Node{Kind: yaml.ScalarNode, Value: strconv.FormatFloat(BPToPercent(bp), 'f', -1, 64)})
		}
	}
	var missing []error
	for name := range shares {
		if !found[name] {
			missing = append(missing, fmt.Errorf("route %q is not in the file", name))
		}
	}
	if err := errors.Join(missing...); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func setScalar(n *yaml.Node, v string) {
	n.Kind = yaml.ScalarNode
	n.Tag = ""
	n.Style = 0
	n.Value = v
	n.Content = nil
}

// ErrSingleFileMount is returned when the config file cannot be replaced
// because it is itself a mount point (a Docker bind mount of one file):
// rename(2) over it fails with EBUSY. Mount its directory instead.
var ErrSingleFileMount = errors.New("the config file is a mount point of its own (a single-file bind mount) and cannot be replaced; mount its directory instead")

// writeAtomic replaces the file at path with data so that readers see the
// old or the new file, never a mix. A symlink is followed: the file it
// resolves to is replaced and the link stays. The file keeps its permission
// bits and its owner and group (an owner that cannot be kept is an error, not
// a silent change); the directory is fsynced after the rename so the new
// file survives a crash.
func writeAtomic(path string, data []byte) error {
	if resolved, err := filepath.EvalSymlinks(path); err == nil {
		path = resolved
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("persist shares: %w", err)
	}
	mode, uid, gid := os.FileMode(0o644), -1, -1
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(sys.Uid), int(sys.Gid)
		}
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("persist shares: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	fail := func(err error) error {
		tmp.Close()
		return fmt.Errorf("persist shares: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fail(err)
	}
	if err := tmp.Chmod(mode); err != nil {
		return fail(err)
	}
	if uid >= 0 {
		if st, err := tmp.Stat(); err != nil {
			return fail(err)
		} else if sys, ok := st.Sys().(*syscall.Stat_t); ok && (int(sys.Uid) != uid || int(sys.Gid) != gid) {
			if err := tmp.Chown(uid, gid); err != nil {
				return fail(fmt.Errorf("keep the file's owner %d:%d: %w", uid, gid, err))
			}
		}
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("persist shares: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		if errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("persist shares: %w", ErrSingleFileMount)
		}
		return fmt.Errorf("persist shares: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("persist shares: the file is replaced but its directory could not be synced: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
