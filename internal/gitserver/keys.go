/*
Copyright 2026 The Palisade Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package gitserver

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/fluxcd/pkg/git/signature"
	gogit "github.com/go-git/go-git/v5"
	"golang.org/x/crypto/ssh"
)

// PGPKey is a fresh Ed25519 OpenPGP key for signing commits in tests.
type PGPKey struct {
	Entity *openpgp.Entity
	// Armored is the armored public key, as a user puts it in a Secret.
	Armored string
}

// NewPGPKey generates a PGP key for name and email.
func NewPGPKey(t testing.TB, name, email string) PGPKey {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", email, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	w, err := armor.Encode(&b, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return PGPKey{Entity: e, Armored: b.String()}
}

// SSHKey is a fresh Ed25519 SSH key for signing commits in tests.
type SSHKey struct {
	Signer gogit.Signer
	// AuthorizedKey is the public key in authorized_keys format.
	AuthorizedKey string
}

// NewSSHKey generates an SSH signing key.
func NewSSHKey(t testing.TB) SSHKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := signature.NewSSHSigner(pem.EncodeToMemory(block), nil)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return SSHKey{Signer: s, AuthorizedKey: string(ssh.MarshalAuthorizedKey(sp))}
}
