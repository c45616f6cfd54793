package wsframe

import "github.com/gobwas/ws"

// Unmask XORs p in place with key, starting at byte pos of the key stream
// (RFC 6455 §5.3), and returns the key position after p, so a payload can be
// unmasked in pieces: pos = Unmask(piece, key, pos). p is modified in place
// and not retained. Masking and unmasking are the same operation.
//
// It is gobwas/ws's Cipher (SSE2/AVX2 on amd64); the position bookkeeping is
// ours so callers never compute offsets by hand.
func Unmask(p []byte, key [4]byte, pos int) int {
	ws.Cipher(p, key, pos)
	return (pos + len(p)) & 3
}
