package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// SetShares through a symlink (as a Kubernetes ConfigMap or a deployment
// tool lays files out) replaces the file the link points to and leaves the
// link; the file keeps its mode and its owner and group.
func TestSetSharesThroughSymlinkKeepsOwnerAndMode(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "data", "cutover.yaml")
	if err := os.Mkdir(filepath.Dir(real), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(real, []byte("routes:\n  - name: chat\n    path: /chat\n    native_percent: 5\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	// Another owner than this process's, when it may give one (root).
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid = 4321, 4322
		if err := os.Chown(real, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "cutover.yaml")
	if err := os.Symlink(filepath.Join("data", "cutover.yaml"), link); err != nil {
		t.Fatal(err)
	}

	if err := SetShares(link, map[string]int{"chat": 2500}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the symlink was replaced by a file: %v %v", st.Mode(), err)
	}
	data, err := os.ReadFile(real)
	if err != nil || !strings.Contains(string(data), "native_percent: 25") {
		t.Errorf("the linked file was not rewritten: %q %v", data, err)
	}
	st, err := os.Stat(real)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if st.Mode().Perm() != 0o640 || int(sys.Uid) != uid || int(sys.Gid) != gid {
		t.Errorf("file is now %v %d:%d, want 0640 %d:%d", st.Mode().Perm(), sys.Uid, sys.Gid, uid, gid)
	}
	for _, d := range []string{dir, filepath.Dir(real)} {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if strings.Contains(e.Name(), ".tmp") {
				t.Errorf("temporary file left behind: %s", filepath.Join(d, e.Name()))
			}
		}
	}
}
