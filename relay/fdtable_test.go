//go:build linux

package relay

import (
	"slices"
	"testing"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// TestFDTable: slots grow past the highest descriptor set, a reused
// descriptor takes its new value, deletion empties only its slot, and a
// descriptor out of range (negative, or past the table) holds nothing.
func TestFDTable(t *testing.T) {
	var tab fdTable[int]
	vals := map[int]*int{}
	for _, fd := range []int{3, 0, 70, 1000, 5} {
		v := new(int)
		*v = fd
		tab.set(fd, v)
		vals[fd] = v
	}
	for fd, v := range vals {
		if got := tab.get(fd); got != v {
			t.Fatalf("get(%d) = %v, want %v", fd, got, v)
		}
	}
	for _, fd := range []int{-1, 1, 69, 1001, 1 << 20} {
		if got := tab.get(fd); got != nil {
			t.Fatalf("get(%d) = %v, want nil", fd, got)
		}
	}
	again := new(int)
	tab.set(70, again) // the descriptor reused: replaced
	if tab.get(70) != again {
		t.Fatalf("reuse of 70: got %v, want %v", tab.get(70), again)
	}
	tab.del(70)
	tab.del(70) // twice: nothing left to delete
	tab.del(9999)
	tab.del(-1)
	if tab.get(70) != nil {
		t.Fatalf("after del(70): got %v", tab.get(70))
	}
	for _, fd := range []int{0, 3, 5, 1000} {
		if tab.get(fd) != vals[fd] {
			t.Fatalf("del(70) touched fd %d", fd)
		}
	}
	var order []int
	tab.all(func(v *int) {
		order = append(order, *v)
		tab.del(*v) // all tolerates deletion as it goes (closeAll)
	})
	if want := []int{0, 3, 5, 1000}; !slices.Equal(order, want) {
		t.Fatalf("all yielded %v, want %v", order, want)
	}
	for _, fd := range []int{0, 3, 5, 70, 1000} {
		if tab.get(fd) != nil {
			t.Fatalf("fd %d still held after deleting all", fd)
		}
	}
}

// TestFDTableLookupAllocs: the lookup on every epoll event allocates nothing.
func TestFDTableLookupAllocs(t *testing.T) {
	if testutil.Race {
		t.Skip("allocation counts are not meaningful under -race")
	}
	var tab fdTable[Conn]
	c := &Conn{}
	tab.set(42, c)
	if n := testing.AllocsPerRun(1000, func() {
		if tab.get(42) != c {
			t.Fatal("lookup lost its value")
		}
	}); n != 0 {
		t.Fatalf("%v allocations per lookup, want 0", n)
	}
}
