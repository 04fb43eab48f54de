//go:build !linux

package builder

import "errors"

func stargzSupported(string) error {
	return errors.New("the stargz snapshotter needs Linux (FUSE and overlayfs)")
}

func unmountUnder(string) error { return nil }
