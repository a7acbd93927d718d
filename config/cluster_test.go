package config

import (
	"strings"
	"testing"
	"time"
)

func TestCluster(t *testing.T) {
	base := "hostname: relay.example.net\ndns: {servers: [\"127.0.0.1\"]}\n"
	c, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.Enabled() || c.Cluster.Redis != "" || c.Cluster.Prefix != "caliop" || time.Duration(c.Cluster.Timeout) != time.Second {
		t.Errorf("default cluster = %+v, want embedded store, prefix caliop, timeout 1s", c.Cluster)
	}
	c, err = Parse([]byte(base + "cluster:\n  redis: rediss://:pw@redis.internal:6380/2\n  prefix: relay-eu\n  timeout: 250ms\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Cluster.Enabled() || c.Cluster.Redis != "rediss://:pw@redis.internal:6380/2" || c.Cluster.Prefix != "relay-eu" || time.Duration(c.Cluster.Timeout) != 250*time.Millisecond {
		t.Errorf("cluster = %+v", c.Cluster)
	}
	if c.DataDir != "./caliop-data" {
		t.Errorf("data_dir = %q: still needed in cluster mode", c.DataDir)
	}
	for _, tc := range []struct{ src, want string }{
		{"cluster: {redis: \"http://redis.internal:6379\"}\n", "cluster.redis: redis: invalid URL scheme: http"},
		{"cluster: {redis: \"redis://redis.internal:6379/zero\"}\n", `cluster.redis: redis: invalid database number: "zero"`},
		{"cluster: {redis: \"redis://:s3cret@redis.internal:port\"}\n", "cluster.redis: invalid port"},
		{"cluster: {prefix: \"\"}\n", `cluster.prefix: "": must be a non-empty word`},
		{"cluster: {prefix: \"my relay\"}\n", `cluster.prefix: "my relay"`},
		{"cluster: {timeout: 0s}\n", "cluster.timeout: must be positive"},
		{"cluster: {timeout: -1s}\n", "cluster.timeout: must be positive"},
		{"cluster: {timeout: soon}\n", `cluster.timeout (line 3): "soon" is not a duration`},
		{"cluster: {redis_url: \"redis://x\"}\n", "cluster.redis_url (line 3): unknown key"},
	} {
		_, err := Parse([]byte(base + tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.src, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: %v: the error shows the password", tc.src, err)
		}
	}
}
