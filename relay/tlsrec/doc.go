// Package tlsrec holds what drives crypto/tls without blocking, shared by
// the event loop's wss:// records (loop/tls.go) and the relay pollers'
// VeNCrypt leg (relay/hosttls.go): the temporary error a transport answers
// when it holds no byte, and the trimming of crypto/tls's idle read
// buffers.
package tlsrec

// ErrWouldBlock is what a transport under a tls.Conn answers when it holds
// no byte for crypto/tls. It is a net.Error whose Temporary() is true, and
// crypto/tls keeps no temporary read error: what it read so far stays in
// its buffer and the next Read, with more bytes available, carries on.
var ErrWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "tls transport: no byte available" }
func (wouldBlock) Timeout() bool   { return false }
func (wouldBlock) Temporary() bool { return true }
