package smtpfront

import (
	"strconv"
	"strings"
)

// ChunkSize reads the arguments of a BDAT command (RFC 3030 §2) the way
// go-smtp does, for code that watches an SMTP stream below go-smtp and
// must know where a chunk ends. It is the size of the chunk following "BDAT <args>", or 0 when
// go-smtp reads no chunk because it cannot parse them (see go-smtp's
// handleBdat): one or two fields, the second "LAST", the first a 32-bit
// size.
func ChunkSize(args string) int64 {
	f := strings.Fields(args)
	if len(f) == 0 || len(f) > 2 || (len(f) == 2 && !strings.EqualFold(f[1], "LAST")) {
		return 0
	}
	size, err := strconv.ParseUint(f[0], 10, 32)
	if err != nil {
		return 0
	}
	return int64(size)
}
