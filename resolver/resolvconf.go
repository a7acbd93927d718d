package resolver

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// ServersFromResolvConf reads the "nameserver" lines of a resolv.conf(5)
// file and returns them as Config.Servers entries on port 53: "ip:53", or
// "[ip]:53" for IPv6. Comments (# or ;) and other options are ignored, as
// are nameserver lines whose address does not parse. It fails if the file
// cannot be read or names no server.
func ServersFromResolvConf(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("resolver: %w", err)
	}
	defer f.Close()
	var servers []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line, _, _ = strings.Cut(line, ";")
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		addr, err := netip.ParseAddr(fields[1])
		if err != nil {
			continue
		}
		servers = append(servers, netip.AddrPortFrom(addr, 53).String())
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("resolver: %s: %w", path, err)
	}
	if len(servers) == 0 {
		return nil, fmt.Errorf("resolver: %s: no nameserver lines", path)
	}
	return servers, nil
}
