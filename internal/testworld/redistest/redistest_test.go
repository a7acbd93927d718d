package redistest

import (
	"bufio"
	"fmt"
	"net"
	"testing"
	"time"
)

func TestStartStopRestart(t *testing.T) {
	addr, stop := Start(t)
	if got := command(t, addr, "SET k v"); got != "+OK" {
		t.Fatalf("SET = %q", got)
	}
	stop()
	stop() // twice is fine
	if err := ping(addr); err == nil {
		t.Fatal("PING answered after stop")
	}
	stop = Restart(t, addr)
	if got := command(t, addr, "GET k"); got != "$-1" {
		t.Errorf("GET after Restart = %q, want nil: Start keeps nothing", got)
	}
	stop()
}

func TestStartInKeepsData(t *testing.T) {
	dir := t.TempDir()
	addr, stop := StartIn(t, dir)
	if got := command(t, addr, "SET k v"); got != "+OK" {
		t.Fatalf("SET = %q", got)
	}
	stop() // SIGKILL: only what is on disk survives
	RestartIn(t, addr, dir)
	if got := command(t, addr, "GET k"); got != "$1" {
		t.Errorf("GET after RestartIn = %q, want the value kept in %s", got, dir)
	}
}

// command sends one inline command and returns the first line of the
// answer.
func command(t *testing.T, addr, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "%s\r\n", cmd)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return line[:len(line)-2]
}
