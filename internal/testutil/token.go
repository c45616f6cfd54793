//go:build linux

package testutil

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// TokenLine is a file token store's line (JSON Lines, Nova's
// console_auth_tokens columns) for token: a novnc console at host:port,
// valid for an hour, with no internal_access_path.
func TokenLine(token, host string, port int) string {
	h := sha256.Sum256([]byte(token))
	return fmt.Sprintf(`{"token_hash":%q,"console_type":"novnc","host":%q,"port":%d,"internal_access_path":null,"instance_uuid":"0d6c1c3a-8a4b-4f5e-9d7c-3e2f1a0b9c8d","expires":%d}`,
		hex.EncodeToString(h[:]), host, port, time.Now().Add(time.Hour).Unix())
}
