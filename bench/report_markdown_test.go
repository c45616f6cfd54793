package bench

import (
	"strings"
	"testing"
)

// scenarioSection is the Markdown section of one scenario in md.
func scenarioSection(t *testing.T, md, scenario string) string {
	t.Helper()
	_, after, ok := strings.Cut(md, "### "+scenario+"\n")
	if !ok {
		t.Fatalf("no section %q in\n%s", scenario, md)
	}
	section, _, _ := strings.Cut(after, "### ")
	return section
}

// tableLine is the line of section whose cells start with prefix.
func tableLine(t *testing.T, section, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(section, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	t.Fatalf("no line starting %q in\n%s", prefix, section)
	return ""
}

func TestWriteMarkdown(t *testing.T) {
	var b strings.Builder
	if err := WriteMarkdown(&b, Summarize(sampleResults(), "")); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	t.Logf("\n%s", md)
	if order := []string{"### hold", "### echo", "### stream-down", "### churn", "### mixed"}; !inOrder(md, order) {
		t.Errorf("sections not in order %v", order)
	}
	tests := []struct {
		scenario string
		line     string   // prefix of the line to check: header or a row
		want     []string // cells it contains
		absent   []string
	}{
		{"hold", "| sessions |", []string{"RSS/session KiB ↓", "RSS/session vs tcp-relay", "PSS/session KiB ↓", "open fds |", "proxy CPU s ↓", "client CPU s |", "opened/failed"}, []string{"MB/s", "p99"}},
		{"hold", "| 10 | websockify |", []string{"| 16.0 |", "| ×2 |", "30/**15**"}, nil},
		{"hold", "| 10 | tcp-relay |", []string{"| 8.00 |", "| ref |", "30/0"}, []string{"×"}},
		{"echo", "| sessions |", []string{"p50 ms ↓", "p90 ms ↓", "p99 ms ↓", "p99 vs tcp-relay", "p99.9 ms ↓", "max ms ↓"}, []string{"MB/s", "RSS", "sessions/s"}},
		{"echo", "| 1000 | consoleproxy |", []string{"| 8.50 |", "| ×0.85 |"}, nil},
		{"stream-down", "| sessions |", []string{"MB/s ↑", "MB/s vs tcp-relay", "MB/s/session ↑", "proxy CPU-s/GB ↓", "proxy CPU-s/GB vs tcp-relay"}, []string{"p99"}},
		{"stream-down", "| 1000 | consoleproxy |", []string{"| 85.0 |", "| ×0.85 |", "| ×1.2 |"}, nil},
		{"churn", "| sessions |", []string{"sessions/s ↑", "sessions/s vs tcp-relay", "p99 vs tcp-relay"}, nil},
		{"churn", "| 10 | websockify |", []string{"| 500 |", "| ×0.5 |", "| ×2 |"}, nil},
	}
	for _, tt := range tests {
		line := tableLine(t, scenarioSection(t, md, tt.scenario), tt.line)
		for _, w := range tt.want {
			if !strings.Contains(line, w) {
				t.Errorf("%s %q: missing %q in\n%s", tt.scenario, tt.line, w, line)
			}
		}
		for _, a := range tt.absent {
			if strings.Contains(line, a) {
				t.Errorf("%s %q: unexpected %q in\n%s", tt.scenario, tt.line, a, line)
			}
		}
	}
}

func TestWriteMarkdownMissingReference(t *testing.T) {
	rs := []Result{sampleRun("echo", "consoleproxy", 10, 1, 1), sampleRun("echo", "tcp-relay", 20, 1, 1)}
	var b strings.Builder
	if err := WriteMarkdown(&b, Summarize(rs, "")); err != nil {
		t.Fatal(err)
	}
	line := tableLine(t, b.String(), "| 10 | consoleproxy |")
	if strings.Count(line, "| — |") != 2 || strings.Contains(line, "×") {
		t.Errorf("want both ratios — without a reference row:\n%s", line)
	}
}

func inOrder(s string, parts []string) bool {
	for _, p := range parts {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return true
}

func TestFormatRatioAndValue(t *testing.T) {
	ratios := []struct {
		in   float64
		want string
	}{{0.85, "×0.85"}, {1.3, "×1.3"}, {1, "×1"}, {0.5, "×0.5"}, {1.234, "×1.2"}, {12.6, "×13"}, {0.004, "×0.004"}}
	for _, tt := range ratios {
		if got := formatRatio(tt.in); got != tt.want {
			t.Errorf("formatRatio(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
	values := []struct {
		in   float64
		want string
	}{{0, "0"}, {1234.5, "1234"}, {123.4, "123"}, {12.34, "12.3"}, {1.234, "1.23"}, {0.0341, "0.034"}}
	for _, tt := range values {
		if got := formatValue(tt.in); got != tt.want {
			t.Errorf("formatValue(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
