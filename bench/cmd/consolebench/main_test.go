package main

import (
	"reflect"
	"strings"
	"testing"
)

// The command line becomes the Config: lists split and trimmed, caps per
// target, the command quoted; malformed lists are refused with the flag
// named.
func TestParseFlags(t *testing.T) {
	c, _, err := parseFlags([]string{"--targets", "consoleproxy, websockify", "--sessions", "1,100, 9000",
		"--cap", "websockify=500,tcp-relay=9500", "--consoleproxy-args", "--max-client-backlog 4194304"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Targets, []string{"consoleproxy", "websockify"}) || !reflect.DeepEqual(c.Sessions, []int{1, 100, 9000}) ||
		c.Caps["websockify"] != 500 || c.Caps["tcp-relay"] != 9500 ||
		!reflect.DeepEqual(c.ConsoleproxyArgs, []string{"--max-client-backlog", "4194304"}) ||
		!strings.HasPrefix(c.Command, "consolebench --targets") {
		t.Fatalf("%+v", c)
	}
	c, _, err = parseFlags([]string{"--scenarios", "tls-handshakes-ecdsa", "--handshakes", "500", "--handshake-concurrency", "4"})
	if err != nil || c.Params.HandshakeCount != 500 || c.Params.HandshakeConcurrency != 4 ||
		!reflect.DeepEqual(c.Scenarios, []string{"tls-handshakes-ecdsa"}) {
		t.Fatalf("handshake flags: %v %+v", err, c.Params)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sessions", "1,many"}, "--sessions"},
		{[]string{"--cap", "websockify"}, "--cap"},
		{[]string{"--cap", "websockify=x"}, "--cap"},
	} {
		if _, _, err := parseFlags(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error naming %s", tc.args, err, tc.want)
		}
	}
}
