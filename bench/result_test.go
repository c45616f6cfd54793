package bench

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestResultCheck(t *testing.T) {
	good := Result{Scenario: "echo", Target: "consoleproxy", Round: 1, Sessions: 10,
		Opened: 10, Closed: 10, BytesSent: 4096, BytesReceived: 4096, Seconds: 2}
	tests := []struct {
		name   string
		modify func(r *Result)
		want   []string // substrings of the error; none means valid
	}{
		{"consistent", func(*Result) {}, nil},
		{"hold moves no data", func(r *Result) { r.Scenario, r.BytesSent, r.BytesReceived = "hold", 0, 0 }, nil},
		{"failed sessions are not an inconsistency", func(r *Result) { r.Failed = 3 }, nil},
		{"opened not closed", func(r *Result) { r.Closed = 8 }, []string{"opened 10 sessions but closed 8"}},
		{"bytes lost", func(r *Result) { r.BytesReceived = 4000 }, []string{"sent 4096 bytes but 4000 arrived"}},
		{"stream-up bytes lost", func(r *Result) { r.Scenario, r.BytesSent = "stream-up", 1<<20 }, []string{"stream-up/"}},
		{"negative", func(r *Result) { r.Failed, r.Seconds = -1, -2 }, []string{"negative failed -1", "negative seconds -2"}},
		{"all joined", func(r *Result) { r.Closed, r.BytesSent = 0, 1 }, []string{"closed 0", "sent 1 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good
			tt.modify(&r)
			err := r.Check()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Check() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check() = nil, want an error with %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Check() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// fullResult sets every field of a Result.
func fullResult() Result {
	return Result{
		Scenario: "mixed", Target: "consoleproxy", Round: 2, Sessions: 100,
		Params: map[string]string{"rate": "1MB/s", "frame": "4096"},
		Opened: 99, Failed: 1, Closed: 99, BytesSent: 1 << 30, BytesReceived: 1 << 30, Messages: 12345,
		Seconds: 10.25, MBps: 104.8576, MBpsPerSession: 1.048576,
		Latency:         &Percentiles{Count: 12345, P50: 0.25, P90: 0.5, P99: 1.125, P999: 3.5, Max: 17.75},
		ProxyCPUSeconds: 3.3, ProxyCPUSecPerGB: 3.0733, ClientCPUSeconds: 1.1,
		ProxyRSSBytes: 50 << 20, ProxyPSSBytes: 48 << 20, RSSPerSession: 10240.5, PSSPerSession: 9000.25,
		ProxyFDs: 212, SessionsPerSecond: 0.1,
		CDF:    [][2]float64{{0.1, 0.2}, {0.3, 0.9}, {17.75, 1}},
		Errors: []string{"timeout ×1"},
	}
}

func TestJSONLRoundTrip(t *testing.T) {
	in := []Result{fullResult(), {Scenario: "hold", Target: "tcp-relay", Round: 1, Sessions: 5, Opened: 5, Closed: 5}}
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, in); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "\n"); n != len(in) {
		t.Errorf("%d lines, want %d", n, len(in))
	}
	out, err := ReadJSONL(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Errorf("round trip:\n got %+v\nwant %+v", out, in)
	}
}

func TestReadJSONL(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int    // results read
		wantErr string // substring of the error
	}{
		{"empty", "", 0, ""},
		{"blank lines skipped", "\n{\"scenario\":\"echo\"}\n\n  \n{\"scenario\":\"hold\"}\n", 2, ""},
		{"malformed line named", "{\"scenario\":\"echo\"}\n\n{\"scenario\":\n", 0, "line 3"},
		{"wrong type named", "{\"sessions\":\"many\"}\n", 0, "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := ReadJSONL(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ReadJSONL error %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(rs) != tt.want {
				t.Fatalf("ReadJSONL = %d results, %v; want %d, nil", len(rs), err, tt.want)
			}
		})
	}
}
