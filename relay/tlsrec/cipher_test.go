package tlsrec

import (
	"crypto/aes"
	"crypto/cipher"
	"testing"
)

// BenchmarkCipherFloor is what AES-128-GCM alone costs per GB on this
// machine: seal and open of full 16 KiB TLS 1.3 records with the
// implementation crypto/tls uses (TLS_AES_128_GCM_SHA256, what the proxy's
// clients negotiate). Every wss:// byte is sealed at one end and opened at
// the other; on a machine whose cores also run the client, both ends' cost
// comes out of the same CPU, which bounds wss:// against ws:// whatever the
// record path does (DECISIONS.md, "TLS in make bench-compare"). Run:
//
//	go test -run '^$' -bench CipherFloor ./relay/tlsrec
func BenchmarkCipherFloor(b *testing.B) {
	key := make([]byte, 16)
	block, err := aes.NewCipher(key)
	if err != nil {
		b.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	const record = 16 << 10 // TLS's largest plaintext
	plain := make([]byte, record)
	nonce := make([]byte, aead.NonceSize())
	header := []byte{23, 3, 3, 0x40, 0x11} // an application-data record's
	sealed := aead.Seal(nil, nonce, plain, header)
	out := make([]byte, 0, len(sealed))
	for _, dir := range []struct {
		name string
		run  func() error
	}{
		{"seal", func() error { out = aead.Seal(out[:0], nonce, plain, header); return nil }},
		{"open", func() error { var err error; out, err = aead.Open(out[:0], nonce, sealed, header); return err }},
	} {
		b.Run(dir.name, func(b *testing.B) {
			b.SetBytes(record)
			b.ReportAllocs()
			for b.Loop() {
				if err := dir.run(); err != nil {
					b.Fatal(err)
				}
			}
			// CPU-seconds per GB of plaintext, the unit of BENCHMARKS.md's CPU-s/GB.
			b.ReportMetric(b.Elapsed().Seconds()/(float64(b.N)*record/1e9), "CPU-s/GB")
		})
	}
}
