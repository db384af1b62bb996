package harness

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
)

// Role says which side of a pinned run a process is on.
type Role int

const (
	// RoleServer is the process under test: cutover, or the nginx, haproxy or Caddy it is compared
	// with, or the legacy app when it is measured directly.
	RoleServer Role = iota
	// RoleRest is everything else: load generators, the upstream, the stub, Redis, a legacy app
	// behind cutover, and the harness itself.
	RoleRest
)

// Pinning places the process under test on one core and every other process on another, so a
// figure says what one core of the server does, with the load generator off that core. The zero
// value pins nothing: processes go where the scheduler puts them.
type Pinning struct {
	Enabled bool `json:"enabled"`
	// ServerCPU and RestCPU are the cores (as taskset numbers them) of RoleServer and RoleRest.
	ServerCPU int `json:"server_cpu"`
	RestCPU   int `json:"rest_cpu"`
}

// DefaultPinning pins the server to core 0 and the rest to core 1, when enabled is true and the
// machine has at least two cores and taskset; otherwise it returns the zero Pinning and says why.
func DefaultPinning(enabled bool) (Pinning, string) {
	if !enabled {
		return Pinning{}, "pinning disabled"
	}
	if runtime.NumCPU() < 2 {
		return Pinning{}, fmt.Sprintf("pinning needs 2 cores, this machine has %d", runtime.NumCPU())
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return Pinning{}, "pinning needs taskset (util-linux), which is missing"
	}
	return Pinning{Enabled: true, ServerCPU: 0, RestCPU: 1}, ""
}

// cpu is role's core.
func (p Pinning) cpu(r Role) int {
	if r == RoleServer {
		return p.ServerCPU
	}
	return p.RestCPU
}

// Wrap returns argv run on role's core (through taskset, which execs it: the process id stays
// the command's own), or argv unchanged when p pins nothing.
func (p Pinning) Wrap(r Role, argv ...string) []string {
	if !p.Enabled {
		return argv
	}
	return append([]string{"taskset", "-c", strconv.Itoa(p.cpu(r))}, argv...)
}

// Cores is how many cores a process of role r may use: 1 when pinned, else every core. It sizes
// GOMAXPROCS, nginx's workers, haproxy's threads and gunicorn's workers.
func (p Pinning) Cores(r Role) int {
	if p.Enabled {
		return 1
	}
	return runtime.NumCPU()
}

// Label describes where role r runs, for reports.
func (p Pinning) Label(r Role) string {
	if !p.Enabled {
		return "unpinned"
	}
	return "core " + strconv.Itoa(p.cpu(r))
}

// PinSelf moves every thread of this process to the rest core (the harness is not under test).
// It does nothing when p pins nothing.
func (p Pinning) PinSelf() error {
	if !p.Enabled {
		return nil
	}
	out, err := exec.Command("taskset", "-a", "-p", "-c", strconv.Itoa(p.RestCPU), strconv.Itoa(os.Getpid())).CombinedOutput()
	if err != nil {
		return fmt.Errorf("taskset self: %w: %s", err, out)
	}
	return nil
}

// Unpin lets every thread of this process run on every core again.
func Unpin() error {
	out, err := exec.Command("taskset", "-a", "-p", "-c", fmt.Sprintf("0-%d", runtime.NumCPU()-1), strconv.Itoa(os.Getpid())).CombinedOutput()
	if err != nil {
		return fmt.Errorf("taskset self: %w: %s", err, out)
	}
	return nil
}
