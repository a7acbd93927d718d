package smtpfront

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// recordRules records what the rules saw and swallows "SWALLOW".
type recordRules struct {
	commands []string
	replies  [][]string
}

func (r *recordRules) Command(c *Conn, verb string, line []byte) bool {
	r.commands = append(r.commands, verb)
	if verb == "" && bytes.HasPrefix(line, []byte("SWALLOW")) {
		c.Say("250 swallowed")
		return false
	}
	return true
}

func (r *recordRules) Reply(_ *Conn, verb string, lines [][]byte) ([][]byte, bool) {
	var ls []string
	for _, l := range lines {
		ls = append(ls, strings.TrimSpace(string(l)))
	}
	r.replies = append(r.replies, append([]string{verb}, ls...))
	return lines, false
}

// TestConn: one command line per Read, a DATA body up to its end after
// the 354, a multi-line reply sent whole, a command the rules answer
// themselves, and the rest of an over-long line never a command.
func TestConn(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	rules := &recordRules{}
	c := NewConn(server, ConnOptions{Rules: rules, BufSize: 4096}, nil)
	defer c.Close()
	go io.WriteString(client, "EHLO a\r\nDATA\r\nline\r\n.\r\nSWALLOW\r\nNOOP "+strings.Repeat("x", 4100)+"\r\n")
	replies := bufio.NewReader(client)
	go io.Copy(io.Discard, replies)
	client.SetDeadline(time.Now().Add(5 * time.Second))
	server.SetDeadline(time.Now().Add(5 * time.Second))

	buf := make([]byte, 8192)
	read := func() string {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
	if got := read(); got != "EHLO a\r\n" {
		t.Fatalf("first read %q, want the EHLO line alone", got)
	}
	c.Write([]byte("250-hello\r\n"))
	c.Write([]byte("250 SIZE 100\r\n"))
	if got := read(); got != "DATA\r\n" {
		t.Fatalf("second read %q", got)
	}
	c.Write([]byte("354 go on\r\n"))
	var body strings.Builder
	for !strings.HasSuffix(body.String(), "\r\n.\r\n") {
		body.WriteString(read())
	}
	if body.String() != "line\r\n.\r\n" {
		t.Errorf("body %q, want it up to its end and no further", body.String())
	}
	c.Write([]byte("250 ok\r\n"))
	// SWALLOW is answered by the rules; the next read is the long NOOP.
	first := read()
	if !strings.HasPrefix(first, "NOOP x") || len(first) != 4096 {
		t.Fatalf("read after SWALLOW: %d bytes %.10q", len(first), first)
	}
	var rest strings.Builder
	for !strings.HasSuffix(rest.String(), "\r\n") {
		rest.WriteString(read())
	}
	// An over-long line is go-smtp's to refuse: the rules see neither
	// its start nor its rest.
	if strings.Join(rules.commands, ",") != "EHLO,DATA," {
		t.Errorf("the rules saw commands %q; want EHLO, DATA and the swallowed line", rules.commands)
	}
	want := [][]string{{"EHLO", "250-hello", "250 SIZE 100"}, {"DATA", "354 go on"}, {"DATA", "250 ok"}, {"", "250 swallowed"}}
	if len(rules.replies) != len(want) {
		t.Fatalf("replies %q, want %q", rules.replies, want)
	}
	for i := range want {
		if strings.Join(rules.replies[i], "|") != strings.Join(want[i], "|") {
			t.Errorf("reply %d: %q, want %q", i, rules.replies[i], want[i])
		}
	}
}
