package tokens

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// errLineTooLong is the warning for a line over the size limit.
var errLineTooLong = errors.New("line longer than the limit")

// dupLine describes a token_hash seen twice: the later line wins.
type dupLine struct{ first, later int }

// parsed is the result of reading a token file.
type parsed struct {
	recs map[Hash]Record
	bad  []badLine // lines skipped, in order
	dups []dupLine // duplicate token_hash, in order
}

// badLine is a line skipped and why; the reason never holds the content.
type badLine struct {
	line   int
	reason error
}

// parseLines reads JSON Lines from r: blank lines and lines starting with
// '#' are ignored, a line over maxLine bytes (without its line ending) or
// one that ParseRecord refuses is recorded in bad, and a later duplicate
// token_hash replaces the earlier one. Line numbers start at 1. Only an
// error reading r is returned.
func parseLines(r io.Reader, maxLine int) (parsed, error) {
	p := parsed{recs: make(map[Hash]Record)}
	seen := make(map[Hash]int)
	br := bufio.NewReaderSize(r, maxLine+2) // room for the line and "\r\n"
	for n := 1; ; n++ {
		line, long, err := readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			return parsed{}, err
		}
		if long || len(line) > maxLine {
			p.bad = append(p.bad, badLine{n, errLineTooLong})
		} else {
			p.addLine(n, line, seen)
		}
		if err != nil {
			return p, nil
		}
	}
}

// addLine parses line n into p.
func (p *parsed) addLine(n int, line []byte, seen map[Hash]int) {
	if n == 1 {
		line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	}
	trimmed := bytes.TrimLeft(line, " \t")
	if len(trimmed) == 0 || trimmed[0] == '#' {
		return
	}
	rec, h, err := ParseRecord(line)
	if err != nil {
		p.bad = append(p.bad, badLine{n, err})
		return
	}
	if first, ok := seen[h]; ok {
		p.dups = append(p.dups, dupLine{first, n})
	}
	seen[h] = n
	p.recs[h] = rec
}

// readLine returns the next line without its "\n" or "\r\n". long reports a
// line that did not fit br's buffer; its bytes are discarded. At the end of
// input err is io.EOF, with the last line (perhaps empty) returned. line is
// borrowed from br until the next read.
func readLine(br *bufio.Reader) (line []byte, long bool, err error) {
	line, err = br.ReadSlice('\n')
	for errors.Is(err, bufio.ErrBufferFull) {
		long = true
		_, err = br.ReadSlice('\n')
	}
	if long {
		line = nil
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return line, long, err
}
