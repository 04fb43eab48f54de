package builder

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/plugins/snapshots/overlay/overlayutils"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// stargzSupported returns why BuildKit's stargz snapshotter cannot work
// with its state under root, or nil. It mounts each eStargz layer as a
// FUSE filesystem with go-fuse's direct mount (the mount system call on
// /dev/fuse, no fusermount) and stacks overlayfs on those mounts, so it
// needs both: the probe does what it does, in a directory under root.
func stargzSupported(root string) error {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	p := fuseProbe{filesystems: "/proc/filesystems", device: "/dev/fuse", dir: root}
	if err := p.check(); err != nil {
		return err
	}
	if err := overlayutils.Supported(root); err != nil {
		return fmt.Errorf("overlayfs, which the stargz snapshotter stacks on its FUSE mounts, does not work in %s: %v", root, err)
	}
	return nil
}

// fuseProbe checks that a FUSE filesystem can be mounted, with the paths
// it reads made parameters for tests.
type fuseProbe struct {
	filesystems string // the kernel's filesystem list, /proc/filesystems
	device      string // the FUSE device, /dev/fuse
	dir         string // where to make the mount point
}

func (p fuseProbe) check() error {
	ok, err := listsFilesystem(p.filesystems, "fuse")
	if err != nil {
		return fmt.Errorf("cannot read %s: %v", p.filesystems, err)
	}
	if !ok {
		return fmt.Errorf("the kernel has no FUSE filesystem (no fuse in %s; 'modprobe fuse' loads it)", p.filesystems)
	}
	fd, err := unix.Open(p.device, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("cannot open %s: %v (a container needs the device: --privileged gives it)", p.device, err)
	}
	mp, err := os.MkdirTemp(p.dir, "fuse-probe-")
	if err != nil {
		unix.Close(fd)
		return err
	}
	defer os.Remove(mp)
	// As go-fuse's direct mount does. Nothing serves the filesystem: the
	// device is closed before the unmount, which aborts the connection,
	// so nothing can wait on it.
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=%d,group_id=%d", fd, os.Geteuid(), os.Getegid())
	err = unix.Mount("strata-probe", mp, "fuse.strata-probe", unix.MS_NOSUID|unix.MS_NODEV, opts)
	unix.Close(fd)
	if err != nil {
		return fmt.Errorf("mounting a FUSE filesystem failed: %v (it needs root with CAP_SYS_ADMIN)", err)
	}
	return unix.Unmount(mp, unix.MNT_DETACH)
}

// listsFilesystem reports whether the kernel's filesystem list at path
// names fs ("nodev\tfuse" or "\tfuse").
func listsFilesystem(path, fs string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && fields[len(fields)-1] == fs {
			return true, nil
		}
	}
	return false, sc.Err()
}

// unmountUnder detaches every mount under dir, deepest first: the stargz
// snapshotter's FUSE mounts of lazily pulled layers, and the overlays on
// them, which a daemon that was killed leaves behind. Without it the next
// daemon or a removal of dir would meet mounts no process serves.
func unmountUnder(dir string) error {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return err
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].Mountpoint) > len(mounts[j].Mountpoint) })
	var errs []error
	for _, m := range mounts {
		if err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m.Mountpoint, err))
		}
	}
	return errors.Join(errs...)
}
