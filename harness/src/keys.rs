//! SSH keys: a client key pair per run, and the guest's host key (made at
//! image build time, written in dropbear's own format). A leaf module:
//! `images` makes host keys and `guest` authenticates with them, so it
//! belongs to neither.

use ssh_key::{Algorithm, LineEnding, PrivateKey};

/// An ed25519 key pair.
pub struct KeyPair {
    key: PrivateKey,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot make an SSH key: {0}")]
pub struct KeyError(String);

impl KeyPair {
    /// A fresh random key.
    pub fn generate() -> Result<KeyPair, KeyError> {
        let key = PrivateKey::random(&mut rand_core::OsRng, Algorithm::Ed25519)
            .map_err(|e| KeyError(e.to_string()))?;
        Ok(KeyPair { key })
    }

    /// Loads an ed25519 key from OpenSSH private-key text (other algorithms are refused).
    pub fn from_openssh(text: &str) -> Result<KeyPair, KeyError> {
        let key = PrivateKey::from_openssh(text).map_err(|e| KeyError(e.to_string()))?;
        if key.algorithm() != Algorithm::Ed25519 {
            return Err(KeyError(format!(
                "{} key given, an ed25519 key is needed",
                key.algorithm()
            )));
        }
        Ok(KeyPair { key })
    }

    /// OpenSSH private-key text (unencrypted).
    pub fn private_openssh(&self) -> Result<String, KeyError> {
        self.key
            .to_openssh(LineEnding::LF)
            .map(|z| z.to_string())
            .map_err(|e| KeyError(e.to_string()))
    }

    /// `ssh-ed25519 AAAA...` (no comment).
    pub fn public_line(&self) -> String {
        let mut line = self.key.public_key().to_openssh().unwrap_or_default();
        if let Some(i) = line.rfind(' ') {
            // to_openssh appends the (empty) comment; keep type + base64.
            if line[..i].contains(' ') {
                line.truncate(i);
            }
        }
        line.trim().to_string()
    }

    /// The base64 part of the public key (fits on a kernel command line).
    pub fn public_base64(&self) -> String {
        self.public_line()
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    }

    /// The public key's SSH wire encoding (what a server presents).
    pub fn public_blob(&self) -> Vec<u8> {
        self.key.public_key().to_bytes().unwrap_or_default()
    }

    /// The key in dropbear's private-key file format:
    /// string "ssh-ed25519", uint32 64, seed\[32\], public\[32\].
    pub fn dropbear_private(&self) -> Result<Vec<u8>, KeyError> {
        // Both constructors make or accept ed25519 keys only, so this holds.
        let kp = self
            .key
            .key_data()
            .ed25519()
            .ok_or_else(|| KeyError("not an ed25519 key".into()))?;
        let mut out = Vec::with_capacity(4 + 11 + 4 + 64);
        let kind = b"ssh-ed25519";
        out.extend_from_slice(&(kind.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(&64u32.to_be_bytes());
        out.extend_from_slice(&kp.private.to_bytes());
        out.extend_from_slice(kp.public.as_ref());
        Ok(out)
    }
}

/// Decodes the SSH wire blob from a `ssh-ed25519 AAAA...` line.
pub fn blob_from_public_line(line: &str) -> Option<Vec<u8>> {
    let key = ssh_key::PublicKey::from_openssh(line.trim()).ok()?;
    key.to_bytes().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropbear_format_layout() {
        let k = KeyPair::generate().unwrap();
        let d = k.dropbear_private().unwrap();
        assert_eq!(d.len(), 4 + 11 + 4 + 64);
        assert_eq!(&d[0..4], &[0, 0, 0, 11]);
        assert_eq!(&d[4..15], b"ssh-ed25519");
        assert_eq!(&d[15..19], &[0, 0, 0, 64]);
        // The public half equals the key's public bytes (last 32 of the wire blob).
        let blob = k.public_blob();
        assert_eq!(&d[51..83], &blob[blob.len() - 32..]);
    }

    #[test]
    fn public_line_round_trips() {
        let k = KeyPair::generate().unwrap();
        let line = k.public_line();
        assert!(line.starts_with("ssh-ed25519 AAAA"), "{line}");
        assert_eq!(line.split_whitespace().count(), 2);
        assert_eq!(blob_from_public_line(&line).unwrap(), k.public_blob());
        let again = KeyPair::from_openssh(&k.private_openssh().unwrap()).unwrap();
        assert_eq!(again.public_line(), line);
    }
}
