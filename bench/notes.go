package bench

import (
	"fmt"
	"os"
	"strings"
)

// runNotes are the lines added under "Notes" in the reports: the targets'
// caps, and every run whose counts did not add up or that saw errors, so a
// reader never has to trust a number the run itself doubts.
func runNotes(cfg Config, rs []Result) []string {
	notes := cfg.capNotes()
	for i := range rs {
		r := &rs[i]
		if len(r.Errors) == 0 && r.Opened == r.Closed && r.BytesSent == r.BytesReceived {
			continue
		}
		notes = append(notes, fmt.Sprintf("%s, %s, %d sessions, round %d: opened %d, closed %d, failed %d, bytes sent %d, received %d; %s",
			r.Scenario, r.Target, r.Sessions, r.Round, r.Opened, r.Closed, r.Failed, r.BytesSent, r.BytesReceived,
			strings.Join(r.Errors, "; ")))
	}
	return notes
}

// appendNotes adds a Notes section to the Markdown file at path.
func appendNotes(path string, notes []string) error {
	if len(notes) == 0 {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("notes: %w", err)
	}
	var b strings.Builder
	b.WriteString("\n## Notes\n\n")
	for _, n := range notes {
		b.WriteString("- " + mdEscape(n) + "\n")
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return fmt.Errorf("notes: %w", err)
	}
	return f.Close()
}
