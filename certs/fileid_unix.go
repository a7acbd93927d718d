//go:build unix

package certs

import (
	"io/fs"
	"syscall"
)

// fileID identifies the file behind a name: a renamed-over file (how
// certificate managers install a renewal) has another one even when its
// size and modification time, to the file system's clock tick, match.
func fileID(fi fs.FileInfo) [2]uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return [2]uint64{uint64(st.Dev), uint64(st.Ino)}
	}
	return [2]uint64{}
}
