package e2e

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// postfixInstance is a private Postfix instance: its own configuration,
// queue and data directories under a test directory, smtpd on a loopback
// port, every daemon unchrooted, logging to a file through postlogd. The
// system instance (/etc/postfix) is neither read nor touched, so tests
// can run beside it and beside each other.
type postfixInstance struct {
	bin   map[string]string // postfix, postconf, postqueue
	dir   string
	etc   string // config_directory
	queue string // queue_directory
	Smtpd string // 127.0.0.1:port of its smtpd
	Log   string // maillog_file
}

// postfixOptions are the main.cf lines a test adds (e.g.
// default_transport), and the "-o name=value" options of its smtpd
// service in master.cf.
type postfixOptions struct {
	Main  []string
	Smtpd []string
}

// startPostfix configures and starts an instance, checks it with
// `postfix check`, and stops it at cleanup (logging its mail log if the
// test failed). Retry timers keep their defaults (300s and more), so a
// deferred delivery is not retried within a test: it fails the test.
func startPostfix(t *testing.T, bin map[string]string, o postfixOptions) *postfixInstance {
	t.Helper()
	dir := t.TempDir()
	// t.TempDir's parent is 0700: Postfix daemons that have dropped to
	// mail_owner must reach data_directory by its absolute path.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := &postfixInstance{
		bin:   bin,
		dir:   dir,
		etc:   filepath.Join(dir, "etc"),
		queue: filepath.Join(dir, "queue"),
		Smtpd: freeAddr(t),
		Log:   filepath.Join(dir, "maillog"),
	}
	data := filepath.Join(dir, "data")
	for _, d := range []string{p.etc, p.queue, data} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The default, not /etc/postfix's value: the Debian package's "No
	// configuration" install has no main.cf there.
	owner, err := runStdout(10*time.Second, bin["postconf"], "-c", p.etc, "-d", "-h", "mail_owner")
	if err != nil {
		t.Fatalf("postconf -d -h mail_owner: %v: %s", err, owner)
	}
	u, err := user.Lookup(strings.TrimSpace(owner))
	if err != nil {
		t.Fatalf("postfix mail_owner %q: %v", strings.TrimSpace(owner), err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// master creates its lock in data_directory as mail_owner.
	if err := os.Chown(data, uid, gid); err != nil {
		t.Fatal(err)
	}

	main := []string{
		"compatibility_level = 3.6",
		"config_directory = " + p.etc,
		"queue_directory = " + p.queue,
		"data_directory = " + data,
		"mail_owner = " + u.Username,
		"myhostname = origin.test",
		"mydomain = origin.test",
		"myorigin = origin.test",
		"inet_interfaces = 127.0.0.1",
		"inet_protocols = ipv4",
		"mydestination =",
		"local_recipient_maps =",
		"alias_maps =",
		"alias_database =",
		"mynetworks = 127.0.0.0/8",
		"smtpd_relay_restrictions = permit_mynetworks, reject",
		"smtpd_recipient_restrictions = permit_mynetworks, reject",
		"smtpd_banner = $myhostname ESMTP Postfix (caliop e2e)",
		"biff = no",
		"smtputf8_enable = no",
		"maillog_file = " + p.Log,
		"maillog_file_prefixes = " + dir,
	}
	main = append(main, o.Main...)
	write(t, filepath.Join(p.etc, "main.cf"), strings.Join(main, "\n")+"\n")
	smtpdOpts := ""
	for _, o := range o.Smtpd {
		smtpdOpts += "  -o " + o + "\n"
	}
	write(t, filepath.Join(p.etc, "master.cf"), p.Smtpd+strings.Replace(masterCF, "smtpd\n", "smtpd\n"+smtpdOpts, 1))

	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(p.Log)
			t.Logf("postfix main.cf:\n%s\npostfix log (%s):\n%s", strings.Join(main, "\n"), p.Log, b)
		}
	})
	if out, err := p.cmd(30*time.Second, "postfix", "check"); err != nil || strings.TrimSpace(out) != "" {
		// postfix check prints only warnings and errors.
		if err != nil {
			t.Fatalf("postfix check: %v\n%s", err, out)
		}
		t.Logf("postfix check warnings:\n%s", out)
	}
	if out, err := p.cmd(60*time.Second, "postfix", "start"); err != nil {
		b, _ := os.ReadFile(p.Log)
		t.Fatalf("postfix start: %v\n%s\nlog:\n%s", err, out, b)
	}
	t.Cleanup(func() { p.stop(t) })
	return p
}

// masterCF follows the smtpd service line; chroot is off everywhere so
// that the instance needs no copies of /etc in its queue directory.
const masterCF = ` inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`

// cmd runs a Postfix command against this instance's configuration.
func (p *postfixInstance) cmd(timeout time.Duration, name string, args ...string) (string, error) {
	return runCmd(timeout, p.bin[name], append([]string{"-c", p.etc}, args...)...)
}

// Queue returns `postqueue -p` and whether it reports an empty queue.
func (p *postfixInstance) Queue() (string, bool, error) {
	out, err := p.cmd(10*time.Second, "postqueue", "-p")
	return out, strings.Contains(out, "Mail queue is empty"), err
}

// WaitQueueEmpty waits up to d for an empty queue and fails t otherwise.
func (p *postfixInstance) WaitQueueEmpty(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		out, empty, err := p.Queue()
		if err == nil && empty {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfix queue not empty after %v (err %v):\n%s", d, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// WaitLog waits up to d for a line of the mail log containing every one
// of parts, and returns it; it returns "" when none came.
func (p *postfixInstance) WaitLog(d time.Duration, parts ...string) string {
	deadline := time.Now().Add(d)
	for {
		b, _ := os.ReadFile(p.Log)
		for _, line := range strings.Split(string(b), "\n") {
			if containsAll(line, parts) {
				return line
			}
		}
		if time.Now().After(deadline) {
			return ""
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Inject submits a message to the instance's smtpd with swaks, with
// marker as its Subject and in its body, and returns Postfix's queue ID.
func (p *postfixInstance) Inject(t *testing.T, from string, to []string, marker string) string {
	t.Helper()
	out, err := runCmd(30*time.Second, p.bin["swaks"],
		"--server", p.Smtpd,
		"--helo", "client.origin.test",
		"--from", from,
		"--to", strings.Join(to, ","),
		"--header", "Subject: "+marker,
		"--body", "body of "+marker,
		"--timeout", "20",
	)
	if err != nil {
		t.Fatalf("swaks into postfix: %v\n%s", err, out)
	}
	m := queuedAs.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("postfix did not queue the message:\n%s", out)
	}
	return m[1]
}

var queuedAs = regexp.MustCompile(`250 2\.0\.0 Ok: queued as ([0-9A-Za-z]+)`)

// LogText returns the mail log so far.
func (p *postfixInstance) LogText() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}

// stop runs `postfix stop` and makes sure master is gone, killing it after
// 15s if it is not.
func (p *postfixInstance) stop(t *testing.T) {
	pid := p.masterPid()
	if out, err := p.cmd(30*time.Second, "postfix", "stop"); err != nil {
		t.Errorf("postfix stop: %v\n%s", err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for pid > 0 && syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Errorf("postfix master %d still running after stop; killing it", pid)
			syscall.Kill(pid, syscall.SIGKILL)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// masterPid reads master's pid file, or returns 0.
func (p *postfixInstance) masterPid() int {
	b, err := os.ReadFile(filepath.Join(p.queue, "pid", "master.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(fmt.Errorf("write %s: %w", path, err))
	}
}
