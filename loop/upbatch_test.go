//go:build linux

package loop

import (
	"bytes"
	"crypto/rand"
	"math/big"
	"testing"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/wsframe"
)

// frames builds masked client frames with the given payload sizes and
// returns them with the payloads' concatenation, the naive reference.
func frames(t testing.TB, sizes []int) (wire, want []byte) {
	t.Helper()
	for i, n := range sizes {
		p := bytes.Repeat([]byte{byte('a' + i%26)}, n)
		var key [4]byte
		_, _ = rand.Read(key[:])
		var hdr [wsframe.MaxHeaderSize]byte
		h := wsframe.PutHeader(hdr[:], ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Mask: key, Length: int64(n)})
		f := append(hdr[:h:h], p...)
		wsframe.Unmask(f[h:], key, 0)
		wire = append(wire, f...)
		want = append(want, p...)
	}
	return wire, want
}

// parseAll runs buf through a server parser into b, as forward does.
func parseAll(t testing.TB, buf []byte, b *upBatch) {
	t.Helper()
	var p wsframe.Parser
	p.Reset(wsframe.Config{})
	for off := 0; off < len(buf); {
		ev, n, err := p.Next(buf[off:])
		if err != nil {
			t.Fatal(err)
		}
		off += n
		if ev.Kind == wsframe.Data {
			b.add(ev.Payload, off)
		}
	}
}

func TestUpBatchCompacts(t *testing.T) {
	cases := []struct {
		name    string
		sizes   []int
		maxIOVs int
	}{
		{"one small", []int{5}, 1},
		{"many tiny", []int{1, 1, 1, 1, 1, 1, 1, 1}, 1},
		{"5000 one-byte frames (more than IOV_MAX)", make1s(5000), 1},
		{"large stays in place", []int{40 << 10}, 1},
		{"small after large joins it", []int{10 << 10, 3, 4}, 1},
		{"large after small is its own", []int{3, 10 << 10}, 2},
		{"alternating", []int{1, 8 << 10, 1, 8 << 10, 1}, 3},
		{"at the compaction bound", []int{compactMax, compactMax, compactMax + 1}, 2},
		{"empty frames", []int{0, 3, 0, 0, 4}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wire, want := frames(t, tc.sizes)
			b := getUpBatch(wire)
			defer b.put()
			parseAll(t, wire, b)
			if got := bytes.Join(b.iov, nil); !bytes.Equal(got, want) {
				t.Fatalf("iovecs carry %d bytes, want the %d payload bytes in order", len(got), len(want))
			}
			if b.size != len(want) {
				t.Fatalf("size %d, want %d", b.size, len(want))
			}
			if len(b.iov) > tc.maxIOVs {
				t.Fatalf("%d iovecs, want at most %d", len(b.iov), tc.maxIOVs)
			}
		})
	}
}

// Random frame sizes against the naive reference; a full batch never needs
// more than maxBatchIOV iovecs.
func TestUpBatchRandom(t *testing.T) {
	for range 200 {
		var sizes []int
		for total := 0; total < maxPeek; {
			n := randInt(t, 3*compactMax)
			if randInt(t, 4) == 0 {
				n = randInt(t, 8)
			}
			sizes = append(sizes, n)
			total += n + 8
		}
		wire, want := frames(t, sizes)
		wire = wire[:min(len(wire), maxPeek)]
		b := getUpBatch(wire)
		parseAll(t, wire, b)
		if got := bytes.Join(b.iov, nil); !bytes.Equal(got, want[:len(got)]) {
			t.Fatal("payloads differ from the reference")
		}
		if len(b.iov) > maxBatchIOV {
			t.Fatalf("%d iovecs for one batch, bound %d", len(b.iov), maxBatchIOV)
		}
		b.put()
	}
}

func TestUpBatchNoAllocations(t *testing.T) {
	if testutil.Race {
		t.Skip("allocation counts are not meaningful under -race; `make test` runs this without it")
	}
	wire, _ := frames(t, []int{3, 100, 10 << 10, 1, 1, 5 << 10})
	orig := append([]byte(nil), wire...)
	allocs := testing.AllocsPerRun(100, func() {
		copy(wire, orig) // parsing unmasks in place
		b := getUpBatch(wire)
		parseAll(t, wire, b)
		b.put()
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per batch, want 0", allocs)
	}
}

func make1s(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = 1
	}
	return s
}

func randInt(t testing.TB, n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		t.Fatal(err)
	}
	return int(v.Int64())
}
