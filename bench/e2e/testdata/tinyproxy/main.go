// Command tinyproxy is a deliberately small WebSocket-to-TCP proxy for the
// hostile scenarios' end-to-end tests: it takes the flags consolebench's
// consoleproxy target passes, serves the harness's tokens from the token
// file, answers pings, and relays with a goroutine per direction and
// blocking writes (so TCP pushes back). --bug makes it misbehave in one
// known way, so that the tests can check the harness sees exactly that:
//
//	leak-host   never closes a compute-host socket
//	masked      forwards client payloads still masked once the session has sent a ping
//	pong-leak   queues every pong in memory it never frees
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
)

var (
	bug    = flag.String("bug", "", "leak-host, masked or pong-leak")
	tokens = map[string]string{} // sha256 hex → host:port

	leakMu sync.Mutex
	leaked [][]byte // pong-leak: every pong ever queued
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "")
	metrics := flag.String("metrics-listen", "", "")
	flag.String("admin-listen", "", "")
	store := flag.String("token-store", "", "file:PATH")
	flag.String("cert", "", "ignored: no TLS")
	flag.String("key", "", "ignored: no TLS")
	flag.Parse()
	if err := loadTokens(strings.TrimPrefix(*store, "file:")); err != nil {
		log.Fatal(err)
	}
	if *metrics != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "# TYPE go_goroutines gauge\ngo_goroutines %d\n", runtime.NumGoroutine())
		})
		go func() { log.Fatal(http.ListenAndServe(*metrics, mux)) }()
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go serve(c)
	}
}

func loadTokens(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var t struct {
			Hash string `json:"token_hash"`
			Host string `json:"host"`
			Port int    `json:"port"`
		}
		if err := json.Unmarshal(sc.Bytes(), &t); err != nil {
			return err
		}
		tokens[t.Hash] = fmt.Sprintf("%s:%d", t.Host, t.Port)
	}
	return sc.Err()
}

// serve reads the upgrade request, dials the token's host, answers 101 and
// relays until either side ends.
func serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		return
	}
	for {
		h, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if h == "\r\n" {
			break
		}
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return
	}
	_, tok, _ := strings.Cut(f[1], "token=")
	sum := sha256.Sum256([]byte(tok))
	addr, ok := tokens[hex.EncodeToString(sum[:])]
	if !ok {
		io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
		return
	}
	host, err := net.Dial("tcp", addr)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	if *bug != "leak-host" {
		defer host.Close()
	}
	if _, err := io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: binary\r\n\r\n"); err != nil {
		return
	}
	var wmu sync.Mutex // one writer of client frames at a time
	done := make(chan struct{})
	go func() { // host → client
		defer close(done)
		buf := make([]byte, 32<<10)
		for {
			n, err := host.Read(buf)
			if n > 0 {
				wmu.Lock()
				_, werr := c.Write(append(header(2, n), buf[:n]...))
				wmu.Unlock()
				if werr != nil {
					return
				}
			}
			if err != nil {
				c.Close()
				return
			}
		}
	}()
	clientToHost(br, c, host, &wmu)
	if *bug != "leak-host" {
		host.Close()
	}
	<-done
}

// clientToHost parses client frames: data unmasked to the host, pings
// answered, a close ends.
func clientToHost(br *bufio.Reader, c, host net.Conn, wmu *sync.Mutex) {
	var hdr [14]byte
	pinged := false
	for {
		if _, err := io.ReadFull(br, hdr[:2]); err != nil {
			return
		}
		n := 2
		switch hdr[1] & 0x7f {
		case 126:
			n += 2
		case 127:
			n += 8
		}
		n += 4 // clients mask
		if _, err := io.ReadFull(br, hdr[2:n]); err != nil {
			return
		}
		plen := uint64(hdr[1] & 0x7f)
		switch plen {
		case 126:
			plen = uint64(binary.BigEndian.Uint16(hdr[2:]))
		case 127:
			plen = binary.BigEndian.Uint64(hdr[2:])
		}
		key := hdr[n-4 : n]
		p := make([]byte, plen)
		if _, err := io.ReadFull(br, p); err != nil {
			return
		}
		if *bug != "masked" || !pinged {
			for i := range p {
				p[i] ^= key[i&3]
			}
		}
		switch hdr[0] & 0x0f {
		case 8:
			return
		case 9:
			pinged = true
			if *bug == "masked" {
				continue // no pong: what follows is relayed, masked, whatever the client did
			}
			pong := append(header(10, len(p)), p...)
			if *bug == "pong-leak" {
				leakMu.Lock()
				leaked = append(leaked, pong)
				leakMu.Unlock()
				continue
			}
			wmu.Lock()
			_, err := c.Write(pong)
			wmu.Unlock()
			if err != nil {
				return
			}
		case 10:
		default:
			if _, err := host.Write(p); err != nil {
				return
			}
		}
	}
}

// header is a server frame header (unmasked) for n payload bytes.
func header(op byte, n int) []byte {
	h := []byte{0x80 | op, 0}
	switch {
	case n < 126:
		h[1] = byte(n)
	case n < 1<<16:
		h[1] = 126
		h = binary.BigEndian.AppendUint16(h, uint16(n))
	default:
		h[1] = 127
		h = binary.BigEndian.AppendUint64(h, uint64(n))
	}
	return h
}
