package probe

import (
	"encoding/hex"
	"testing"

	"github.com/Azure/go-ntlmssp"
)

// TestTolerantChallenge: squid 5.7's ntlm_fake_auth sent this CHALLENGE
// (a TargetName offset of 0xaaaaaaae, no TargetInfo field, "WORKGROUP"
// behind the 40-byte header); go-ntlmssp refuses it as sent and answers
// it once the informational fields are dropped, as curl reads it.
func TestTolerantChallenge(t *testing.T) {
	fake, _ := hex.DecodeString("4e544c4d535350000200000009000900aeaaaaaa018288a0226438455f1c9b2b0000000000003a00574f524b47524f5550")
	if _, err := ntlmssp.NewAuthenticateMessage(fake, `CORP\svc`, "pw", nil); err == nil {
		t.Fatal("go-ntlmssp took the damaged challenge as it is: the workaround is not needed")
	}
	msg, err := ntlmssp.NewAuthenticateMessage(tolerantChallenge(fake), `CORP\svc`, "pw", nil)
	if err != nil || len(msg) < 64 {
		t.Fatalf("%d bytes, %v", len(msg), err)
	}
	// A well-formed challenge (48-byte header, TargetInfo with its EOL) is
	// left as it is.
	good := append([]byte(nil), fake[:40]...)
	good = append(good, 4, 0, 4, 0, 48, 0, 0, 0, 0, 0, 0, 0)
	copy(good[12:20], []byte{0, 0, 0, 0, 0, 0, 0, 0})
	if got := tolerantChallenge(good); &got[0] != &good[0] {
		t.Errorf("a well-formed challenge was rewritten")
	}
}
