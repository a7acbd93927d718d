package e2e

// The tests here run a caliop binary built from source at run time, which
// go test's result cache cannot see. Importing the command's packages makes
// a change to any of them invalidate the cached result, so that plain
// `go test ./...` reruns these tests after an edit.
import (
	_ "github.com/caliop/relay/config"
	_ "github.com/caliop/relay/delivery"
	_ "github.com/caliop/relay/relay"
	_ "github.com/caliop/relay/resolver"
	_ "github.com/caliop/relay/store"
	_ "github.com/caliop/relay/tlsrpt/tlsrptsend"
	_ "github.com/caliop/relay/wkd/wkdcache"
)
