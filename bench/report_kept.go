package bench

import (
	"fmt"
	"os"
	"strings"
)

// keptPrefix heads the hand-written sections of a BENCHMARKS.md that a run
// keeps as they are: the performance history, each change with the
// profiles and A/B figures behind it (issue 14). A load run rewrites the
// page from its results; without this, those sections were lost with it.
const keptPrefix = "## Performance"

// keptSections is every section of doc whose heading starts with
// keptPrefix (each up to the next "## " heading), in order.
func keptSections(doc string) string {
	var b strings.Builder
	for off := 0; off < len(doc); {
		if strings.HasPrefix(doc[off:], keptPrefix) && (off == 0 || doc[off-1] == '\n') {
			end := len(doc)
			if next := headingFrom(doc, off); next >= 0 {
				end = next
			}
			b.WriteString(strings.TrimRight(doc[off:end], "\n") + "\n\n")
			off = end
			continue
		}
		nl := strings.IndexByte(doc[off:], '\n')
		if nl < 0 {
			break
		}
		off += nl + 1
	}
	return b.String()
}

// keptSectionsOf reads keptSections of the file at path ("" when the file
// or the sections are missing).
func keptSectionsOf(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return keptSections(string(b))
}

// putKeptSections puts kept (keptSectionsOf, read before the page was
// rewritten) back into the file at path, before its hostile section, plots
// or notes, unless the page still has them.
func putKeptSections(path, kept string) error {
	if kept == "" {
		return nil
	}
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("kept sections: %w", err)
	}
	doc := string(old)
	if keptSections(doc) != "" {
		return nil
	}
	at := -1
	for _, h := range [...]string{hostileHeading, "## Plots", "## Notes"} {
		if at = headingAt(doc, h); at >= 0 {
			break
		}
	}
	if at < 0 {
		doc = strings.TrimRight(doc, "\n") + "\n\n" + kept
	} else {
		doc = doc[:at] + kept + doc[at:]
	}
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		return fmt.Errorf("kept sections: %w", err)
	}
	return nil
}
